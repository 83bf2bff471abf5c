import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { PacketReader, type PublishPacket } from '../src/protocol/codec.ts'
import { until, type TestBroker } from './helpers/broker.ts'
import { profiles } from './helpers/profiles.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
let bystander: TestClient
let sender: TestClient

/** After each attack, the well-behaved pair still exchange a message. */
async function othersGoOn(): Promise<void> {
  const payload = `ok-${Math.random()}`
  await sender.client.publishAsync('alive', payload, { qos: 1 })
  let m
  do m = await bystander.next()
  while (m.payload !== payload)
  expect(bystander.client.connected).toBe(true)
}

const attacks: Array<[string, number[] | Buffer]> = [
  ['reserved packet type 0', [0x00, 0x00]],
  ['reserved packet type 15 in 3.1.1', [0xf0, 0x00]],
  ['SUBSCRIBE with reserved flags 0000 [MQTT-3.8.1-1]', [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00]],
  ['PUBLISH with both QoS bits set [MQTT-3.3.1-4]', [0x36, 0x03, 0x00, 0x01, 0x61]],
  ['remaining length encoded in 5 bytes', [0x30, 0xff, 0xff, 0xff, 0xff, 0x01]],
  ['5-byte header announcing a 256 MB body', [0x30, 0xff, 0xff, 0xff, 0x7f]],
  ['SUBSCRIBE with no topic filters [MQTT-3.8.3-2]', [0x82, 0x02, 0x00, 0x01]],
  ['truncated PUBLISH topic length', [0x30, 0x02, 0x00, 0x09]],
  // With a store, the ack of a QoS 1/2 PUBLISH waits for its flush: a packet with no room for its identifier once
  // crashed the broker from that promise callback.
  ['QoS 1 PUBLISH whose topic fills the body: no packet identifier [MQTT-2.2.1-3]', [0x32, 0x03, 0x00, 0x01, 0x61]],
  ['QoS 2 PUBLISH whose topic fills the body: no packet identifier [MQTT-2.2.1-3]', [0x34, 0x03, 0x00, 0x01, 0x61]],
  ['PUBACK of 0 bytes (section 3.4.2)', [0x40, 0x00]],
  ['PUBREC of 1 byte (section 3.5.2)', [0x50, 0x01, 0x07]],
  ['PUBREL of 0 bytes (section 3.6.2)', [0x62, 0x00]],
  ['PUBCOMP of 1 byte (section 3.7.2)', [0x70, 0x01, 0x00]],
  ['PUBREC of 0 bytes followed by a PINGREQ (the parser must not read the next packet as its identifier)', [0x50, 0x00, 0xc0, 0x00]],
  ['PINGREQ with a payload (section 3.12.1)', [0xc0, 0x02, 0x00, 0x00]],
  ['QoS 0 PUBLISH with DUP set [MQTT-3.3.1-2]', [0x38, 0x03, 0x00, 0x01, 0x61]],
]

for (const profile of profiles) describe(`bad input (${profile.name})`, () => {
beforeAll(async () => {
  b = await profile.start({ limits: { maxPacketSize: 64 * 1024 } })
  bystander = await connect(b.port, { clientId: 'bystander' })
  await subscribe(bystander.client, 'alive', { qos: 1 })
  sender = await connect(b.port, { clientId: 'sender' })
})
afterAll(async () => {
  await bystander.end()
  await sender.end()
  await b.close()
})

describe('bad input closes only the offending connection', () => {
  for (const [name, bytes] of attacks) {
    test(name, async () => {
      const c = await RawClient.connected(b.port, 4)
      const logged = b.logs.length
      c.sendBytes(Buffer.from(bytes))
      await c.waitClosed()
      await until(() => b.logs.slice(logged).some((l) => l.event === 'client.malformed_packet' || l.event === 'client.protocol_error'))
      expect(b.logs.slice(logged).filter((l) => l.event === 'client.handler_error' || String(l.event).startsWith('process.'))).toEqual([]) // never 0x83 "internal error"
      await othersGoOn()
    })
  }

  test('MQTT 5: a packet announced larger than the maximum gets DISCONNECT 0x95 before its body arrives', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.sendBytes(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])) // 256 MB announced, no body sent
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x95)
    await c.waitClosed()
    await othersGoOn()
  })

  test('MQTT 5: a malformed packet gets DISCONNECT 0x81', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.sendBytes(Buffer.from([0x36, 0x03, 0x00, 0x01, 0x61])) // PUBLISH with both QoS bits set
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x81)
    await c.waitClosed()
  })

  test('[MQTT-3.8.3-2] MQTT 5: SUBSCRIBE without topic filters gets DISCONNECT 0x82', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.sendBytes(Buffer.from([0x82, 0x03, 0x00, 0x01, 0x00])) // packet id 1, no properties, no filters
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x82)
    await c.waitClosed()
  })

  test('garbage instead of CONNECT closes the socket', async () => {
    const c = await RawClient.open(b.port, 4)
    c.sendBytes(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await c.waitClosed()
    await othersGoOn()
  })

  test('packet id 0 on a QoS 1 PUBLISH is malformed [MQTT-2.2.1-3]', async () => {
    const c = await RawClient.connected(b.port, 4)
    c.sendBytes(Buffer.from([0x32, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x78]))
    await c.waitClosed()
    await othersGoOn()
  })

  test('a peer that disappears mid-packet leaves nothing behind', async () => {
    const before = b.midge.broker.clients.size
    const c = await RawClient.connected(b.port, 4)
    c.sendBytes(Buffer.from([0x30, 0x20, 0x00])) // a PUBLISH cut short
    c.end()
    await c.waitClosed()
    await until(() => b.midge.broker.clients.size === before)
    await othersGoOn()
  })
})

describe('framing', () => {
  const stream: Packet[] = [
    { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'split', clean: true, keepalive: 0 },
    { cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'split/#', qos: 1 }] },
    { cmd: 'publish', topic: 'split/a', payload: Buffer.from('x'.repeat(300)), qos: 1, messageId: 2, retain: false, dup: false },
    { cmd: 'pingreq' },
  ]
  const bytes = Buffer.concat(stream.map((p) => mqttPacket.generate(p, { protocolVersion: 4 })))

  test('the parser yields the same packets however the bytes are split (every boundary, one byte at a time)', () => {
    for (let cut = 1; cut < bytes.length; cut++) {
      const got: string[] = []
      const reader = new PacketReader(1 << 20, { onPacket: (p) => got.push(p.cmd), onParseError: (e) => got.push(`error ${e.message}`) })
      reader.feed(bytes.subarray(0, cut))
      reader.feed(bytes.subarray(cut))
      expect(got).toEqual(['connect', 'subscribe', 'publish', 'pingreq'])
    }
    const got: string[] = []
    const reader = new PacketReader(1 << 20, { onPacket: (p) => got.push(p.cmd), onParseError: (e) => got.push(`error ${e.message}`) })
    for (let i = 0; i < bytes.length; i++) reader.feed(bytes.subarray(i, i + 1))
    expect(got).toEqual(['connect', 'subscribe', 'publish', 'pingreq'])
  })

  test('packets cut anywhere across many reads decode to what was sent, and a forwarded PUBLISH is its own bytes', () => {
    // PUBLISHes with remaining lengths of 1, 2 and 3 bytes, and PINGREQs (a whole packet in 2 bytes), in random order.
    let seed = 9
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return seed % n
    }
    const sent: Packet[] = [stream[0]!]
    for (let i = 0; i < 60; i++) {
      const size = [0, 10, 120, 200, 20_000][random(5)]!
      sent.push(random(6) === 0 ? { cmd: 'pingreq' } : { cmd: 'publish', topic: `t/${i}`, payload: Buffer.alloc(size, 97 + (i % 26)), qos: 0, retain: false, dup: false })
    }
    const encoded = sent.map((p) => mqttPacket.generate(p, { protocolVersion: 4 }))
    const all = Buffer.concat(encoded)
    for (let trial = 0; trial < 200; trial++) {
      const got: Array<{ cmd: string; topic?: string; payload?: string; forwarded?: string }> = []
      const reader = new PacketReader(1 << 20, {
        onPacket: (p) => {
          if (p.cmd === 'connect') reader.connected(4, false)
          const publish = p as PublishPacket
          got.push(p.cmd === 'publish' ? { cmd: p.cmd, topic: publish.topic, payload: publish.payload.toString(), forwarded: publish.forwardable?.toString('hex') } : { cmd: p.cmd })
        },
        onParseError: (e) => got.push({ cmd: `error ${e.message}` }),
      })
      // Pieces of 1 to 8 bytes (cut headers), to a few hundred (cut bodies), to whole runs of packets.
      for (let at = 0; at < all.length; ) {
        const piece = [1 + random(8), 1 + random(300), 1 + random(40_000)][random(3)]!
        reader.feed(Buffer.from(all.subarray(at, at + piece))) // each read a buffer of its own, as a socket gives
        at += piece
      }
      expect(got).toEqual(sent.map((p, i) => (p.cmd === 'publish' ? { cmd: 'publish', topic: p.topic, payload: (p.payload as Buffer).toString(), forwarded: encoded[i]!.toString('hex') } : { cmd: p.cmd })))
    }
  })

  test('the broker handles a client that sends one byte per write', async () => {
    const c = await RawClient.open(b.port, 4)
    for (let i = 0; i < bytes.length; i++) {
      c.sendBytes(bytes.subarray(i, i + 1))
      if (i % 16 === 0) await Bun.sleep(1)
    }
    expect((await c.next('connack')).cmd).toBe('connack')
    expect((await c.next('suback')).cmd).toBe('suback')
    const p = await c.next('publish')
    expect((p as { payload: Buffer }).payload.length).toBe(300)
    await c.next('puback')
    await c.next('pingresp')
    c.end()
  })
})
})
