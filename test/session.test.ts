import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({ limits: { maxQueuedMessages: 5 } })
})
afterAll(() => b.close())

async function reconnect(clientId: string, version: 4 | 5, extra: Record<string, unknown> = {}) {
  const c = await RawClient.open(b.port, version)
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId, clean: false, keepalive: 0, ...extra } as never)
  const connack = (await c.next('connack')) as IConnackPacket
  return { c, connack }
}

describe('wills', () => {
  test('[MQTT-3.1.2-8] the will is published when the connection drops without DISCONNECT', async () => {
    const watcher = await connect(b.port)
    await subscribe(watcher.client, 'will/+')
    const raw = await RawClient.connected(b.port, 4, { will: { topic: 'will/a', payload: Buffer.from('gone'), qos: 0, retain: false } })
    raw.end() // TCP close, no DISCONNECT
    const m = await watcher.next()
    expect(m.topic).toBe('will/a')
    expect(m.payload).toBe('gone')
    await watcher.end()
  })

  test('[MQTT-3.14.4-3] the will is not published after a normal DISCONNECT', async () => {
    const watcher = await connect(b.port)
    await subscribe(watcher.client, 'will/b')
    const c = await connect(b.port, { clientId: 'leaves-cleanly', will: { topic: 'will/b', payload: Buffer.from('no'), qos: 0, retain: false } })
    await c.end()
    // Once the broker has let the client go, a will would have been published already.
    await until(() => b.logs.some((l) => l.event === 'client.disconnected' && l.clientId === 'leaves-cleanly'), 5000, 'the client gone')
    expect(await watcher.quiet()).toEqual([])
    await watcher.end()
  })

  test('the will is published on keep alive timeout, retained when asked', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const watcher = await connect(own.port)
    await subscribe(watcher.client, 'will/ka')
    await RawClient.connected(own.port, 4, { keepalive: 1, will: { topic: 'will/ka', payload: Buffer.from('timeout'), qos: 1, retain: true } })
    clock.advance(1750) // past 1.5 times the keep alive [MQTT-3.1.2-22]; the watcher said nothing meanwhile, but has no keep alive
    const m = await watcher.next()
    expect(m.payload).toBe('timeout')
    const late = await connect(own.port)
    await subscribe(late.client, 'will/ka')
    expect((await late.next()).packet.retain).toBe(true)
    await watcher.end()
    await late.end()
    await own.close()
  })

  test('MQTT 5: DISCONNECT with reason 0x04 publishes the will', async () => {
    const watcher = await connect(b.port)
    await subscribe(watcher.client, 'will/04')
    const c = await RawClient.connected(b.port, 5, { will: { topic: 'will/04', payload: Buffer.from('asked'), qos: 0, retain: false } })
    c.send({ cmd: 'disconnect', reasonCode: 0x04 })
    expect((await watcher.next()).payload).toBe('asked')
    await watcher.end()
  })

  test('MQTT 5: will delay interval, and will properties are passed on', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const watcher = await connect(own.port, { protocolVersion: 5 })
    await subscribe(watcher.client, 'will/delay')
    const c = await RawClient.connected(own.port, 5, {
      clientId: 'delayed-will',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/delay', payload: Buffer.from('late'), qos: 0, retain: false, properties: { willDelayInterval: 1, contentType: 'text/plain', userProperties: { k: 'v' } } },
    })
    c.end()
    await until(() => own.midge.broker.connectedCount === 1, 5000, 'the drop seen')
    clock.advance(999)
    expect(await watcher.quiet()).toEqual([]) // not a moment before the delay
    clock.advance(1)
    const m = await watcher.next()
    expect(m.payload).toBe('late')
    expect(m.packet.properties?.contentType).toBe('text/plain')
    expect(m.packet.properties?.userProperties).toEqual({ k: 'v' })
    await watcher.end()
    await own.close()
  })

  test('[MQTT-3.1.3-9] MQTT 5: reconnecting within the will delay cancels the will', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const watcher = await connect(own.port)
    await subscribe(watcher.client, 'will/cancel')
    const c = await RawClient.connected(own.port, 5, {
      clientId: 'cancel-will',
      properties: { sessionExpiryInterval: 60 },
      will: { topic: 'will/cancel', payload: Buffer.from('x'), qos: 0, retain: false, properties: { willDelayInterval: 1 } },
    })
    c.end()
    await c.waitClosed()
    clock.advance(500)
    const back = await RawClient.connected(own.port, 5, { clientId: 'cancel-will', clean: false, properties: { sessionExpiryInterval: 60 } })
    clock.advance(5000) // well past the will delay
    expect(await watcher.quiet()).toEqual([])
    back.end()
    await watcher.end()
    await own.close()
  })
})

describe('sessions', () => {
  test('persistent session keeps subscriptions and queues QoS 1/2 while offline (3.1.1)', async () => {
    const first = await connect(b.port, { clientId: 'keeper', clean: false })
    await subscribe(first.client, 'keep/#', { qos: 1 })
    await first.end()
    b.midge.publish({ topic: 'keep/1', payload: 'a', qos: 1 })
    b.midge.publish({ topic: 'keep/0', payload: 'qos0 is not kept', qos: 0 })
    b.midge.publish({ topic: 'keep/2', payload: 'b', qos: 2 })
    const back = await connect(b.port, { clientId: 'keeper', clean: false })
    expect(back.client.connected).toBe(true)
    expect((await back.next()).payload).toBe('a')
    const second = await back.next()
    expect(second.payload).toBe('b')
    expect(second.packet.qos).toBe(1)
    expect(await back.quiet()).toEqual([])
    await back.end()
  })

  test('[MQTT-3.1.2-4] clean session discards the previous session', async () => {
    const first = await connect(b.port, { clientId: 'cleaner', clean: false })
    await subscribe(first.client, 'clean/x', { qos: 1 })
    await first.end()
    const { c, connack } = await reconnect('cleaner', 4, { clean: true })
    expect(connack.sessionPresent).toBe(false)
    b.midge.publish({ topic: 'clean/x', payload: 'p', qos: 1 })
    await c.ping()
    expect(c.packets.filter((p) => p.cmd === 'publish')).toEqual([])
    c.end()
  })

  test('the offline queue is bounded (maxQueuedMessages) and counts what it drops', async () => {
    const first = await connect(b.port, { clientId: 'bounded', clean: false })
    await subscribe(first.client, 'bound', { qos: 1 })
    await first.end()
    const droppedBefore = b.midge.stats.messagesDropped
    for (let i = 0; i < 8; i++) b.midge.publish({ topic: 'bound', payload: String(i), qos: 1 })
    expect(b.midge.stats.messagesDropped - droppedBefore).toBe(3)
    const back = await connect(b.port, { clientId: 'bounded', clean: false })
    const got: string[] = []
    for (let i = 0; i < 5; i++) got.push((await back.next()).payload)
    expect(got).toEqual(['0', '1', '2', '3', '4'])
    expect(await back.quiet()).toEqual([])
    await back.end()
  })

  test('the offline queue is also bounded in bytes (maxQueuedBytes)', async () => {
    const small = await startBroker({ limits: { maxQueuedBytes: 10_000 } })
    const first = await connect(small.port, { clientId: 'bytes', clean: false })
    await subscribe(first.client, 'bytes', { qos: 1 })
    await first.end()
    const payload = Buffer.alloc(3000)
    for (let i = 0; i < 5; i++) small.midge.publish({ topic: 'bytes', payload, qos: 1 })
    expect(small.midge.stats.messagesDropped).toBe(2) // 3 x 3000 fit in 10,000 bytes
    const back = await connect(small.port, { clientId: 'bytes', clean: false })
    await back.next()
    await back.next()
    await back.next()
    expect(await back.quiet()).toEqual([])
    await back.end()
    await small.close()
  })

  test('maxSessionExpirySeconds: a longer session expiry is lowered, and MQTT 5 clients are told', async () => {
    const capped = await startBroker({ limits: { maxSessionExpirySeconds: 5 } })
    const c = await RawClient.open(capped.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'cap', clean: true, keepalive: 0, properties: { sessionExpiryInterval: 3600 } })
    expect(((await c.next('connack')) as IConnackPacket).properties?.sessionExpiryInterval).toBe(5)
    expect(capped.midge.broker.sessions.get('cap')!.expiryInterval).toBe(5)
    c.end()
    await capped.close()
  })

  test('MQTT 5: session expiry interval ends the session after it passes [MQTT-3.1.2-23]', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const c = await RawClient.connected(own.port, 5, { clientId: 'expiring', clean: true, properties: { sessionExpiryInterval: 10 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'exp/x', qos: 1 }] })
    await c.next('suback')
    c.end()
    await c.waitClosed()
    await until(() => own.midge.broker.connectedCount === 0, 5000, 'the disconnect seen')
    clock.advance(9_999)
    expect(own.midge.broker.sessions.has('expiring')).toBe(true) // not a moment before
    clock.advance(1)
    expect(own.midge.broker.sessions.has('expiring')).toBe(false)
    const back = await RawClient.open(own.port, 5)
    back.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'expiring', clean: false, keepalive: 0, properties: { sessionExpiryInterval: 10 } })
    expect(((await back.next('connack')) as IConnackPacket).sessionPresent).toBe(false)
    back.end()
    await own.close()
  })

  test('MQTT 5: session expiry 0 ends the session with the connection; present after a non-zero expiry', async () => {
    const a = await RawClient.connected(b.port, 5, { clientId: 'sx0', clean: false })
    a.end()
    await a.waitClosed()
    await until(() => !b.midge.broker.sessions.has('sx0'))
    const keep = await RawClient.connected(b.port, 5, { clientId: 'sx60', clean: false, properties: { sessionExpiryInterval: 60 } })
    keep.end()
    await keep.waitClosed()
    const { c, connack } = await reconnect('sx60', 5, { properties: { sessionExpiryInterval: 60 } })
    expect(connack.sessionPresent).toBe(true)
    c.end()
  })

  test('MQTT 5 (section 3.14.2.2.2): DISCONNECT may change session expiry, but not from 0', async () => {
    const a = await RawClient.connected(b.port, 5, { clientId: 'sx-change', clean: true, properties: { sessionExpiryInterval: 60 } })
    a.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 0 } })
    await a.waitClosed()
    expect(b.midge.broker.sessions.has('sx-change')).toBe(false)

    const z = await RawClient.connected(b.port, 5, { clientId: 'sx-zero', clean: true })
    z.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 30 } })
    expect(((await z.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x82)
    await z.waitClosed()
  })

  test('messages queued for an offline MQTT 5 session expire (message expiry interval) [MQTT-3.3.2-5]', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const a = await RawClient.connected(own.port, 5, { clientId: 'exp-queue', clean: true, properties: { sessionExpiryInterval: 60 } })
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'eq/#', qos: 1 }] })
    await a.next('suback')
    a.end()
    await a.waitClosed()
    own.midge.publish({ topic: 'eq/short', payload: 'x', qos: 1, properties: { messageExpiryInterval: 1 } })
    own.midge.publish({ topic: 'eq/long', payload: 'y', qos: 1, properties: { messageExpiryInterval: 100 } })
    clock.advance(1000)
    const c = await RawClient.open(own.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'exp-queue', clean: false, keepalive: 0, properties: { sessionExpiryInterval: 60 } })
    await c.next('connack')
    const p = (await c.next('publish')) as IPublishPacket
    expect(p.topic).toBe('eq/long')
    expect(p.properties?.messageExpiryInterval).toBe(99) // [MQTT-3.3.2-6] decremented by the second it waited
    await c.ping()
    expect(c.packets.filter((x) => x.cmd === 'publish')).toEqual([])
    c.end()
    await own.close()
  })
})
