/**
 * What the specification calls malformed or a protocol error is refused: one row per rule, with its tag, the bytes
 * sent and the answer expected. Each row runs for MQTT 3.1.1 and 5.0 where it applies, against the bare broker and
 * the default config's plugins (where the ack of a QoS 1/2 PUBLISH waits for the store). A refusal never comes as
 * 0x83 "internal error", and the broker goes on serving others.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Packet } from 'mqtt-packet'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { prop, rawConnect5, rawPublish5, rawSubscribe5, rawWithProps5 } from './helpers/fuzz.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'
import { profiles } from './helpers/profiles.ts'
import { RawClient } from './helpers/raw.ts'

/** What the client sees: DISCONNECT with a code (MQTT 5), CONNACK with a code, a close with no packet, silence, or an answer. */
type Outcome = { disconnect: number } | { connack: number } | 'closed' | 'open, no answer' | { answer: Packet['cmd'] }

interface Row {
  tag: string
  rule: string
  /** Sent after a successful CONNECT, or (connect: true) instead of one. */
  bytes: (version: 4 | 5) => Buffer | number[]
  connect?: boolean
  versions: Array<4 | 5>
  /** Expected outcome per version; 3.1.1 refusals close the connection without a word. */
  expect: (version: 4 | 5) => Outcome
}

const closeOr = (code: number) => (version: 4 | 5): Outcome => (version === 5 ? { disconnect: code } : 'closed')
const both: Array<4 | 5> = [4, 5]
const v5: Array<4 | 5> = [5]
const ill = [0xed, 0xa0, 0x80] // a UTF-16 surrogate, encoded: ill-formed UTF-8

const rows: Row[] = [
  // Properties (MQTT 5.0 section 2.2.2.2).
  { tag: '§2.2.2.2', rule: 'a property its packet may not carry (Session Expiry Interval in SUBSCRIBE) is malformed', bytes: () => rawSubscribe5(prop.sessionExpiry(5)), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'a property PUBACK may not carry (Topic Alias) is malformed', bytes: () => rawWithProps5(0x40, [0x00, 0x09, 0x00], prop.topicAlias(1)), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'a property PUBREL may not carry (Message Expiry Interval) is malformed', bytes: () => rawWithProps5(0x62, [0x00, 0x09, 0x00], prop.messageExpiry(1)), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'a property UNSUBSCRIBE may not carry (Session Expiry Interval) is malformed', bytes: () => rawWithProps5(0xa2, [0x00, 0x01], prop.sessionExpiry(1), [0x00, 0x01, 0x61]), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'a property DISCONNECT may not carry (Topic Alias) is malformed', bytes: () => rawWithProps5(0xe0, [0x00], prop.topicAlias(1)), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'a single-use property given twice in DISCONNECT (Session Expiry Interval 0, twice) is a protocol error', bytes: () => rawWithProps5(0xe0, [0x00], [...prop.sessionExpiry(0), ...prop.sessionExpiry(0)]), versions: v5, expect: closeOr(0x82) },
  { tag: '§2.2.2.2', rule: 'a single-use property given twice in PUBACK (Reason String) is a protocol error', bytes: () => rawWithProps5(0x40, [0x00, 0x09, 0x00], [0x1f, 0x00, 0x00, 0x1f, 0x00, 0x00]), versions: v5, expect: closeOr(0x82) },
  { tag: '§2.2.2.2', rule: 'Payload Format Indicator 0, twice, is a protocol error (a repeat of a false value is not lost)', bytes: () => rawPublish5('pfi', 0, [...prop.payloadFormat(0), ...prop.payloadFormat(0)]), versions: v5, expect: closeOr(0x82) },
  { tag: '§2.2.2.2', rule: 'a single-use property given twice (Message Expiry Interval) is a protocol error', bytes: () => rawPublish5('dup', 1, [...prop.messageExpiry(1), ...prop.messageExpiry(2)]), versions: v5, expect: closeOr(0x82) },
  { tag: '§2.2.2.2', rule: 'Topic Alias given twice is a protocol error', bytes: () => rawPublish5('dup', 0, [...prop.topicAlias(1), ...prop.topicAlias(2)]), versions: v5, expect: closeOr(0x82) },
  { tag: '§3.8.2.1.2', rule: 'Subscription Identifier given twice in SUBSCRIBE is a protocol error', bytes: () => rawSubscribe5([...prop.subscriptionId(1), ...prop.subscriptionId(2)]), versions: v5, expect: closeOr(0x82) },
  { tag: '§2.2.2.2', rule: 'a property value cut short by the property length is malformed', bytes: () => rawPublish5('short', 1, [0x02, 0x00]), versions: v5, expect: closeOr(0x81) },
  { tag: '§2.2.2.2', rule: 'an undefined property identifier is malformed', bytes: () => rawPublish5('unknown', 1, [0x7f, 0x00]), versions: v5, expect: closeOr(0x81) },
  { tag: '§3.3.2.3.2', rule: 'a Payload Format Indicator of 0xED is refused, not forwarded as 1', bytes: () => rawPublish5('pfi', 1, prop.payloadFormat(0xed)), versions: v5, expect: closeOr(0x82) },
  { tag: '§3.3.2.3.2', rule: 'a Payload Format Indicator of 56 is refused', bytes: () => rawPublish5('pfi', 0, prop.payloadFormat(56)), versions: v5, expect: closeOr(0x82) },
  { tag: 'MQTT-3.3.4-6', rule: 'a Subscription Identifier in a PUBLISH from a client is a protocol error', bytes: () => rawPublish5('sid', 1, prop.subscriptionId(3)), versions: v5, expect: closeOr(0x82) },
  { tag: 'MQTT-3.3.2-14', rule: 'a Response Topic with a wildcard is a protocol error', bytes: () => rawPublish5('req', 1, prop.responseTopic('replies/+')), versions: v5, expect: closeOr(0x82) },
  // Acks and pings with the wrong length.
  ...(['PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'] as const).flatMap((name, k): Row[] => {
    const first = [0x40, 0x50, 0x62, 0x70][k]!
    return [0, 1].map((length) => ({ tag: `§3.${4 + k}.2`, rule: `${name} with a remaining length of ${length} is malformed`, bytes: () => [first, length, ...Array(length).fill(0x07)], versions: both, expect: closeOr(0x81) }))
  }),
  { tag: '§3.12.1', rule: 'a PINGREQ carrying a payload gets no PINGRESP: it is malformed', bytes: () => [0xc0, 0x02, 0x00, 0x00], versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-2.2.1-3', rule: 'a SUBSCRIBE with packet identifier 0 is malformed', bytes: (v) => (v === 5 ? rawSubscribe5([], [0x61], 0) : [0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00]), versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-2.2.1-3', rule: 'an UNSUBSCRIBE with packet identifier 0 is malformed', bytes: (v) => (v === 5 ? [0xa2, 0x06, 0x00, 0x00, 0x00, 0x00, 0x01, 0x61] : [0xa2, 0x05, 0x00, 0x00, 0x00, 0x01, 0x61]), versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-2.2.1-3', rule: 'a QoS 1 PUBLISH with no room for its packet identifier is malformed', bytes: () => [0x32, 0x03, 0x00, 0x01, 0x61], versions: both, expect: closeOr(0x81) },
  // Flags.
  { tag: 'MQTT-3.3.1-2', rule: 'DUP set on a QoS 0 PUBLISH is malformed', bytes: () => [0x38, 0x03, 0x00, 0x01, 0x61], versions: both, expect: closeOr(0x81) },
  // UTF-8 strings (section 1.5.4).
  { tag: 'MQTT-1.5.4-2', rule: 'a topic filter holding U+0000 closes the connection', bytes: (v) => (v === 5 ? rawSubscribe5([], [0x61, 0x00]) : [0x82, 0x07, 0x00, 0x01, 0x00, 0x02, 0x61, 0x00, 0x00]), versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-1.5.4-1', rule: 'a topic filter of ill-formed UTF-8 closes the connection', bytes: (v) => (v === 5 ? rawSubscribe5([], [0x61, ...ill]) : [0x82, 0x09, 0x00, 0x01, 0x00, 0x04, 0x61, ...ill, 0x00]), versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-1.5.4-2', rule: 'an UNSUBSCRIBE filter holding U+0000 closes the connection, as in SUBSCRIBE', bytes: (v) => (v === 5 ? [0xa2, 0x07, 0x00, 0x01, 0x00, 0x00, 0x02, 0x61, 0x00] : [0xa2, 0x06, 0x00, 0x01, 0x00, 0x02, 0x61, 0x00]), versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-4.7.3-1', rule: 'SUBSCRIBE to an empty filter gets SUBACK 0x8F (3.1.1: 0x80) and the connection stays', bytes: (v) => (v === 5 ? rawSubscribe5([], []) : [0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]), versions: both, expect: () => ({ answer: 'suback' }) },
  { tag: 'MQTT-1.5.4-1', rule: 'a topic name of ill-formed UTF-8 closes the connection', bytes: () => [0x30, 0x05, 0x00, 0x03, ...ill], versions: both, expect: closeOr(0x81) },
  { tag: 'MQTT-1.5.4-1', rule: 'a topic name holding a well-formed U+FFFD is accepted and routed', bytes: () => [0x32, 0x07, 0x00, 0x03, 0xef, 0xbf, 0xbd, 0x00, 0x01], versions: both, expect: () => ({ answer: 'puback' }) },
  // CONNECT.
  { tag: 'MQTT-1.5.4-2', rule: 'a client identifier holding U+0000 is refused', connect: true, bytes: (v) => rawConnect5({ version: v, clientId: [0x61, 0x00] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: 'MQTT-1.5.4-2', rule: 'a user name holding U+0000 is refused', connect: true, bytes: (v) => rawConnect5({ version: v, username: [0x75, 0x00] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: 'MQTT-1.5.4-1', rule: 'a user name holding a UTF-16 surrogate is refused', connect: true, bytes: (v) => rawConnect5({ version: v, username: [0x75, ...ill] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: 'MQTT-1.5.4-2', rule: 'a will topic holding U+0000 is refused (3.1.1: without a CONNACK)', connect: true, bytes: (v) => rawConnect5({ version: v, willTopic: [0x77, 0x00], willProps: [] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: 'MQTT-1.5.4-1', rule: 'a client identifier holding a UTF-16 surrogate is refused', connect: true, bytes: (v) => rawConnect5({ version: v, clientId: [0x61, ...ill] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: 'MQTT-3.1.2-12', rule: 'will QoS 3 is malformed', connect: true, bytes: (v) => rawConnect5({ version: v, willQoS: 3, willProps: [] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x81 } : 'closed') },
  { tag: '3.1.1: MQTT-3.1.2-22', rule: 'on 3.1.1 a password flag without a user name flag is refused', connect: true, bytes: () => rawConnect5({ version: 4, password: 'pw' }), versions: [4], expect: () => 'closed' },
  { tag: '§3.1.2.9', rule: 'on MQTT 5 a password without a user name is allowed', connect: true, bytes: () => rawConnect5({ version: 5, password: 'pw' }), versions: v5, expect: () => ({ connack: 0 }) },
  { tag: '§3.1.2.11.7', rule: 'Request Problem Information of 2 is a protocol error', connect: true, bytes: () => rawConnect5({ props: prop.requestProblemInformation(2) }), versions: v5, expect: () => ({ connack: 0x82 }) },
  { tag: '§2.2.2.2', rule: 'will delay given twice is a protocol error (it armed a NaN timer)', connect: true, bytes: () => rawConnect5({ willProps: [...prop.willDelay(1), ...prop.willDelay(2)] }), versions: v5, expect: () => ({ connack: 0x82 }) },
  { tag: 'MQTT-4.7.3-1', rule: 'an empty will topic: 3.1.1 is closed without a CONNACK, MQTT 5 gets 0x90', connect: true, bytes: (v) => rawConnect5({ version: v, willTopic: '', willProps: [] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x90 } : 'closed') },
  { tag: 'MQTT-3.3.2-2', rule: 'a will topic with a wildcard: 3.1.1 is closed without a CONNACK, MQTT 5 gets 0x90', connect: true, bytes: (v) => rawConnect5({ version: v, willTopic: 'a/#', willProps: [] }), versions: both, expect: (v) => (v === 5 ? { connack: 0x90 } : 'closed') },
  // Topic filters that are well-formed strings but not valid filters: refused per filter, alike in SUBSCRIBE and UNSUBSCRIBE.
  { tag: 'MQTT-4.7.1-1', rule: 'SUBSCRIBE to "#/a" gets SUBACK 0x8F (3.1.1: 0x80) and the connection stays', bytes: (v) => (v === 5 ? rawSubscribe5([], [...Buffer.from('#/a')]) : [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, ...Buffer.from('#/a'), 0x00]), versions: both, expect: () => ({ answer: 'suback' }) },
  { tag: 'MQTT-4.7.1-1', rule: 'UNSUBSCRIBE from "#/a" gets UNSUBACK (MQTT 5: 0x8F) and the connection stays', bytes: (v) => (v === 5 ? [0xa2, 0x08, 0x00, 0x01, 0x00, 0x00, 0x03, ...Buffer.from('#/a')] : [0xa2, 0x07, 0x00, 0x01, 0x00, 0x03, ...Buffer.from('#/a')]), versions: both, expect: () => ({ answer: 'unsuback' }) },
]

/** Opens a connection, sends the row's bytes, and reports what came back. */
async function attempt(port: number, row: Row, version: 4 | 5): Promise<Outcome> {
  const c = row.connect ? await RawClient.open(port, version) : await RawClient.connected(port, version)
  c.sendBytes(Buffer.from(row.bytes(version)))
  try {
    const packet = await c.next(undefined, 3000)
    if (packet.cmd === 'disconnect') return { disconnect: (packet as { reasonCode?: number }).reasonCode ?? 0 }
    if (packet.cmd === 'connack') {
      const ack = packet as { reasonCode?: number; returnCode?: number }
      return { connack: (version === 5 ? ack.reasonCode : ack.returnCode) ?? 0 }
    }
    return { answer: packet.cmd }
  } catch {
    return c.closed ? 'closed' : 'open, no answer'
  } finally {
    c.end()
  }
}

for (const profile of profiles) {
  describe(`conformance (${profile.name})`, () => {
    let b: TestBroker
    let watcher: TestClient
    beforeAll(async () => {
      b = await profile.start()
      watcher = await connect(b.port, { clientId: 'watcher' })
      await subscribe(watcher.client, 'alive')
    })
    afterAll(async () => {
      await watcher.end()
      await b.close()
    })

    test('[MQTT-4.7.1-1] MQTT 5: the per-filter codes are 0x8F in SUBACK and UNSUBACK alike', async () => {
      const c = await RawClient.connected(b.port, 5)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#/a', qos: 0 }, { topic: 'ok', qos: 1 }] })
      expect(((await c.next('suback')) as { granted: number[] }).granted).toEqual([0x8f, 1])
      c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['#/a', 'ok', 'never'] })
      expect(((await c.next('unsuback')) as { granted: number[] }).granted).toEqual([0x8f, 0x00, 0x11])
      c.end()
    })

    test('MQTT 3.1 (MQIsdp): a resent PUBREL with DUP set is accepted, as 3.1 allows', async () => {
      const c = await RawClient.connected(b.port, 3)
      c.sendBytes(Buffer.from([0x6a, 0x02, 0x00, 0x05]))
      expect((await c.next('pubcomp')).cmd).toBe('pubcomp')
      c.end()
    })

    test('[MQTT-3.1.4-3] MQTT 5: a persistent session taken over by a new connection does not publish its will (section 3.1.2.5)', async () => {
      const heir = await connect(b.port, { clientId: 'heir-watch', protocolVersion: 5 })
      await subscribe(heir.client, 'wills/#')
      const will = { topic: 'wills/taken', payload: Buffer.from('gone'), qos: 0 as const, retain: false, properties: { willDelayInterval: 0 } }
      const first = await connect(b.port, { clientId: 'twice', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 }, will })
      const taken = new Promise<number | undefined>((resolve) => first.client.once('disconnect', (p) => resolve(p.reasonCode)))
      const second = await connect(b.port, { clientId: 'twice', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } })
      expect(await taken).toBe(0x8e)
      expect(await heir.quiet()).toEqual([])
      // A clean start ends the old session: then its will is published as the old connection closes.
      const third = await connect(b.port, { clientId: 'twice', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 }, will })
      await connect(b.port, { clientId: 'twice', protocolVersion: 5, clean: true }).then((c) => c.end())
      expect((await heir.next()).topic).toBe('wills/taken')
      await first.end(true)
      await second.end(true)
      await third.end(true)
      await heir.end()
    })

    for (const row of rows) {
      for (const version of row.versions) {
        test(`${row.tag.startsWith('§') ? `(section ${row.tag.slice(1)})` : `[${row.tag}]`} ${row.rule} (${version === 5 ? 'MQTT 5' : '3.1.1'})`, async () => {
          const logged = b.logs.length
          expect(await attempt(b.port, row, version)).toEqual(row.expect(version))
          expect(b.logs.slice(logged).filter((l) => l.event === 'client.handler_error' || l.event === 'client.encode_error' || String(l.event).startsWith('process.'))).toEqual([])
          // Others go on.
          const pub = await RawClient.connected(b.port, 4)
          pub.send({ cmd: 'publish', topic: 'alive', payload: Buffer.from(`${row.rule}`), qos: 0, retain: false, dup: false })
          await until(() => watcher.messages.some((m) => m.payload === row.rule), 5000, 'the watcher hears the next message')
          pub.end()
        })
      }
    }
  })
}

describe("the broker's own answers stay within what the spec allows for each packet", () => {
  test('MQTT 5: a plugin that denies with a code the packet may not carry: the client gets 0x87 instead (sections 3.2.2.2, 3.4.2.1, 3.9.3)', async () => {
    // Reason 0x8E (Session taken over) belongs to DISCONNECT only.
    const odd = { name: 'odd-codes', authenticate: (r: { clientId: string }) => (r.clientId === 'odd' ? { decision: 'deny' as const, reasonCode: 0x8e } : ('abstain' as const)), authorizePublish: () => ({ decision: 'deny' as const, reasonCode: 0x8e }), authorizeSubscribe: () => ({ decision: 'deny' as const, reasonCode: 0x00 }) }
    const other = await startBroker({ plugins: [odd] })
    expect(await RawClient.connackCode(other.port, 5, { clientId: 'odd' })).toBe(0x87)
    const c = await RawClient.connected(other.port, 5)
    c.send({ cmd: 'publish', topic: 'x', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await c.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'x', qos: 0 }] })
    expect(((await c.next('suback')) as { granted: number[] }).granted).toEqual([0x87])
    c.end()
    await other.close()
  })
})
