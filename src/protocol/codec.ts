/**
 * Framing and decoding, on mqtt-packet (loaded, and its internals relied on, in mqtt-packet.ts only); the packet
 * types every part of the broker uses. Encoding is in encode.ts.
 *
 * Reading: each connection frames its byte stream itself, from the fixed header's remaining length (which it
 * must read anyway to refuse an oversized packet before buffering its body), and hands runs of whole packets to
 * one mqtt-packet parser shared by every connection. mqtt-packet still decodes every packet; since it only ever
 * sees whole packets it ends each call with no state, and an idle connection costs no parser of its own.
 */
import type { IPublishPacket, Packet } from 'mqtt-packet'
import { MqttError } from '../errors.ts'
import type { ContiguousBytes } from './bytes.ts'
import { beforePublishBody, mqttPacket, type MqttPacketParser, type ParserSettings, readInPlace } from './mqtt-packet.ts'
import { propertiesError } from './properties.ts'
import { Reason } from './reason.ts'
import { CLEAN, NO_WILDCARDS } from './strings.ts'

export type {
  IAuthPacket as AuthPacket,
  IConnackPacket as ConnackPacket,
  IConnectPacket as ConnectPacket,
  IDisconnectPacket as DisconnectPacket,
  ISubscribePacket as SubscribePacket,
  IUnsubscribePacket as UnsubscribePacket,
  IPubackPacket as PubackPacket,
  IPubrecPacket as PubrecPacket,
  IPubrelPacket as PubrelPacket,
  IPubcompPacket as PubcompPacket,
  Packet,
  QoS,
  UserProperties,
} from 'mqtt-packet'

export type ProtocolVersion = 3 | 4 | 5

export interface PublishPacket extends IPublishPacket {
  /**
   * The packet's own bytes (a view of the read), when every subscriber of its protocol family (3.1/3.1.1, or 5)
   * without options of its own is sent exactly these: QoS 0, no RETAIN, no DUP, no MQTT 5 properties, the
   * remaining length in the fewest bytes. Routing sends them as they came instead of encoding the PUBLISH again.
   */
  forwardable?: Buffer | null
  /** The topic's bytes, as read, were ASCII without '+', '#' or U+0000: its check needs only the limits (validate.ts). */
  topicClean?: boolean
  /**
   * Where in `forwardable` the topic starts when it was left in bytes (a reader that asked for it, with clean ASCII
   * bytes not in the intern table); `topic` is then ''. The topic's length is the 2 bytes before (section 3.3.2.1).
   * Set only then: most packets never get the field.
   */
  topicAt?: number
}

/** The length of the topic of a PUBLISH whose topic starts at `topicAt` of its `bytes` (PublishPacket.topicAt). */
export function topicLengthAt(bytes: Uint8Array, topicAt: number): number {
  return (bytes[topicAt - 2]! << 8) | bytes[topicAt - 1]!
}

/** Of a PUBLISH just decoded: its bytes if they can go to subscribers unchanged (see PublishPacket.forwardable). */
function forwardable(packet: PublishPacket, list: ContiguousBytes, protocolVersion: number | undefined): Buffer | null {
  if (protocolVersion === 5 && packet.properties !== undefined) return null
  return list.packetBefore((packet as DecodedPacket).length, PLAIN_QOS0_PUBLISH)
}

/** What a topic's bytes must have been found to be for its check to skip wildcards and U+0000 (strings.ts). */
const TOPIC_CLEAN = CLEAN | NO_WILDCARDS

/** The first byte of a PUBLISH with QoS 0, no DUP and no RETAIN (section 3.3.1). */
const PLAIN_QOS0_PUBLISH = 0x30

export class PacketTooLargeError extends Error {
  override readonly name = 'PacketTooLargeError'
}

/** Who receives a connection's packets: each in order, or the one error that ends the connection. */
export interface PacketSink {
  onPacket(packet: Packet): void
  onParseError(error: Error): void
  /**
   * True while the sink takes a PUBLISH whose topic was left in its bytes (PublishPacket.topicAt), for a message that
   * may be forwarded without its topic ever made a string (message.ts LazyTopicMessage). Asked once per read.
   */
  readonly topicsInBytes?: boolean
}


/** A packet as mqtt-packet emits it: with its remaining length. */
type DecodedPacket = Packet & { length: number; reasonCode?: number; properties?: object }

/** A string of the packet just decoded was ill-formed UTF-8 or held U+0000 [MQTT-1.5.4-1, -2]: a Malformed Packet. */
function takeStringError(list: ContiguousBytes): string {
  const error = list.stringError!
  list.stringError = null
  return error
}

/**
 * mqtt-packet is handed runs of whole packets, and where a field is cut short by the remaining length it reads on
 * into the next packet (or finds -1 for a missing packet identifier) without complaint. So every packet's body must
 * have been read exactly to its end: a field past the end, or bytes left over after the last field, is a Malformed
 * Packet (MQTT 5.0 section 2.2.2 and 1.5; sections 3.4.2 to 3.7.2 and 3.12.1: acks and PINGREQ have fixed lengths). A
 * PUBLISH's payload is the rest of the body, so it can only overrun.
 */
function lengthError(packet: DecodedPacket, read: number): string | null {
  if (packet.cmd === 'disconnect' && packet.length < 2) {
    // MQTT 5: a DISCONNECT of 0 bytes is reason 0, of 1 byte has no properties (section 3.14.2.1); mqtt-packet
    // reads past such a short body, so what it found there is dropped here.
    if (packet.length === 0) packet.reasonCode = 0
    packet.properties = undefined
    return null
  }
  // (A packet identifier with no room at all comes back as -1 without a read past the end: check.ts refuses it.)
  if (read > packet.length) return `${packet.cmd} shorter than its fields (remaining length ${packet.length})`
  if (read < packet.length && packet.cmd !== 'publish') return `${packet.cmd} longer than its fields (remaining length ${packet.length}, ${packet.length - read} bytes left over)`
  return null
}


/**
 * What the decoder adds to a PUBLISH it read: whether its bytes can be forwarded, whether its topic was clean, and
 * where that topic is if it was left in bytes. A topic left in bytes is decoded now unless the bytes go with the
 * packet (only `forwardable` ones do).
 */
function publishRead(packet: PublishPacket, list: ContiguousBytes, protocolVersion: number | undefined): void {
  const bytes = forwardable(packet, list, protocolVersion)
  packet.forwardable = bytes
  packet.topicClean = (list.firstScan & TOPIC_CLEAN) === TOPIC_CLEAN // the first string of a PUBLISH (section 3.3.2)
  if (list.topicFrom < 0) return
  if (bytes === null) {
    packet.topic = list.takeTopic()
    return
  }
  // The topic follows the fixed header and its 2-byte length (section 3.3.2.1).
  packet.topicAt = bytes.length - (packet as DecodedPacket).length + 2
}

/** Decodes runs of whole packets for any connection; synchronous, so one instance serves them all. */
class SharedDecoder {
  private parser = this.fresh()
  private sink: PacketSink | null = null
  private failed = false
  /** The sink takes PUBLISH topics left in bytes (PublishPacket.topicAt). */
  private topicsInBytes = false
  busy = false

  private fresh(): MqttPacketParser {
    const parser = mqttPacket.parser() as unknown as MqttPacketParser
    readInPlace(parser)
    beforePublishBody(parser, () => {
      if (this.topicsInBytes) (parser._list as ContiguousBytes).topicNext = true
    })
    // The parser's two events ('packet' and 'error') come straight here rather than through EventEmitter, whose
    // emit makes an array of its arguments on every call: one more object per packet.
    parser.emit = (event, value) => {
      if (this.failed) return true
      if (event === 'packet') {
        const list = parser._list as ContiguousBytes
        const overrun = list.stringError ? takeStringError(list) : lengthError(value as DecodedPacket, parser._pos)
        if (overrun) {
          this.failed = true
          this.sink!.onParseError(new Error(overrun))
        } else {
          if ((value as Packet).cmd === 'publish') publishRead(value as PublishPacket, list, parser.settings.protocolVersion)
          list.firstScan = -1
          list.topicNext = false
          list.topicFrom = -1
          this.sink!.onPacket(value as Packet)
        }
      } else if (event === 'error') {
        this.failed = true
        this.sink!.onParseError(value as Error)
      }
      return true
    }
    return parser
  }

  /** Decodes `bytes` (whole packets only) with the connection's settings; returns the settings after. */
  decode(bytes: Buffer, settings: ParserSettings, sink: PacketSink, topicsInBytes: boolean): ParserSettings {
    this.busy = true
    this.sink = sink
    this.topicsInBytes = topicsInBytes
    this.failed = false
    this.parser.settings = settings
    try {
      this.parser.parse(bytes)
      return this.parser.settings
    } catch (error) {
      if (!this.failed) sink.onParseError(error as Error) // mqtt-packet throws on some input instead of emitting
      this.failed = true
      return settings
    } finally {
      // After an error mqtt-packet's state is not to be trusted: start the next call with a new parser.
      if (this.failed) this.parser = this.fresh()
      else (this.parser._list as ContiguousBytes).release()
      this.sink = null
      this.busy = false
    }
  }
}

const shared = new SharedDecoder()

/**
 * The parser's settings before CONNECT, and after it for each protocol version: shared by every connection (the
 * parser replaces its settings with a CONNECT it decodes, and reads them otherwise; it never writes into them).
 */
const BEFORE_CONNECT: ParserSettings = {}
const AFTER_CONNECT: ParserSettings[] = [3, 4, 5].map((protocolVersion) => ({ protocolVersion }))

/** A fixed header is at most 5 bytes: the packet type and flags, and a remaining length of up to 4 (section 2.1). */
const MAX_FIXED_HEADER = 5

export class PacketReader implements PacketSink {
  /** Bytes of a packet not yet complete (views of the read buffers, bounded by the maximum packet size). */
  private partial: Buffer[] | null = null
  private partialBytes = 0
  /** Size of the incomplete packet once its fixed header has arrived; 0 before. */
  private needed = 0
  private settings: ParserSettings = BEFORE_CONNECT
  private failed = false
  /** The stream's first packet header has been seen (it must be CONNECT). */
  private started = false
  /** The protocol level CONNECT asked for, read at framing (packets after it in the same read are framed before it is decoded). */
  private version: number | undefined = undefined

  /** The protocol level of this stream's CONNECT, once its bytes have arrived (before it is decoded). */
  get protocolLevel(): number | undefined {
    return this.version
  }

  constructor(
    private readonly maxPacketSize: number,
    private readonly sink: PacketSink,
  ) {}

  onPacket(packet: Packet): void {
    if (!this.failed) this.sink.onPacket(packet)
  }

  onParseError(error: Error): void {
    if (this.failed) return
    this.failed = true
    this.partial = null
    this.sink.onParseError(error)
  }

  /**
   * After CONNECT: keep only what the parser reads from it. mqtt-packet otherwise keeps the CONNECT packet
   * (password and will payload are views of the socket's read buffer) for the life of the connection.
   */
  connected(protocolVersion: ProtocolVersion, bridgeMode: boolean): void {
    this.settings = bridgeMode ? { protocolVersion, bridgeMode } : AFTER_CONNECT[protocolVersion - 3]!
  }

  feed(chunk: Buffer): void {
    let rest = chunk
    while (!this.failed && rest.length > 0) {
      if (this.partialBytes === 0) return this.read(rest)
      if (this.needed > 0 && this.partialBytes + rest.length < this.needed) {
        // Still inside a large packet: keep the chunk, copy nothing yet.
        this.partial!.push(rest)
        this.partialBytes += rest.length
        return
      }
      // A packet began in an earlier read: join just its bytes to it, and read the rest of this one where it is
      // (joining the whole read was a copy of nearly every byte received). While the fixed header itself is cut
      // short, its size is not known yet: its at most 5 bytes are joined first.
      const missing = this.needed > 0 ? this.needed - this.partialBytes : Math.min(rest.length, MAX_FIXED_HEADER - this.partialBytes)
      this.partial!.push(rest.subarray(0, missing))
      const joined = Buffer.concat(this.partial!, this.partialBytes + missing)
      this.partial = null
      this.partialBytes = 0
      this.read(joined) // the packet decoded, or (a header just completed) kept with its size now known
      rest = rest.subarray(missing)
    }
  }

  /** Frames and decodes the whole packets at the start of `data` (no packet pending before it); keeps the rest. */
  private read(data: Buffer): void {
    this.needed = 0
    const end = this.frame(data)
    if (end < 0) return
    if (end > 0) {
      const decoder = shared.busy ? new SharedDecoder() : shared
      const before = this.settings
      const after = decoder.decode(end === data.length ? data : data.subarray(0, end), before, this, this.sink.topicsInBytes === true)
      // A CONNECT handled within this decode has called connected(), which chose the settings to keep: the
      // parser's (the CONNECT packet itself, holding views of this read's bytes) must not replace them.
      if (this.settings === before) this.settings = after
      if (this.failed) return
    }
    if (end < data.length) {
      ;(this.partial ??= []).push(data.subarray(end))
      this.partialBytes = data.length - end
    }
  }

  /** Returns where the last whole packet in `data` ends (-1 after refusing a packet), noting the size of the next. */
  private frame(data: Buffer): number {
    let at = 0
    while (data.length - at >= 1) {
      const headerError = checkFixedHeader(data[at]!, !this.started, this.version)
      if (headerError) {
        this.onParseError(new Error(headerError))
        return -1
      }
      this.started = true
      // MQTT 3.1's DUP on a resent PUBREL / SUBSCRIBE / UNSUBSCRIBE (checked above): mqtt-packet knows only 3.1.1's
      // flags, so the bit it would refuse is cleared here (nothing downstream reads DUP on these packets).
      if ((data[at]! & 0x0f) === 0x0a && this.version === 3 && (data[at]! >> 4) !== 3) data[at] = data[at]! & 0xf7
      let remaining = 0
      let multiplier = 1
      let i = at + 1
      for (; ; i++) {
        if (i >= data.length) return at // the remaining length has not all arrived yet
        const byte = data[i]!
        remaining += (byte & 0x7f) * multiplier
        if ((byte & 0x80) === 0) break
        if (i === at + 4) {
          this.onParseError(new Error('Invalid variable byte integer')) // more than 4 bytes (section 1.5.5)
          return -1
        }
        multiplier *= 128
      }
      const size = i + 1 - at + remaining
      if (size > this.maxPacketSize) {
        this.onParseError(new PacketTooLargeError(`packet of ${size} bytes exceeds the maximum of ${this.maxPacketSize}`))
        return -1
      }
      if (data.length - at < size) {
        this.needed = size
        return at
      }
      // MQTT 5 property sections (and CONNECT's, whose version is in it): what mqtt-packet's decoding hides.
      const type = data[at]! >> 4
      if (type === 1) this.version = protocolLevel(data, i + 1, at + size)
      if (this.version === 5) {
        const propertyError = propertiesError(type, data[at]! & 0x0f, data, i + 1, at + size)
        if (propertyError) {
          this.onParseError(new MqttError(Reason.ProtocolError, propertyError))
          return -1
        }
      }
      at += size
    }
    return at
  }
}

/** The protocol level of a CONNECT whose body is buf[from, to): the byte after the protocol name. */
function protocolLevel(buf: Uint8Array, from: number, to: number): number | undefined {
  if (to - from < 2) return undefined
  const at = from + 2 + ((buf[from]! << 8) | buf[from + 1]!)
  return at < to ? buf[at] : undefined
}

/**
 * Checks the first byte of a packet as soon as it arrives, so a stream that is not MQTT is refused at once
 * rather than after the body it announces: reserved type 0, flag bits [MQTT-2.1.3-1], QoS 3 [MQTT-3.3.1-4],
 * and anything but CONNECT first [MQTT-3.1.0-1].
 */
function checkFixedHeader(first: number, beforeConnect: boolean, version: number | undefined): string | null {
  const type = first >> 4
  const flags = first & 0x0f
  if (beforeConnect && type !== 1) return 'the first packet must be CONNECT'
  if (type === 0) return 'reserved packet type 0'
  if (type === 3) return ((flags >> 1) & 3) === 3 ? 'Packet must not have both QoS bits set to 1' : null
  const required = type === 6 || type === 8 || type === 10 ? 2 : 0 // PUBREL, SUBSCRIBE, UNSUBSCRIBE
  if (flags === required) return null
  // MQTT 3.1 (MQIsdp) lets a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE carry DUP (3.1 section 2.1).
  if (version === 3 && required === 2 && flags === 0x0a) return null
  return `invalid flags for packet type ${type}`
}
