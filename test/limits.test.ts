/** Limits that protect the broker: each hit, with the documented behaviour. */
import { describe, expect, test } from 'bun:test'
import mqttPacket, { type IConnackPacket, type IDisconnectPacket, type IPubackPacket, type ISubackPacket, type IPublishPacket } from 'mqtt-packet'
import type { Plugin } from '../src/index.ts'
import { startBroker as startBareBroker, until } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { profiles } from './helpers/profiles.ts'
import { RawClient } from './helpers/raw.ts'

async function connack(port: number, version: 4 | 5): Promise<{ client: RawClient; code: number }> {
  const client = await RawClient.open(port, version)
  client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `l-${Math.random()}`, clean: true, keepalive: 0 })
  const ack = (await client.next('connack')) as IConnackPacket
  return { client, code: (version === 5 ? ack.reasonCode : ack.returnCode) ?? 0 }
}

for (const { name, start: startBroker } of profiles) describe(`limits (${name})`, () => {
  test('maxConnections: CONNECT past it gets 0x89 Server busy (3.1.1: 3); a freed slot is usable again', async () => {
    const b = await startBroker({ limits: { maxConnections: 2 } })
    const one = await connack(b.port, 5)
    const two = await connack(b.port, 4)
    expect([one.code, two.code]).toEqual([0, 0])
    const third5 = await connack(b.port, 5)
    expect(third5.code).toBe(0x89)
    await third5.client.waitClosed()
    const third4 = await connack(b.port, 4)
    expect(third4.code).toBe(3)
    await third4.client.waitClosed()
    one.client.end()
    await until(() => b.midge.broker.clients.size === 1)
    expect((await connack(b.port, 5)).code).toBe(0)
    await b.close()
  })

  test('maxConnectionsPerIp: a socket past it is closed before anything is read, with one log line', async () => {
    const b = await startBroker({ limits: { maxConnectionsPerIp: 2 } })
    const a = await connack(b.port, 4)
    const c = await connack(b.port, 4)
    const refused = await RawClient.open(b.port, 4)
    await refused.waitClosed()
    expect(b.logs.filter((l) => l.event === 'client.rejected')).toHaveLength(1)
    expect(String(b.logs.find((l) => l.event === 'client.rejected')!.reason)).toContain('more than 2 connections from 127.0.0.1')
    a.client.end()
    await until(() => b.midge.broker.clients.size === 1)
    expect((await connack(b.port, 4)).code).toBe(0) // a slot was freed
    c.client.end()
    await b.close()
  })

  test('connectRatePerIp: a burst past the rate is closed; a second later new connections are let in again', async () => {
    const clock = new ManualClock()
    const b = await startBroker({ limits: { connectRatePerIp: 5 } }, { clock })
    const sockets = await Promise.all(Array.from({ length: 10 }, () => RawClient.open(b.port, 4)))
    await until(() => sockets.filter((s) => s.closed).length >= 5, 5000, 'the burst past the rate closed')
    expect(sockets.filter((s) => s.closed).length).toBe(5)
    for (const s of sockets) s.end()
    const refused = await RawClient.open(b.port, 4)
    await refused.waitClosed() // the rate holds while no time passes
    clock.advance(1000)
    expect((await connack(b.port, 4)).code).toBe(0)
    await b.close()
  })

  test('maxSubscriptionsPerClient: filters past it get 0x97 Quota exceeded (3.1.1: 0x80); replacing one is fine', async () => {
    const b = await startBroker({ limits: { maxSubscriptionsPerClient: 2 } })
    for (const version of [4, 5] as const) {
      const c = await RawClient.connected(b.port, version)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 0 }, { topic: 'b', qos: 0 }, { topic: 'c', qos: 0 }, { topic: 'a', qos: 1 }] })
      expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([0, 0, version === 5 ? 0x97 : 0x80, 1])
      c.end()
    }
    await b.close()
  })

  test('maxTopicLevels and maxTopicLength: a longer topic closes the connection (0x90); a longer filter gets 0x8F', async () => {
    const b = await startBroker({ limits: { maxTopicLevels: 3, maxTopicLength: 20 } })
    for (const topic of ['a/b/c/d', 'x'.repeat(21)]) {
      const c = await RawClient.connected(b.port, 5)
      c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
      expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x90)
      await c.waitClosed()
    }
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/b/c/#', qos: 0 }, { topic: 'a/b/#', qos: 0 }, { topic: 'y'.repeat(21), qos: 0 }] })
    expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([0x8f, 0, 0x8f])
    c.end()
    await b.close()
  })

  test('maxMessageExpirySeconds: a longer message expiry is lowered to the ceiling', async () => {
    const b = await startBroker({ limits: { maxMessageExpirySeconds: 10 } })
    const sub = await RawClient.connected(b.port, 5)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'exp', qos: 0 }] })
    await sub.next('suback')
    const pub = await RawClient.connected(b.port, 5)
    pub.send({ cmd: 'publish', topic: 'exp', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { messageExpiryInterval: 3600 } })
    const p = (await sub.next('publish')) as IPublishPacket
    expect(p.properties?.messageExpiryInterval).toBe(10)
    sub.end()
    pub.end()
    await b.close()
  })

  test('rate limit (pause): a flooding client is held to its rate, its socket not read until it is back under; a client beside it is not slowed', async () => {
    const clock = new ManualClock()
    const b = await startBroker({ limits: { rate: { messagesPerSecond: 10 } } }, { clock })
    const sub = await RawClient.connected(b.port, 5, { clientId: 'watcher' })
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }, { topic: 'calm/#', qos: 0 }] })
    await sub.next('suback')
    const flooder = await RawClient.connected(b.port, 5, { clientId: 'flooder' })
    const calm = await RawClient.connected(b.port, 5, { clientId: 'calm' })
    const publish = (c: RawClient, topic: string, n: number) => c.sendBytes(Buffer.concat(Array.from({ length: n }, (_, i) => mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))))
    const got = (prefix: string) => sub.packets.filter((p) => p.cmd === 'publish' && (p as IPublishPacket).topic.startsWith(prefix)).length
    publish(flooder, 'flood/a', 50) // one read: taken whole (a burst of 10, 40 over: reading pauses for 4 s)
    await until(() => got('flood/') === 50, 5000, 'the first read')
    publish(flooder, 'flood/b', 10) // not read while paused
    publish(calm, 'calm/x', 1)
    await until(() => got('calm/') === 1, 5000, 'the calm client is not held')
    expect(got('flood/')).toBe(50)
    clock.advance(3999)
    publish(calm, 'calm/y', 1)
    await until(() => got('calm/') === 2, 5000, 'calm again')
    expect(got('flood/')).toBe(50) // still paused a millisecond before it is back to zero
    clock.advance(1)
    await until(() => got('flood/') === 60, 5000, 'read again once back under the rate')
    expect(b.midge.broker.stats.rateLimited).toBeGreaterThanOrEqual(1)
    expect(b.logs.filter((l) => l.event === 'client.rate_limited' && l.clientId === 'flooder')).toHaveLength(1) // once a minute
    for (const c of [sub, flooder, calm]) c.end()
    await b.close()
  })

  test('rate limit (disconnect): over the rate, MQTT 5 gets DISCONNECT 0x96 Message rate too high', async () => {
    const b = await startBroker({ limits: { rate: { messagesPerSecond: 5, action: 'disconnect' } } })
    const plain = await RawClient.connected(b.port, 5)
    plain.sendBytes(Buffer.concat(Array.from({ length: 20 }, () => mqttPacket.generate({ cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))))
    expect(((await plain.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x96)
    await plain.waitClosed()
    await b.close()
  })

  test('maxPayloadBytes: a larger payload is refused (MQTT 5: PUBACK 0x97; 3.1.1: acknowledged and dropped), counted, the connection stays', async () => {
    const b = await startBroker({ limits: { maxPayloadBytes: 8 } })
    const sub = await RawClient.connected(b.port, 4)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'p/#', qos: 1 }] })
    await sub.next('suback')
    const v5 = await RawClient.connected(b.port, 5)
    v5.send({ cmd: 'publish', topic: 'p/big', payload: Buffer.alloc(9), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await v5.next('puback')) as IPubackPacket).reasonCode).toBe(0x97)
    const v4 = await RawClient.connected(b.port, 4)
    v4.send({ cmd: 'publish', topic: 'p/big', payload: Buffer.alloc(9), qos: 1, messageId: 1, retain: false, dup: false })
    await v4.next('puback')
    v4.send({ cmd: 'publish', topic: 'p/ok', payload: Buffer.alloc(8), qos: 1, messageId: 2, retain: false, dup: false })
    await v4.next('puback')
    expect(((await sub.next('publish')) as IPublishPacket).topic).toBe('p/ok') // the big ones never came
    expect(b.midge.broker.stats.payloadRefused).toBe(2)
    for (const c of [sub, v5, v4]) c.end()
    await b.close()
  })

  test('maxRetainedPerClient: past it a retained PUBLISH gets PUBACK 0x97; replacing or clearing one of its own always may', async () => {
    const b = await startBroker({ limits: { maxRetainedPerClient: 2 } })
    const c = await RawClient.connected(b.port, 5, { clientId: 'keeper' })
    let id = 0
    const retain = async (topic: string, payload: string) => {
      c.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, messageId: ++id, retain: true, dup: false })
      return ((await c.next('puback')) as IPubackPacket).reasonCode
    }
    expect(await retain('r/a', '1')).toBe(0x10)
    expect(await retain('r/b', '1')).toBe(0x10)
    expect(await retain('r/c', '1')).toBe(0x97)
    expect(await retain('r/a', '2')).toBe(0x10) // its own, replaced
    expect(await retain('r/b', '')).toBe(0x10) // cleared: room again
    expect(await retain('r/c', '1')).toBe(0x10)
    const sub = await RawClient.connected(b.port, 5)
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'r/#', qos: 0 }] })
    await sub.next('suback')
    const kept = [(await sub.next('publish')) as IPublishPacket, (await sub.next('publish')) as IPublishPacket].map((p) => `${p.topic}=${p.payload.toString()}`).sort()
    expect(kept).toEqual(['r/a=2', 'r/c=1'])
    c.end()
    sub.end()
    await b.close()
  })
})

describe('limits granted by a plugin at connect', () => {
  test('a plugin raises one user\'s rate, payload and subscription limits above the broker\'s', async () => {
    const vip: Plugin = { name: 'vip', authenticate: (request) => (request.username === 'vip' ? { decision: 'allow', rate: { messagesPerSecond: 1000 }, maxPayloadBytes: 1024, maxSubscriptions: 3 } : 'abstain') }
    const b = await startBareBroker({ limits: { rate: { messagesPerSecond: 5, action: 'disconnect' }, maxPayloadBytes: 8, maxSubscriptionsPerClient: 1 }, plugins: [vip] })
    const flood = (c: RawClient) => c.sendBytes(Buffer.concat(Array.from({ length: 20 }, () => mqttPacket.generate({ cmd: 'publish', topic: 'x', payload: Buffer.alloc(100), qos: 0, retain: false, dup: false }, { protocolVersion: 5 }))))
    const big = await RawClient.connected(b.port, 5, { username: 'vip', password: Buffer.from('x') })
    flood(big)
    big.send({ cmd: 'publish', topic: 'y', payload: Buffer.alloc(1000), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await big.next('puback')) as IPubackPacket).reasonCode).toBe(0x10) // within its own limits, still connected
    big.send({ cmd: 'subscribe', messageId: 2, subscriptions: ['a', 'b', 'c', 'd'].map((topic) => ({ topic, qos: 0 as const })) })
    expect(((await big.next('suback')) as ISubackPacket).granted).toEqual([0, 0, 0, 0x97]) // three, not the broker's one
    const plain = await RawClient.connected(b.port, 5)
    flood(plain)
    expect(((await plain.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x96)
    big.end()
    await b.close()
  })
})
