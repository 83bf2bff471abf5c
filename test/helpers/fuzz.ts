/**
 * Malformed MQTT for the fuzz test: valid packets of every type (mqtt-packet encodes them), then mutated
 * (bits flipped, bytes cut, inserted or repeated, lengths lied about), plus the classic attacks. Seeded, so a
 * failure can be replayed with the same FUZZ_SEED.
 */
import mqttPacket, { type Packet } from 'mqtt-packet'

export function rng(seed: number) {
  let s = seed >>> 0
  const next = () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  return { next, int, pick }
}
export type Rng = ReturnType<typeof rng>

const topics = ['a', 'a/b', 'sensors/x/temp', '$SYS/x', 'deep/' + 'x/'.repeat(300) + 'end', '\u0000', 'ünï/çødé', '']
const filters = ['#', '+', 'a/+/c', 'a/#/b', '+/#', '$share/g/x', '$share//x', 'x+', '']

function validPacket(r: Rng, version: 4 | 5): Packet {
  const id = r.int(3) === 0 ? 0 : 1 + r.int(65535)
  const qos = r.int(3) as 0 | 1 | 2
  // Sometimes thousands of user properties in one packet.
  const userProperties = Object.fromEntries(Array.from({ length: r.int(10) === 0 ? 2000 : 1 }, (_, i) => [`k${i}`, 'v'.repeat(r.int(100))]))
  const props = version === 5 && r.int(2) ? { userProperties, topicAlias: r.int(40) } : undefined
  switch (r.int(11)) {
    case 0:
      return { cmd: 'publish', topic: r.pick(topics), payload: Buffer.alloc(r.int(300), r.int(256)), qos, messageId: qos ? id || 1 : undefined, retain: r.int(2) === 0, dup: r.int(2) === 0, properties: props } as Packet
    case 1:
      return { cmd: 'subscribe', messageId: id || 1, subscriptions: Array.from({ length: 1 + r.int(r.int(10) === 0 ? 500 : 4) }, () => ({ topic: r.pick(filters), qos: r.int(3) as 0 | 1 | 2, nl: r.int(2) === 0, rap: r.int(2) === 0, rh: r.int(3) })) }
    case 2:
      return { cmd: 'unsubscribe', messageId: id || 1, unsubscriptions: [r.pick(filters), r.pick(filters)] }
    case 3:
      return { cmd: 'puback', messageId: id || 1 }
    case 4:
      return { cmd: 'pubrec', messageId: id || 1 }
    case 5:
      return { cmd: 'pubrel', messageId: id || 1 }
    case 6:
      return { cmd: 'pubcomp', messageId: id || 1 }
    case 7:
      return { cmd: 'pingreq' }
    case 8:
      return { cmd: 'disconnect', reasonCode: r.pick([0, 4, 0x80]), properties: version === 5 && r.int(2) ? { sessionExpiryInterval: r.int(100) } : undefined } as Packet
    case 9:
      return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'again', clean: true, keepalive: 1 }
    default:
      return { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'x' } } as Packet
  }
}

function encodeOrNull(packet: Packet, version: 4 | 5): Buffer | null {
  try {
    return mqttPacket.generate(packet, { protocolVersion: version })
  } catch {
    return null
  }
}

/** A variable byte integer (section 1.5.5). */
function varInt(n: number): number[] {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0)
  return out
}

const str = (s: string) => [...u16(Buffer.byteLength(s)), ...Buffer.from(s)]
const u16 = (n: number) => [n >> 8, n & 0xff]
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
const packet = (first: number, body: number[]) => Buffer.from([first, ...varInt(body.length), ...body])

/**
 * An MQTT 5 CONNECT written byte by byte, so it can carry what mqtt-packet will not encode: a property twice, a
 * property its packet may not carry, will QoS 3. `props` and `willProps` are raw property bytes.
 */
export function rawConnect5(o: { clientId?: string | number[]; props?: number[]; willProps?: number[]; willQoS?: number; willTopic?: string | number[]; clean?: boolean; username?: number[]; password?: string; version?: 4 | 5 }): Buffer {
  const version = o.version ?? 5
  const will = o.willProps !== undefined || o.willQoS !== undefined || o.willTopic !== undefined
  const flags = (o.clean === false ? 0 : 0x02) | (will ? 0x04 | ((o.willQoS ?? 0) << 3) : 0) | (o.password !== undefined ? 0x40 : 0) | (o.username !== undefined ? 0x80 : 0)
  const props = o.props ?? []
  const clientId = Array.isArray(o.clientId) ? [...u16(o.clientId.length), ...o.clientId] : str(o.clientId ?? `raw-${Math.random()}`)
  const body = [...str('MQTT'), version, flags, ...u16(0), ...(version === 5 ? [...varInt(props.length), ...props] : []), ...clientId]
  if (will) body.push(...(version === 5 ? [...varInt(o.willProps?.length ?? 0), ...(o.willProps ?? [])] : []), ...(Array.isArray(o.willTopic) ? [...u16(o.willTopic.length), ...o.willTopic] : str(o.willTopic ?? 'will/topic')), ...str('gone'))
  if (o.username !== undefined) body.push(...u16(o.username.length), ...o.username)
  if (o.password !== undefined) body.push(...str(o.password))
  return packet(0x10, body)
}

/** An MQTT 5 packet of the given first byte with a body of `before`, then raw property bytes, then `after`. */
export function rawWithProps5(first: number, before: number[], props: number[], after: number[] = []): Buffer {
  return packet(first, [...before, ...varInt(props.length), ...props, ...after])
}

/** An MQTT 5 SUBSCRIBE with raw property bytes and one filter given as raw bytes. */
export function rawSubscribe5(props: number[], filter: number[] = [0x61], id = 1): Buffer {
  return packet(0x82, [...u16(id), ...varInt(props.length), ...props, ...u16(filter.length), ...filter, 0x01])
}

/** MQTT 5 property bytes: identifier, then the value. */
export const prop = {
  sessionExpiry: (s: number) => [0x11, ...u32(s)],
  willDelay: (s: number) => [0x18, ...u32(s)],
  messageExpiry: (s: number) => [0x02, ...u32(s)],
  receiveMaximum: (n: number) => [0x21, ...u16(n)],
  topicAlias: (n: number) => [0x23, ...u16(n)],
  payloadFormat: (b: number) => [0x01, b],
  responseTopic: (t: string) => [0x08, ...str(t)],
  subscriptionId: (n: number) => [0x0b, ...varInt(n)],
  requestProblemInformation: (b: number) => [0x17, b],
}

/** An MQTT 5 PUBLISH with raw property bytes. */
export function rawPublish5(topic: string, qos: 0 | 1 | 2, props: number[], payload = 'x', id = 1): Buffer {
  return packet(0x30 | (qos << 1), [...str(topic), ...(qos ? u16(id) : []), ...varInt(props.length), ...props, ...Buffer.from(payload)])
}

/** Openings that are valid CONNECTs as far as mqtt-packet can tell, and that the broker must still refuse or survive. */
export const hostileConnects: Buffer[] = [
  rawConnect5({ clean: false, props: prop.sessionExpiry(60), willProps: [...prop.willDelay(1), ...prop.willDelay(2)] }), // will delay twice
  rawConnect5({ clean: false, props: [...prop.sessionExpiry(60), ...prop.sessionExpiry(5)] }), // session expiry twice
  rawConnect5({ props: [...prop.receiveMaximum(10), ...prop.receiveMaximum(20)] }), // receive maximum twice
  rawConnect5({ willQoS: 3, willProps: [] }), // will QoS 3 [MQTT-3.1.2-12]
  rawConnect5({ willProps: [...prop.messageExpiry(1), ...prop.messageExpiry(2)] }), // will message expiry twice
  rawConnect5({ props: prop.topicAlias(3) }), // a property CONNECT may not carry
]

/** The classic attacks, as raw bytes. */
export const classics: Buffer[] = [
  Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), // 5-byte header announcing a 256 MB body
  Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), // remaining length in 5 bytes
  Buffer.from([0x30, 0x05, 0x00, 0x03, 0xc3, 0x28, 0x41]), // invalid UTF-8 in a topic
  Buffer.from([0x30, 0x04, 0x00, 0x02, 0x61, 0x00]), // U+0000 in a topic
  Buffer.from([0x62, 0x02, 0x12, 0x34]), // PUBREL for an unknown id
  Buffer.from([0x32, 0x06, 0x00, 0x01, 0x61, 0x00, 0x00, 0x78]), // QoS 1 with packet id 0
  Buffer.from([0x00, 0x00]), // reserved type 0
  Buffer.from([0xf0, 0x00]), // type 15 (AUTH) in 3.1.1 / without a method
  Buffer.from([0x32, 0x03, 0x00, 0x01, 0x61]), // QoS 1 PUBLISH whose topic fills the body: no packet identifier
  Buffer.from([0x34, 0x03, 0x00, 0x01, 0x61]), // the same at QoS 2
  Buffer.from([0x40, 0x00]), // PUBACK of 0 bytes
  Buffer.from([0x50, 0x01, 0x07]), // PUBREC of 1 byte
  Buffer.from([0x62, 0x00]), // PUBREL of 0 bytes
  Buffer.from([0x70, 0x01, 0x00]), // PUBCOMP of 1 byte
  Buffer.from([0xc0, 0x02, 0x00, 0x00]), // PINGREQ with a payload (section 3.12.1)
  Buffer.from([0x38, 0x03, 0x00, 0x01, 0x61]), // QoS 0 PUBLISH with DUP [MQTT-3.3.1-2]
  rawPublish5('dup/expiry', 1, [...prop.messageExpiry(1), ...prop.messageExpiry(2)]), // a single-use property twice
  rawPublish5('dup/alias', 1, [...prop.topicAlias(1), ...prop.topicAlias(2)]),
  rawPublish5('pfi', 1, prop.payloadFormat(0xed)), // Payload Format Indicator out of range
  rawPublish5('short/prop', 1, [0x02, 0x00]), // a property value cut short by the property length
]

/** One mutated packet's bytes. */
export function malformed(r: Rng, version: 4 | 5): Buffer {
  if (r.int(20) === 0) return r.pick(classics)
  const base = encodeOrNull(validPacket(r, version), version) ?? Buffer.from([0xc0, 0x00])
  const bytes = Buffer.from(base)
  switch (r.int(6)) {
    case 0: // flip a few bits
      for (let k = 0; k <= r.int(3); k++) bytes[r.int(bytes.length)]! ^= 1 << r.int(8)
      return bytes
    case 1: // cut short
      return bytes.subarray(0, r.int(bytes.length))
    case 2: // lie about the length
      bytes[1] = r.int(256)
      return bytes
    case 3: // random bytes inserted
      return Buffer.concat([bytes.subarray(0, r.int(bytes.length)), Buffer.from(Array.from({ length: 1 + r.int(8) }, () => r.int(256))), bytes])
    case 4: // pure noise
      return Buffer.from(Array.from({ length: 1 + r.int(40) }, () => r.int(256)))
    default: // valid (so the stream gets somewhere before the next mutation)
      return bytes
  }
}
