import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IPubackPacket, IPublishPacket, IPubrecPacket, IPubcompPacket, IPubrelPacket } from 'mqtt-packet'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

describe('PUBLISH and QoS', () => {
  for (const version of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      test(`MQTT ${version === 4 ? '3.1.1' : '5.0'} QoS ${qos} end to end`, async () => {
        const sub = await connect(b.port, { protocolVersion: version })
        const pub = await connect(b.port, { protocolVersion: version })
        await subscribe(sub.client, `q/${version}/${qos}`, { qos })
        await pub.client.publishAsync(`q/${version}/${qos}`, `hello ${qos}`, { qos })
        const m = await sub.next()
        expect(m.topic).toBe(`q/${version}/${qos}`)
        expect(m.payload).toBe(`hello ${qos}`)
        expect(m.packet.qos).toBe(qos)
        await sub.end()
        await pub.end()
      })
    }
  }

  test('[MQTT-3.8.4-8] QoS is downgraded to the subscription maximum', async () => {
    const sub = await connect(b.port)
    const pub = await connect(b.port)
    await subscribe(sub.client, 'down/#', { qos: 1 })
    await pub.client.publishAsync('down/x', 'x', { qos: 2 })
    expect((await sub.next()).packet.qos).toBe(1)
    await subscribe(sub.client, 'down0/#', { qos: 0 })
    await pub.client.publishAsync('down0/x', 'x', { qos: 2 })
    expect((await sub.next()).packet.qos).toBe(0)
    await sub.end()
    await pub.end()
  })

  test('(section 4.3.2) QoS 1 publish is acknowledged with PUBACK carrying the packet id', async () => {
    const c = await RawClient.connected(b.port, 4)
    c.send({ cmd: 'publish', topic: 'ack/1', payload: Buffer.from('x'), qos: 1, messageId: 4242, retain: false, dup: false })
    const ack = (await c.next('puback')) as IPubackPacket
    expect(ack.messageId).toBe(4242)
    c.end()
  })

  test('(section 4.3.3) full QoS 2 flow from the publisher: PUBREC, PUBREL, PUBCOMP', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'publish', topic: 'ack/2', payload: Buffer.from('x'), qos: 2, messageId: 7, retain: false, dup: false })
    expect(((await c.next('pubrec')) as IPubrecPacket).messageId).toBe(7)
    c.send({ cmd: 'pubrel', messageId: 7 })
    const comp = (await c.next('pubcomp')) as IPubcompPacket
    expect(comp.messageId).toBe(7)
    expect(comp.reasonCode ?? 0).toBe(0)
    // PUBREL for an id the broker does not know: MQTT 5 says so with 0x92.
    c.send({ cmd: 'pubrel', messageId: 99 })
    expect(((await c.next('pubcomp')) as IPubcompPacket).reasonCode).toBe(0x92)
    c.end()
  })

  test('[MQTT-4.3.3-10] a resent QoS 2 PUBLISH with the same id is not delivered twice', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, 'dup2', { qos: 2 })
    const c = await RawClient.connected(b.port, 4)
    const publish: IPublishPacket = { cmd: 'publish', topic: 'dup2', payload: Buffer.from('once'), qos: 2, messageId: 11, retain: false, dup: false }
    c.send(publish)
    await c.next('pubrec')
    c.send({ ...publish, dup: true })
    await c.next('pubrec')
    c.send({ cmd: 'pubrel', messageId: 11 })
    await c.next('pubcomp')
    expect((await sub.next()).payload).toBe('once')
    expect(await sub.quiet()).toEqual([])
    // After PUBCOMP the id is free again: a new message with id 11 is delivered.
    c.send({ ...publish, payload: Buffer.from('twice') })
    await c.next('pubrec')
    expect((await sub.next()).payload).toBe('twice')
    c.end()
    await sub.end()
  })

  test('(section 4.3.3) QoS 2 to a subscriber: PUBLISH, PUBREC, PUBREL, PUBCOMP', async () => {
    const s = await RawClient.connected(b.port, 4)
    s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'two/way', qos: 2 }] })
    await s.next('suback')
    b.midge.publish({ topic: 'two/way', payload: 'p', qos: 2 })
    const p = (await s.next('publish')) as IPublishPacket
    expect(p.qos).toBe(2)
    s.send({ cmd: 'pubrec', messageId: p.messageId })
    const rel = (await s.next('pubrel')) as IPubrelPacket
    expect(rel.messageId).toBe(p.messageId)
    s.send({ cmd: 'pubcomp', messageId: p.messageId })
    s.end()
  })

  test('[MQTT-2.2.1-4] inbound and outbound packet ids are separate spaces (section 2.2.1)', async () => {
    // The client uses id 1 for its own QoS 2 publish and leaves it open; the broker's publish to it
    // must still complete, whatever id the broker picks.
    const c = await RawClient.connected(b.port, 4)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'ids', qos: 2 }] })
    await c.next('suback')
    c.send({ cmd: 'publish', topic: 'ids', payload: Buffer.from('mine'), qos: 2, messageId: 1, retain: false, dup: false })
    await c.next('pubrec')
    const incoming = (await c.next('publish')) as IPublishPacket
    expect(incoming.payload.toString()).toBe('mine')
    expect(incoming.messageId).toBe(1) // the broker's own first id
    c.send({ cmd: 'pubrec', messageId: incoming.messageId })
    expect(((await c.next('pubrel')) as IPubrelPacket).messageId).toBe(1)
    c.send({ cmd: 'pubcomp', messageId: 1 })
    // Now release the client's own message 1: the broker answers PUBCOMP for the inbound id.
    c.send({ cmd: 'pubrel', messageId: 1 })
    expect(((await c.next('pubcomp')) as IPubcompPacket).messageId).toBe(1)
    c.end()
  })

  test('[MQTT-4.4.0-1] unacknowledged QoS 1 and 2 messages are resent with DUP on session resume', async () => {
    const s = await RawClient.connected(b.port, 4, { clientId: 'resume', clean: false })
    s.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'resume/#', qos: 2 }] })
    await s.next('suback')
    b.midge.publish({ topic: 'resume/1', payload: 'one', qos: 1 })
    b.midge.publish({ topic: 'resume/2', payload: 'two', qos: 2 })
    const first = (await s.next('publish')) as IPublishPacket
    const second = (await s.next('publish')) as IPublishPacket
    expect(first.dup).toBe(false)
    // Acknowledge the QoS 2 halfway (PUBREC) and the QoS 1 not at all, then drop the connection.
    s.send({ cmd: 'pubrec', messageId: second.messageId })
    await s.next('pubrel')
    s.end()
    await s.waitClosed()

    const again = await RawClient.open(b.port, 4)
    again.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'resume', clean: false, keepalive: 0 })
    const connack = await again.next('connack')
    expect((connack as { sessionPresent: boolean }).sessionPresent).toBe(true)
    const resent = (await again.next('publish')) as IPublishPacket
    expect(resent.dup).toBe(true)
    expect(resent.messageId).toBe(first.messageId)
    expect(resent.payload.toString()).toBe('one')
    const rel = (await again.next('pubrel')) as IPubrelPacket
    expect(rel.messageId).toBe(second.messageId)
    again.end()
  })
})
