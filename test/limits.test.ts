/** Limits that protect the broker: each hit, with the documented behaviour. */
import { describe, expect, test } from 'bun:test'
import type { IConnackPacket, ISubackPacket, IPublishPacket } from 'mqtt-packet'
import { until } from './helpers/broker.ts'
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
})
