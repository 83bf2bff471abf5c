import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import mqttPacket from 'mqtt-packet'
import net from 'node:net'
import { until, type TestBroker } from './helpers/broker.ts'
import { profiles } from './helpers/profiles.ts'
import { BenchClient } from '../bench/client.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

const BUFFER_LIMIT = 256 * 1024
let b: TestBroker

/** A subscriber on node:net that stops reading after SUBACK, so the kernel buffers fill and the broker's writes go partial. */
async function stalledSubscriber(clientId: string, topic: string, qos: 0 | 1): Promise<net.Socket> {
  const socket = net.connect(b.port, '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const suback = new Promise<void>((resolve) => parser.on('packet', (p) => p.cmd === 'suback' && resolve()))
  socket.on('data', (d: Buffer) => parser.parse(d))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }))
  socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }))
  await suback
  socket.pause()
  return socket
}

for (const profile of profiles) describe(`backpressure and slow consumers (${profile.name})`, () => {
  beforeAll(async () => {
    b = await profile.start({ limits: { maxOutboundBufferBytes: BUFFER_LIMIT, drainTimeoutMs: 1500, maxQueuedMessages: 100 } })
  })
  afterAll(() => b.close())

  test('a stalled QoS 0 subscriber: its buffer stays bounded, excess is dropped and counted, others get everything', async () => {
    const slow = await stalledSubscriber('slow0', 'stream/0', 0)
    const fast = await connect(b.port)
    await subscribe(fast.client, 'stream/0')
    const payload = Buffer.alloc(8 * 1024, 7)
    const dropsBefore = b.midge.stats.messagesDropped
    const total = 1000 // 8 MB, far past the kernel buffers and the 256 KB limit
    for (let i = 0; i < total; i++) {
      b.midge.publish({ topic: 'stream/0', payload })
      if (i % 50 === 0) await Bun.sleep(1)
    }
    await until(() => fast.messages.length === total, 10000, 'fast subscriber gets every message')
    const client = [...b.midge.broker.clients].find((c) => c.clientId === 'slow0')!
    expect(client.outbound.bufferedBytes).toBeLessThanOrEqual(BUFFER_LIMIT + payload.length + 64)
    expect(b.midge.stats.messagesDropped - dropsBefore).toBeGreaterThan(0)
    slow.destroy()
    await fast.end()
  })

  test('one stalled subscriber among 100 that read: the 100 get every message of a steady stream, the stalled one is bounded and then disconnected', async () => {
    const slow = await stalledSubscriber('slow-among-100', 'steady/stream', 0)
    // Fill the stalled one's kernel buffers first, so its socket is blocked from the start of the stream.
    const filler = Buffer.alloc(16 * 1024)
    for (let i = 0; i < 600; i++) {
      b.midge.publish({ topic: 'steady/stream', payload: filler })
      if (i % 50 === 0) await Bun.sleep(1)
    }
    const readers = await Promise.all(Array.from({ length: 100 }, (_, i) => BenchClient.connect(b.port, `reader-${i}`)))
    await Promise.all(readers.map((r) => r.subscribe('steady/stream', 0)))
    const counts = new Array(100).fill(0)
    const latencies: number[] = []
    readers.forEach(
      (r, i) =>
        (r.onPublish = (m) => {
          counts[i]++
          latencies.push(performance.now() - Buffer.from(m.payload!.buffer, m.payload!.byteOffset, 8).readDoubleLE(0))
        }),
    )
    const payload = Buffer.alloc(4096, 3)
    const total = 1000 // 4 MB to each reader over about two seconds, at a steady pace
    for (let i = 0; i < total; i++) {
      payload.writeDoubleLE(performance.now(), 0)
      b.midge.publish({ topic: 'steady/stream', payload })
      if (i % 10 === 9) await Bun.sleep(20)
    }
    await until(() => counts.every((n) => n === total), 10_000, 'every reader has every message')
    // The readers are not held up by the stalled one: their worst delays are a fraction of the drain deadline.
    latencies.sort((x, y) => x - y)
    expect(latencies[Math.floor(latencies.length * 0.99)]!).toBeLessThan(500)
    const slowClient = [...b.midge.broker.clients].find((c) => c.clientId === 'slow-among-100')
    if (slowClient) expect(slowClient.outbound.bufferedBytes).toBeLessThanOrEqual(BUFFER_LIMIT + payload.length + 64)
    await until(() => b.logs.some((l) => l.event === 'client.disconnected' && l.clientId === 'slow-among-100'), 5000, 'the stalled one is disconnected')
    for (const r of readers) r.end()
    slow.destroy()
  })

  test('what a blocked socket has not taken reaches it intact once it reads again, while other connections are written meanwhile', async () => {
    // The broker joins a tick's packets in a buffer it reuses for the next write: what a socket leaves of a write
    // must be kept apart from it. Each payload says what it must be, so a byte overwritten anywhere shows.
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const got: string[] = []
    const errors: string[] = []
    parser.on('packet', (p) => p.cmd === 'publish' && got.push(p.payload.toString()))
    parser.on('error', (e) => errors.push(e.message))
    const slow = await stalledSubscriber('slow-then-reading', 'mixed/#', 0)
    slow.removeAllListeners('data')
    slow.on('data', (d: Buffer) => parser.parse(d))
    // Another subscriber, of other messages: its writes, joined in the same buffer, differ from the stalled one's.
    const fast = await connect(b.port)
    await subscribe(fast.client, 'other/#')
    const total = 6000
    const payloadOf = (i: number) => `${i}:`.padEnd(4000, String.fromCharCode(97 + (i % 26)))
    for (let i = 0; i < total; i++) {
      b.midge.publish({ topic: `mixed/${i % 7}`, payload: payloadOf(i) })
      b.midge.publish({ topic: `other/${i % 5}`, payload: `${i}`.padEnd(3000 + (i % 900), '#') })
      if (i % 100 === 99) await Bun.sleep(1) // ticks of 100 packets each (joins of many), 24 MB in all: past the kernel's buffers
    }
    await until(() => fast.messages.length === total, 10_000, 'the reading subscriber gets every message')
    const blocked = [...b.midge.broker.clients].find((c) => c.clientId === 'slow-then-reading')!
    expect(blocked.outbound.bufferedBytes).toBeGreaterThan(0) // it was left part of a write
    slow.resume()
    await until(() => blocked.outbound.bufferedBytes === 0, 5000, 'the stalled one takes what was kept for it')
    b.midge.publish({ topic: 'mixed/end', payload: 'end' }) // after everything kept for it: the last thing it reads
    await until(() => got.at(-1) === 'end', 5000, 'the stalled one reads up to the end')
    got.pop()
    // Some were dropped for the buffer limit (QoS 0); every one that arrived is whole, and in order.
    expect(errors).toEqual([])
    const seqs = got.map((p) => Number(p.split(':')[0]))
    expect(got.filter((p, k) => p !== payloadOf(seqs[k]!))).toEqual([])
    expect(seqs.every((n, k) => k === 0 || n > seqs[k - 1]!)).toBe(true)
    expect(got.length).toBeLessThan(total)
    slow.destroy()
    await fast.end()
  })

  test('a subscriber whose socket stays blocked past drainTimeoutMs is disconnected', async () => {
    const slow = await stalledSubscriber('slow-deadline', 'stream/d', 0)
    const closed = new Promise<void>((resolve) => slow.once('close', () => resolve()))
    const payload = Buffer.alloc(16 * 1024)
    for (let i = 0; i < 400; i++) b.midge.publish({ topic: 'stream/d', payload })
    await until(() => b.logs.some((l) => l.event === 'client.disconnected' && l.clientId === 'slow-deadline'), 6000, 'slow consumer disconnected')
    const line = b.logs.find((l) => l.event === 'client.disconnected' && l.clientId === 'slow-deadline')!
    expect(String(line.reason)).toContain('slow consumer')
    slow.resume()
    await closed
  })

  test('QoS 1 to a stalled subscriber waits in its bounded queue, not in memory without end', async () => {
    const slow = await stalledSubscriber('slow1', 'stream/1', 1)
    const payload = Buffer.alloc(8 * 1024)
    for (let i = 0; i < 600; i++) b.midge.publish({ topic: 'stream/1', payload, qos: 1 })
    const session = b.midge.broker.sessions.get('slow1')!
    expect(session.queue.length).toBeLessThanOrEqual(100)
    expect(session.inflight.size).toBeLessThanOrEqual(b.midge.config.limits.maxInflight)
    const client = session.client!
    expect(client.outbound.bufferedBytes).toBeLessThanOrEqual(BUFFER_LIMIT + payload.length + 64)
    slow.destroy()
  })

  test('subscribing again and again to a retained set while blocked does not grow the queue past one copy of it', async () => {
    for (let i = 0; i < 20; i++) b.midge.publish({ topic: `kept/${i}`, payload: Buffer.alloc(1024), retain: true })
    const slow = await stalledSubscriber('resubscriber', 'block/me', 0)
    const filler = Buffer.alloc(16 * 1024)
    for (let i = 0; i < 600; i++) {
      b.midge.publish({ topic: 'block/me', payload: filler })
      if (i % 50 === 0) await Bun.sleep(1)
    }
    const session = b.midge.broker.sessions.get('resubscriber')!
    const subscribes = Array.from({ length: 200 }, (_, i) => mqttPacket.generate({ cmd: 'subscribe', messageId: 2 + i, subscriptions: [{ topic: 'kept/#', qos: 0 }] }))
    const read = b.midge.broker.stats.bytesReceived + subscribes.reduce((n, p) => n + p.length, 0)
    for (const packet of subscribes) slow.write(packet)
    // Bytes are counted as they are read, and each packet is handled in the same call: once all are counted, all 200 are handled.
    await until(() => b.midge.broker.stats.bytesReceived >= read, 5000, 'all 200 SUBSCRIBEs read')
    expect(b.midge.broker.stats.messagesDropped).toBeGreaterThan(0)
    expect(session.queue.length).toBeLessThanOrEqual(b.midge.config.limits.maxQueuedMessages + b.midge.broker.retained.size)
    slow.destroy()
  })

  test('a subscriber behind a full window still gets every QoS 1 message within the queue bound, in order', async () => {
    const sub = await connect(b.port, { clientId: 'steady' })
    await subscribe(sub.client, 'steady', { qos: 1 })
    const pub = await connect(b.port)
    const payload = Buffer.alloc(4 * 1024, 1)
    for (let i = 0; i < 150; i++) pub.client.publish('steady', Buffer.concat([Buffer.from(`${i}:`), payload]), { qos: 1 })
    await until(() => sub.messages.length === 150, 15000, 'all 150')
    expect(sub.messages.map((m) => Number(m.payload.split(':')[0]))).toEqual([...Array(150).keys()])
    await sub.end()
    await pub.end()
  })
})
