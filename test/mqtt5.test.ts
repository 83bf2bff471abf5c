import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IConnackPacket, IDisconnectPacket, IPublishPacket } from 'mqtt-packet'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({ limits: { receiveMaximum: 2, topicAliasMaximum: 4, maxPacketSize: 4096 } })
})
afterAll(() => b.close())

describe('MQTT 5', () => {
  test('[MQTT-3.3.2-15..20] message properties pass through unchanged: user properties, content type, format, response topic, correlation data', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'props/x', { qos: 1 })
    const pub = await connect(b.port, { protocolVersion: 5 })
    await pub.client.publishAsync('props/x', '{"a":1}', {
      qos: 1,
      properties: {
        payloadFormatIndicator: true,
        contentType: 'application/json',
        responseTopic: 'props/reply',
        correlationData: Buffer.from('corr-1'),
        userProperties: { first: '1', second: ['a', 'b'] },
      },
    })
    const m = await sub.next()
    const p = m.packet.properties!
    expect(p.payloadFormatIndicator).toBe(true)
    expect(p.contentType).toBe('application/json')
    expect(p.responseTopic).toBe('props/reply')
    expect(Buffer.from(p.correlationData!).toString()).toBe('corr-1')
    expect(p.userProperties).toEqual({ first: '1', second: ['a', 'b'] })
    await sub.end()
    await pub.end()
  })

  test('request/response: a responder answers on the response topic with the correlation data', async () => {
    const responder = await connect(b.port, { protocolVersion: 5 })
    await subscribe(responder.client, 'svc/time', { qos: 1 })
    responder.client.on('message', (_t, _p, packet) => {
      const props = packet.properties!
      responder.client.publish(props.responseTopic!, 'noon', { qos: 1, properties: { correlationData: props.correlationData } })
    })
    const requester = await connect(b.port, { protocolVersion: 5 })
    await subscribe(requester.client, 'svc/reply/me', { qos: 1 })
    requester.client.publish('svc/time', 'what time?', { qos: 1, properties: { responseTopic: 'svc/reply/me', correlationData: Buffer.from('42') } })
    const reply = await requester.next()
    expect(reply.payload).toBe('noon')
    expect(Buffer.from(reply.packet.properties!.correlationData!).toString()).toBe('42')
    await responder.end()
    await requester.end()
  })

  test('[MQTT-3.3.2-6] message expiry interval is decremented by the time the message waited', async () => {
    const clock = new ManualClock()
    const b = await startBroker({}, { clock })
    const a = await RawClient.connected(b.port, 5, { clientId: 'mexp', properties: { sessionExpiryInterval: 60 } })
    a.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mexp', qos: 1 }] })
    await a.next('suback')
    a.end()
    await a.waitClosed()
    b.midge.publish({ topic: 'mexp', payload: 'x', qos: 1, properties: { messageExpiryInterval: 10 } })
    clock.advance(1100)
    const c = await RawClient.open(b.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'mexp', clean: false, keepalive: 0, properties: { sessionExpiryInterval: 60 } })
    const p = (await c.next('publish')) as IPublishPacket
    expect(p.properties?.messageExpiryInterval).toBe(9)
    c.end()
    await b.close()
  })

  test('[MQTT-3.3.2-12] topic aliases from the client: alias set with a topic, then used with an empty topic', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'alias/in')
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'publish', topic: 'alias/in', payload: Buffer.from('1'), qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } })
    c.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, retain: false, dup: false, properties: { topicAlias: 3 } })
    expect((await sub.next()).payload).toBe('1')
    const second = await sub.next()
    expect(second.topic).toBe('alias/in')
    expect(second.payload).toBe('2')
    c.end()
    await sub.end()
  })

  test('[MQTT-3.3.2-8, -9] topic alias 0 or above Topic Alias Maximum is DISCONNECT 0x94', async () => {
    for (const alias of [0, 5]) {
      const c = await RawClient.connected(b.port, 5)
      const bytes = aliasPublish(alias)
      c.sendBytes(bytes)
      expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x94)
      await c.waitClosed()
    }
  })

  test('an unknown topic alias with an empty topic is a protocol error (0x82)', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'publish', topic: '', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { topicAlias: 2 } })
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x82)
    await c.waitClosed()
  })

  test('the broker assigns topic aliases on what it sends when the client allows them', async () => {
    const c = await RawClient.connected(b.port, 5, { properties: { topicAliasMaximum: 1 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'out/+', qos: 0 }] })
    await c.next('suback')
    b.midge.publish({ topic: 'out/a', payload: '1' })
    b.midge.publish({ topic: 'out/a', payload: '2' })
    b.midge.publish({ topic: 'out/b', payload: '3' })
    const first = (await c.next('publish')) as IPublishPacket
    const second = (await c.next('publish')) as IPublishPacket
    const third = (await c.next('publish')) as IPublishPacket
    expect(first.topic).toBe('out/a')
    expect(first.properties?.topicAlias).toBe(1)
    expect(second.topic).toBe('')
    expect(second.properties?.topicAlias).toBe(1)
    expect(third.topic).toBe('out/b') // only one alias allowed: sent in full
    expect(third.properties?.topicAlias).toBeUndefined()
    c.end()
  })

  test('[MQTT-3.8.3-3] no local: a client does not receive its own messages', async () => {
    const c = await connect(b.port, { protocolVersion: 5 })
    await c.client.subscribeAsync('nl/x', { qos: 0, nl: true })
    const other = await connect(b.port, { protocolVersion: 5 })
    await c.client.publishAsync('nl/x', 'mine')
    await other.client.publishAsync('nl/x', 'theirs')
    expect((await c.next()).payload).toBe('theirs')
    expect(await c.quiet()).toEqual([])
    await c.end()
    await other.end()
  })

  test('[MQTT-3.3.1-12, -13] one QoS 0 message to subscribers of different kinds: each gets the RETAIN flag and properties of its own kind', async () => {
    // The broker encodes a QoS 0 PUBLISH once per kind (protocol version, RETAIN flag) and shares the bytes.
    const v4 = await connect(b.port, { protocolVersion: 4 })
    const v4b = await connect(b.port, { protocolVersion: 4 })
    const v5 = await connect(b.port, { protocolVersion: 5 })
    const v5rap = await connect(b.port, { protocolVersion: 5 })
    await subscribe(v4.client, 'kinds/t', { qos: 0 })
    await subscribe(v4b.client, 'kinds/t', { qos: 0 })
    await subscribe(v5.client, 'kinds/t', { qos: 0 })
    await subscribe(v5rap.client, 'kinds/t', { qos: 0, rap: true })
    const pub = await connect(b.port, { protocolVersion: 5 })
    for (const payload of ['one', 'two']) {
      await pub.client.publishAsync('kinds/t', payload, { qos: 0, retain: true, properties: { userProperties: { k: payload } } })
      for (const c of [v4, v4b, v5, v5rap]) {
        const m = await c.next()
        expect(m.payload).toBe(payload)
        expect(m.packet.retain).toBe(c === v5rap) // RETAIN kept only for Retain As Published
        if (c === v5 || c === v5rap) expect(m.packet.properties?.userProperties).toEqual({ k: payload })
        else expect(m.packet.properties).toBeUndefined()
      }
    }
    await pub.client.publishAsync('kinds/t', '', { qos: 0, retain: true }) // clears the retained message
    for (const c of [v4, v4b, v5, v5rap, pub]) await c.end()
  })

  test('[MQTT-3.3.4-9] the broker never has more QoS 1 messages in flight than the client Receive Maximum', async () => {
    const c = await RawClient.connected(b.port, 5, { properties: { receiveMaximum: 2 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rm', qos: 1 }] })
    await c.next('suback')
    for (let i = 0; i < 5; i++) b.midge.publish({ topic: 'rm', payload: String(i), qos: 1 })
    const a = (await c.next('publish')) as IPublishPacket
    const bb = (await c.next('publish')) as IPublishPacket
    await c.ping()
    expect(c.packets.filter((p) => p.cmd === 'publish')).toEqual([]) // window full
    c.send({ cmd: 'puback', messageId: a.messageId })
    const third = (await c.next('publish')) as IPublishPacket
    expect(third.payload.toString()).toBe('2')
    c.send({ cmd: 'puback', messageId: bb.messageId })
    c.send({ cmd: 'puback', messageId: third.messageId })
    expect(((await c.next('publish')) as IPublishPacket).payload.toString()).toBe('3')
    c.end()
  })

  test('[MQTT-3.3.4-7] a client that exceeds the broker Receive Maximum gets DISCONNECT 0x93', async () => {
    const c = await RawClient.connected(b.port, 5)
    const connack = b.midge.config.limits.receiveMaximum
    expect(connack).toBe(2)
    for (let id = 1; id <= 3; id++) {
      c.send({ cmd: 'publish', topic: 'flood', payload: Buffer.from('x'), qos: 2, messageId: id, retain: false, dup: false })
    }
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x93)
    await c.waitClosed()
  })

  test('MQTT 5 (section 3.2.2.3.6): a packet over the broker maximum packet size is DISCONNECT 0x95', async () => {
    const c = await RawClient.connected(b.port, 5)
    const connack = await RawClient.open(b.port, 5)
    connack.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'mps', clean: true, keepalive: 0 })
    expect(((await connack.next('connack')) as IConnackPacket).properties?.maximumPacketSize).toBe(4096)
    connack.end()
    c.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(5000), qos: 0, retain: false, dup: false })
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x95)
    await c.waitClosed()
  })

  test('[MQTT-3.1.2-25] a message larger than the client Maximum Packet Size is dropped, not sent', async () => {
    const c = await RawClient.connected(b.port, 5, { properties: { maximumPacketSize: 100 } })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'mps/#', qos: 1 }] })
    await c.next('suback')
    b.midge.publish({ topic: 'mps/big', payload: Buffer.alloc(500), qos: 1 })
    b.midge.publish({ topic: 'mps/small', payload: 'ok', qos: 1 })
    const p = (await c.next('publish')) as IPublishPacket
    expect(p.topic).toBe('mps/small')
    c.end()
  })

  test('MQTT 5 (section 4.12): AUTH without an authentication method is a protocol error; an auth method in CONNECT gets 0x8C', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'SCRAM-SHA-1' } })
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x82)
    await c.waitClosed()
    const e = await RawClient.open(b.port, 5)
    e.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'enh', clean: true, keepalive: 0, properties: { authenticationMethod: 'SCRAM-SHA-1' } })
    expect(((await e.next('connack')) as IConnackPacket).reasonCode).toBe(0x8c)
    await e.waitClosed()
  })
})

/** A QoS 0 PUBLISH with topic "a" and the given topic alias, encoded by hand (mqtt-packet refuses alias 0). */
function aliasPublish(alias: number): Buffer {
  // fixed header, remaining length, topic "a", properties length 3, property 0x23 (topic alias) u16, payload "x"
  return Buffer.from([0x30, 8, 0, 1, 0x61, 3, 0x23, alias >> 8, alias & 0xff, 0x78])
}
