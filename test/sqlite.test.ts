import { Database } from 'bun:sqlite'
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IPublishPacket } from 'mqtt-packet'
import mqtt from 'mqtt'
import { sqlite } from '../plugins/sqlite.ts'
import { freePort } from '../bench/client.ts'
import { startBroker, until } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { repoRoot, spawnLines } from './helpers/process.ts'
import { RawClient } from './helpers/raw.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const dbPath = () => join(dir, `db-${++n}`, 'midge.db')

describe('sqlite plugin: retained messages', () => {
  test('[MQTT-3.3.2-5] a retained message whose expiry passes leaves memory and the database, though nobody subscribes', async () => {
    const path = dbPath()
    const clock = new ManualClock()
    const b = await startBroker({ plugins: [sqlite({ path })] }, { clock })
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'publish', topic: 'short/lived', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: true, dup: false, properties: { messageExpiryInterval: 1 } })
    c.send({ cmd: 'publish', topic: 'long/lived', payload: Buffer.from('y'), qos: 1, messageId: 2, retain: true, dup: false })
    await c.next('puback')
    await c.next('puback')
    const rows = () => (new Database(path, { readonly: true }).query('SELECT topic FROM retained ORDER BY topic').all() as Array<{ topic: string }>).map((r) => r.topic)
    expect(rows()).toEqual(['long/lived', 'short/lived'])
    clock.advance(999)
    expect(b.midge.broker.retained.size).toBe(2)
    clock.advance(1000) // the sweep clears expired retained messages (at most once a second): from memory now, the database as it flushes
    expect(b.midge.broker.retained.size).toBe(1)
    await until(() => rows().length === 1, 5000, 'the database to follow')
    expect(rows()).toEqual(['long/lived'])
    c.end()
    await b.close()
  })

  test('retained messages (with properties and expiry) survive a restart; a cleared one stays cleared', async () => {
    const path = dbPath()
    const first = await startBroker({ plugins: [sqlite({ path })] })
    const pub = await connect(first.port, { protocolVersion: 5 })
    await pub.client.publishAsync('r/kept', 'value', { qos: 1, retain: true, properties: { contentType: 'text/plain', correlationData: Buffer.from('c1'), userProperties: { a: '1' } } })
    await pub.client.publishAsync('r/gone', 'x', { qos: 1, retain: true })
    await pub.client.publishAsync('r/gone', '', { qos: 1, retain: true })
    await pub.client.publishAsync('r/brief', 'y', { qos: 1, retain: true, properties: { messageExpiryInterval: 1 } })
    await pub.end()
    await first.close()

    const second = await startBroker({ plugins: [sqlite({ path })] }, { clock: new ManualClock(Date.now() + 1100) }) // r/brief has expired
    expect(second.logs.find((l) => l.event === 'retained.loaded')?.messages).toBe(1)
    const sub = await connect(second.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'r/#')
    const m = await sub.next()
    expect(m.topic).toBe('r/kept')
    expect(m.packet.retain).toBe(true)
    expect(m.packet.properties?.contentType).toBe('text/plain')
    expect(Buffer.from(m.packet.properties!.correlationData!).toString()).toBe('c1')
    expect(m.packet.properties?.userProperties).toEqual({ a: '1' })
    expect(await sub.quiet()).toEqual([])
    await sub.end()
    await second.close()
  })
})

describe('sqlite plugin: persistent sessions', () => {
  test('subscriptions and messages queued while offline survive a restart', async () => {
    const path = dbPath()
    const first = await startBroker({ plugins: [sqlite({ path })] })
    const sub = await connect(first.port, { clientId: 'durable', clean: false })
    await subscribe(sub.client, 'd/#', { qos: 1 })
    await sub.end()
    const pub = await connect(first.port)
    for (let i = 0; i < 5; i++) await pub.client.publishAsync('d/x', `m${i}`, { qos: i % 2 ? 1 : 2 })
    await pub.end()
    await first.close()

    const second = await startBroker({ plugins: [sqlite({ path })] })
    expect(second.logs.find((l) => l.event === 'sessions.loaded')?.sessions).toBe(1)
    const back = await connect(second.port, { clientId: 'durable', clean: false })
    expect(back.client.connected).toBe(true)
    const got: string[] = []
    for (let i = 0; i < 5; i++) got.push((await back.next()).payload)
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
    // The subscription itself came back too.
    second.midge.publish({ topic: 'd/after', payload: 'after restart', qos: 1 })
    expect((await back.next()).payload).toBe('after restart')
    await back.end()
    await second.close()
  })

  test('unacknowledged in-flight messages are resent with DUP after a restart; a clean start removes the stored session', async () => {
    const path = dbPath()
    const first = await startBroker({ plugins: [sqlite({ path })] })
    const raw = await RawClient.connected(first.port, 4, { clientId: 'inflight', clean: false })
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'f', qos: 1 }] })
    await raw.next('suback')
    first.midge.publish({ topic: 'f', payload: 'unacked', qos: 1 })
    const p = (await raw.next('publish')) as IPublishPacket
    expect(p.dup).toBe(false)
    await first.midge.broker.plugins.flushed() // the in-flight state is on disk
    raw.end()
    await first.close()

    const second = await startBroker({ plugins: [sqlite({ path })] })
    const again = await RawClient.open(second.port, 4)
    again.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'inflight', clean: false, keepalive: 0 })
    expect(((await again.next('connack')) as { sessionPresent: boolean }).sessionPresent).toBe(true)
    const resent = (await again.next('publish')) as IPublishPacket
    expect(resent.dup).toBe(true)
    expect(resent.payload.toString()).toBe('unacked')
    again.end()
    const clean = await connect(second.port, { clientId: 'inflight', clean: true })
    await clean.end()
    await second.close()

    const third = await startBroker({ plugins: [sqlite({ path })] })
    expect(third.logs.find((l) => l.event === 'sessions.loaded')?.sessions).toBe(0)
    await third.close()
  })

  for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  test(`${signal === 'SIGKILL' ? 'kill -9' : 'graceful shutdown (SIGTERM)'} under a steady QoS 1 stream: every message acknowledged to the publisher reaches the persistent subscribers`, async () => {
    const path = dbPath()
    const port = freePort()
    const config = join(dir, `kill-${n}.config.ts`)
    writeFileSync(
      config,
      `import { sqlite } from '${join(repoRoot, 'plugins/sqlite.ts')}'\n` +
        `export default { listeners: [{ type: 'tcp', port: ${port} }], log: { level: 'warn' }, sys: { intervalSeconds: 0 }, plugins: [sqlite({ path: '${path}' })] }\n`,
    )
    const start = async () => {
      const broker = spawnLines(['src/main.ts', '--config', config])
      const probe = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 50, connectTimeout: 1000 })
      await new Promise((resolve) => probe.once('connect', resolve))
      probe.end(true)
      return broker
    }
    let broker = await start()

    // An offline persistent subscriber (everything must be queued for it) and an online one.
    const offline = await connect(port, { clientId: 'offline-sub', clean: false })
    await subscribe(offline.client, 'stream', { qos: 1 })
    await offline.end()
    const received = new Set<string>()
    const online = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'online-sub', clean: false, reconnectPeriod: 100 })
    online.on('message', (_t, payload) => received.add(payload.toString()))
    await new Promise((resolve) => online.once('connect', resolve))
    await online.subscribeAsync('stream', { qos: 1 })

    // The publisher keeps 16 QoS 1 messages in flight and records each PUBACK.
    const acked: string[] = []
    const publisher = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: 'publisher', reconnectPeriod: 0 })
    publisher.on('error', () => {})
    await new Promise((resolve) => publisher.once('connect', resolve))
    let next = 0
    let stop = false
    const pump = () => {
      if (stop || next >= 600) return
      const id = String(next++)
      publisher.publish('stream', id, { qos: 1 }, (error) => {
        if (!error) acked.push(id)
        pump()
      })
    }
    for (let i = 0; i < 16; i++) pump()
    await until(() => acked.length >= 200, 10000, '200 acknowledged')
    broker.proc.kill(signal)
    stop = true
    await broker.proc.exited
    publisher.end(true)
    expect(acked.length).toBeGreaterThanOrEqual(200)

    broker = await start()
    try {
      await until(() => acked.every((id) => received.has(id)), 10000, 'online subscriber has every acknowledged message')
      const back = await connect(port, { clientId: 'offline-sub', clean: false })
      const got = new Set<string>()
      await until(() => {
        for (const m of back.messages) got.add(m.payload)
        return acked.every((id) => got.has(id))
      }, 10000, 'offline subscriber has every acknowledged message')
      await back.end()
    } finally {
      online.end(true)
      broker.proc.kill('SIGTERM')
      await broker.proc.exited
    }
  })
  }
})
