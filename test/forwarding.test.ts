/**
 * A QoS 0 PUBLISH that needs no change is forwarded with the bytes it came in (codec.ts `forwardable`); every other
 * one is encoded for its subscriber. Either way each subscriber must get, byte for byte, the PUBLISH its protocol
 * version and subscription call for. Raw sockets on both sides, so the assertion is on the bytes on the wire.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet'
import { keepEncoded, messageOfPacket, own } from '../src/message.ts'
import type { PublishPacket } from '../src/protocol/codec.ts'
import { profiles, type ProfileBroker } from './helpers/profiles.ts'
import { RawClient, type Version } from './helpers/raw.ts'

const encode = (packet: Packet, version: Version) => mqttPacket.generate(packet, { protocolVersion: version })
const publish = (topic: string, payload: string, extra: Partial<IPublishPacket> = {}): IPublishPacket => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false, ...extra })

/** A QoS 0 PUBLISH of `remaining` bytes of body whose remaining length is written in `width` bytes (more than needed when width > 1). */
function withWideLength(packet: IPublishPacket, version: Version, width: number): Buffer {
  const minimal = encode(packet, version)
  const body = minimal.subarray(2) // bodies under 128 bytes: a one-byte length
  const length: number[] = []
  for (let i = 0, n = body.length; i < width; i++, n >>= 7) length.push((n & 0x7f) | (i < width - 1 ? 0x80 : 0))
  return Buffer.concat([minimal.subarray(0, 1), Buffer.from(length), body])
}

for (const profile of profiles) describe(`PUBLISH bytes as each subscriber gets them (${profile.name})`, () => {
  let broker: ProfileBroker
  beforeAll(async () => {
    broker = await profile.start()
  })
  afterAll(() => broker.close())

  /** Subscribers of `filter` of each version (one MQTT 5 one with a subscription identifier), their byte logs emptied. */
  async function subscribers(filter: string) {
    const subs: Array<{ version: Version; client: RawClient; id?: number }> = []
    for (const [version, id] of [[3], [4], [5], [5, 7]] as Array<[Version, number?]>) {
      const client = await RawClient.connected(broker.port, version)
      const properties = id === undefined ? undefined : { subscriptionIdentifier: id }
      client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }], properties } as Packet)
      await client.next('suback')
      client.takeBytes()
      subs.push({ version, client, id })
    }
    return subs
  }

  /** What a subscriber of `version` must get for `sent`, as the spec encodes it: no DUP, RETAIN cleared on live delivery [MQTT-3.3.1-9]. */
  function expected(sent: IPublishPacket[], version: Version, id: number | undefined): Buffer {
    return Buffer.concat(sent.map((p) => {
      const properties = version === 5 ? { ...p.properties, ...(id === undefined ? {} : { subscriptionIdentifier: id }) } : undefined
      return encode({ ...p, retain: false, dup: false, properties: properties && Object.keys(properties).length > 0 ? properties : undefined } as Packet, version)
    }))
  }

  for (const publisherVersion of [3, 4, 5] as Version[]) {
    test(`from an MQTT ${publisherVersion === 3 ? '3.1' : publisherVersion === 4 ? '3.1.1' : '5'} publisher: several in one read, each subscriber gets well-formed packets of its own version`, async () => {
      const filter = `fw/${publisherVersion}/#`
      const subs = await subscribers(filter)
      const publisher = await RawClient.connected(broker.port, publisherVersion)
      const sent = [
        publish(`fw/${publisherVersion}/a`, 'first'),
        publish(`fw/${publisherVersion}/b/ü温`, 'not ascii'),
        publish(`fw/${publisherVersion}/a`, ''),
        ...(publisherVersion === 5
          ? [
              publish('fw/5/props', 'with properties', { properties: { contentType: 'text/plain', userProperties: { k: 'v' } } }),
              publish('fw/5/aliased', 'alias set', { properties: { topicAlias: 1 } }),
              publish('', 'by alias', { properties: { topicAlias: 1 } }), // [MQTT-3.3.2-12] the topic is the alias's
            ]
          : []),
        publish(`fw/${publisherVersion}/last`, 'x'.repeat(200)), // a two-byte remaining length, and the last packet of the read
      ]
      publisher.sendBytes(Buffer.concat(sent.map((p) => encode(p, publisherVersion))))
      await publisher.ping() // handled: every subscriber has been written to
      // What the subscribers are sent: topics in full, no topic alias (none of them allows any).
      const meant = sent.map(({ properties, ...p }) => {
        const { topicAlias, ...rest } = properties ?? {}
        return { ...p, topic: p.topic || 'fw/5/aliased', properties: topicAlias === undefined ? properties : rest }
      })
      for (const { version, client, id } of subs) {
        await client.ping()
        const pingresp = encode({ cmd: 'pingresp' }, version)
        expect(client.takeBytes()).toEqual(Buffer.concat([expected(meant, version, id), pingresp]))
        client.end()
      }
      publisher.end()
    })
  }

  test('a remaining length written in more bytes than needed is accepted, and subscribers get it in the fewest [MQTT-1.5.5-1]', async () => {
    const subs = await subscribers('fw/wide/#')
    const publisher = await RawClient.connected(broker.port, 4)
    const sent = [publish('fw/wide/2', 'two'), publish('fw/wide/3', 'three'), publish('fw/wide/4', 'four')]
    publisher.sendBytes(Buffer.concat(sent.map((p, i) => withWideLength(p, 4, i + 2))))
    await publisher.ping()
    for (const { version, client, id } of subs) {
      await client.ping()
      expect(client.takeBytes()).toEqual(Buffer.concat([expected(sent, version, id), encode({ cmd: 'pingresp' }, version)]))
      client.end()
    }
    publisher.end()
  })

  test('a retained QoS 0 message goes live without RETAIN [MQTT-3.3.1-9] and to a later subscriber with it [MQTT-3.3.1-6]', async () => {
    const subs = await subscribers('fw/kept/#')
    const publisher = await RawClient.connected(broker.port, 4)
    const sent = publish('fw/kept/1', 'kept', { retain: true })
    publisher.send(sent)
    await publisher.ping()
    for (const { version, client, id } of subs) {
      await client.ping()
      expect(client.takeBytes()).toEqual(Buffer.concat([expected([sent], version, id), encode({ cmd: 'pingresp' }, version)]))
      client.end()
    }
    const later = await RawClient.connected(broker.port, 4)
    later.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fw/kept/#', qos: 0 }] })
    await later.next('suback')
    expect(await later.next('publish')).toMatchObject({ topic: 'fw/kept/1', retain: true, payload: Buffer.from('kept') })
    later.end()
    publisher.send(publish('fw/kept/1', '', { retain: true })) // clear it
    await publisher.ping()
    publisher.end()
  })
})

describe('a message kept for later', () => {
  test('lets go of the bytes it came in with, as of its payload: both are views of the read', () => {
    const read = Buffer.concat([encode(publish('a/b', 'first'), 4), encode(publish('a/c', 'second'), 4)])
    const bytes = read.subarray(0, 12) // the first PUBLISH: 2 + 2 + 3 + 5 bytes
    const packet: PublishPacket = { ...publish('a/b', ''), payload: bytes.subarray(7), forwardable: bytes }
    const message = messageOfPacket(packet, 'publisher', { now: () => 0 }, 0, 4)
    expect(message.encoded).toBe(bytes)
    expect(message.encodedSlot).toBe(0)
    own(message)
    expect(message.encoded).toBeUndefined()
    expect(message.payload.buffer).not.toBe(read.buffer)
    expect(message.payload).toEqual(Buffer.from('first'))
  })

  test('keeps an encoding of its own (a copy, not a view of the read)', () => {
    const read = encode(publish('a/b', 'first'), 4)
    const message = messageOfPacket({ ...publish('a/b', ''), payload: read.subarray(7) }, 'publisher', { now: () => 0 }, 0, 5)
    expect(message.encoded).toBeUndefined()
    const encoded = keepEncoded(message, 2, encode(publish('a/b', 'first'), 5))
    own(message)
    expect(message.encoded).toBe(encoded)
  })
})
