import type { Clock } from './clock.ts'
import { type PublishPacket, type QoS, topicLengthAt, type UserProperties } from './protocol/codec.ts'
import { KNOWN_CLEAN, readUtf8 } from './protocol/strings.ts'

/** The MQTT 5 properties that travel with an application message (MQTT 5.0 section 3.3.2.3). */
export interface MessageProperties {
  payloadFormatIndicator?: boolean
  contentType?: string
  responseTopic?: string
  correlationData?: Buffer
  userProperties?: UserProperties
}

/** An application message as plugins, events and stores see it (index.ts exports it as `Message`). */
export interface PublicMessage {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  properties: MessageProperties | undefined
  /** Epoch milliseconds after which the message is dropped; 0 = never (Message Expiry Interval). */
  expiresAt: number
  /** Client id of the publisher, for No Local; undefined for messages the broker itself publishes. */
  origin: string | undefined
}

/** An application message as the broker routes it: the public fields, and what the broker caches on it. */
export interface Message extends PublicMessage {
  /**
   * Encoded QoS 0 PUBLISH bytes shared by every subscriber with the same settings (see Client.sendPublish):
   * those of the first settings used (`encodedSlot`), and of any others in `encodedMore`, by slot. For a PUBLISH
   * that can be forwarded as received, `encoded` is set from the start to a view of its bytes (messageOfPacket).
   */
  encoded?: Buffer | undefined
  encodedSlot?: number
  encodedMore?: (Buffer | undefined)[] | undefined
  /** The payload is the broker's own copy, not a view of a read buffer (see `own`). */
  owned?: boolean
  /** Came from another node of the cluster (so it is not sent back to the cluster). */
  remote?: boolean
}

/**
 * Copies the payload out of the socket's read buffer, so a message kept for later (queued, retained)
 * does not pin that buffer. Done once per message, in place: every holder sees the same bytes.
 */
export function own(message: Message): Message {
  if (!message.owned) {
    if (message instanceof LazyTopicMessage) message.decodeTopic() // its bytes may be the read's too
    // Bytes forwarded as received (messageOfPacket) are a view of the same read: let them go too.
    if (message.encoded !== undefined && message.encoded.buffer === message.payload.buffer) {
      message.encoded = undefined
      message.encodedMore = undefined
    }
    message.payload = Buffer.from(message.payload)
    message.owned = true
  }
  return message
}

/** The QoS 0 PUBLISH bytes encoded for `slot` (a protocol version and RETAIN flag), if made already. */
export function encodedFor(message: Message, slot: number): Buffer | undefined {
  if (message.encodedSlot === slot && message.encoded) return message.encoded
  return message.encodedMore?.[slot]
}

/**
 * Keeps `bytes` as the encoding for `slot`. The first slot used has fields of its own: most messages go to
 * subscribers of one kind, and a list of slots was one more array per message.
 */
export function keepEncoded(message: Message, slot: number, bytes: Buffer): Buffer {
  if (!message.encoded) {
    message.encoded = bytes
    message.encodedSlot = slot
  } else {
    ;(message.encodedMore ??= [])[slot] = bytes
  }
  return bytes
}

/** The properties as JSON can carry them: Correlation Data (bytes) in base64 (the HTTP API, the cluster's frames and KV). */
export function propertiesToJson(p: MessageProperties): Record<string, unknown> {
  const { correlationData, ...rest } = p
  return correlationData ? { ...rest, correlationData: correlationData.toString('base64') } : rest
}

/** The properties propertiesToJson wrote. */
export function propertiesFromJson(p: Record<string, unknown> | undefined): MessageProperties | undefined {
  if (!p) return undefined
  const { correlationData, ...rest } = p as MessageProperties & { correlationData?: string }
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

/** Seconds left before the message expires (at least 1), or undefined if it never does. */
export function remainingExpiry(message: Message, now: number): number | undefined {
  if (message.expiresAt === 0) return undefined
  return Math.max(1, Math.ceil((message.expiresAt - now) / 1000))
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== 0 && now >= message.expiresAt
}

/** A message as an API call describes it (the embedding API, plugins' ctx.publish, HTTP): properties with the expiry as an interval. */
export interface MessageInput {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
  properties?: (MessageProperties & { messageExpiryInterval?: number }) | undefined
}

/** The Message an API call publishes, expiring `messageExpiryInterval` seconds from `now`. */
export function messageFrom(input: MessageInput, origin: string | undefined, now: number): Message {
  const { messageExpiryInterval, ...properties } = input.properties ?? {}
  return {
    topic: input.topic,
    payload: input.payload,
    qos: input.qos,
    retain: input.retain,
    properties: Object.keys(properties).length > 0 ? properties : undefined,
    expiresAt: messageExpiryInterval === undefined ? 0 : now + messageExpiryInterval * 1000,
    origin,
    owned: true,
  }
}

/**
 * Resolves the message a PUBLISH carries (payload still in the read buffer). The clock is read only for a message
 * that expires (a clock read was ~20 ns of every message's path). A packet whose bytes can be forwarded as they
 * are (codec.ts) gives them as the message's encoding for its publisher's protocol family.
 */
export function messageOfPacket(packet: PublishPacket, origin: string, clock: Pick<Clock, 'now'>, maxExpirySeconds = 0, version = 4): Message {
  const p = packet.properties
  let expiresAt = 0
  let properties: Message['properties'] = undefined
  if (p) {
    if (p.messageExpiryInterval !== undefined) {
      const seconds = maxExpirySeconds > 0 ? Math.min(p.messageExpiryInterval, maxExpirySeconds) : p.messageExpiryInterval
      expiresAt = clock.now() + seconds * 1000
    }
    if (p.payloadFormatIndicator !== undefined || p.contentType !== undefined || p.responseTopic !== undefined || p.correlationData !== undefined || p.userProperties !== undefined) {
      properties = {}
      if (p.payloadFormatIndicator !== undefined) properties.payloadFormatIndicator = p.payloadFormatIndicator
      if (p.contentType !== undefined) properties.contentType = p.contentType
      if (p.responseTopic !== undefined) properties.responseTopic = p.responseTopic
      if (p.correlationData !== undefined) properties.correlationData = p.correlationData
      if (p.userProperties !== undefined) properties.userProperties = p.userProperties
    }
  }
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  const encodedSlot = version === 5 ? 2 : 0
  if (packet.topic === '' && packet.topicAt !== undefined && packet.forwardable) return new LazyTopicMessage(packet.forwardable, packet, payload, properties, expiresAt, origin, encodedSlot)
  // Every field the message may get later is set now: one object shape, no out-of-line storage added on the hot path.
  return { topic: packet.topic, payload, qos: packet.qos, retain: packet.retain, properties, expiresAt, origin, encoded: packet.forwardable ?? undefined, encodedSlot, encodedMore: undefined, owned: false, remote: false }
}

/**
 * The message of a PUBLISH whose topic is still bytes in the packet, forwarded as received (codec.ts
 * PublishPacket.topicAt: clean ASCII the intern table did not hold). The topic is decoded the first time anything
 * reads `topic`. A message routed along a kept route and forwarded as received never needs it as a string (that
 * string was ~100 ns of each message over 100,000 topics), so the core's checks on that path read the bytes:
 * the handler's limits, isSysTopic, RouteCache.holdsTopicOf.
 *
 * `topic` is an accessor, which a spread does not copy: code outside the core (events, plugins) is handed
 * publicMessage(), and a copy is made field by field.
 */
export class LazyTopicMessage implements Message {
  // Fields are declared (not initialised) here and set in the constructor, in one order: one object shape, and no
  // field defined twice (an initialiser or a bare declaration defines the field before the constructor sets it).
  declare payload: Buffer
  declare qos: QoS
  declare retain: boolean
  declare properties: MessageProperties | undefined
  declare expiresAt: number
  declare origin: string | undefined
  declare encoded: Buffer | undefined
  declare encodedSlot: number
  declare encodedMore: (Buffer | undefined)[] | undefined
  declare owned: boolean
  declare remote: boolean
  /** The topic's string once decoded; null while it is `topicBytes[topicAt, topicAt + topicLength)`. */
  declare private text: string | null
  /** The PUBLISH's bytes, holding the topic, until it is decoded (then null). */
  declare topicBytes: Buffer | null
  declare readonly topicAt: number
  declare readonly topicLength: number

  constructor(bytes: Buffer, packet: PublishPacket, payload: Buffer, properties: MessageProperties | undefined, expiresAt: number, origin: string, encodedSlot: number) {
    this.payload = payload
    this.qos = packet.qos
    this.retain = packet.retain
    this.properties = properties
    this.expiresAt = expiresAt
    this.origin = origin
    this.encoded = bytes
    this.encodedSlot = encodedSlot
    this.encodedMore = undefined
    this.owned = false
    this.remote = false
    this.text = null
    this.topicBytes = bytes
    this.topicAt = packet.topicAt!
    this.topicLength = topicLengthAt(bytes, this.topicAt)
  }

  get topic(): string {
    return this.text ?? this.decodeTopic()
  }

  set topic(topic: string) {
    this.text = topic
    this.topicBytes = null
  }

  /** The topic, decoded now if it was still bytes (through the intern table, which keeps it for the next time). */
  decodeTopic(): string {
    if (this.text === null) {
      this.text = readUtf8(this.topicBytes!, this.topicAt, this.topicAt + this.topicLength, KNOWN_CLEAN)!
      this.topicBytes = null
    }
    return this.text
  }
}

/** The message as a plain object (a LazyTopicMessage's topic made a field), for code outside the core: events and plugins. */
export function publicMessage(message: Message): Message {
  return message instanceof LazyTopicMessage ? publicFields(message) : message
}

/** A new plain object of the message's public fields, read one by one (a spread would miss an accessor's topic). */
export function publicFields(message: Message): PublicMessage {
  return { topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain, properties: message.properties, expiresAt: message.expiresAt, origin: message.origin }
}

/** Whether the topic is `$SYS` or below it (the broker's own), without decoding a topic still in bytes unless it starts with '$'. */
export function isSysTopic(message: Message): boolean {
  if (message instanceof LazyTopicMessage && message.topicBytes !== null && message.topicBytes[message.topicAt] !== DOLLAR) return false
  const topic = message.topic
  return topic.startsWith('$SYS/') || topic === '$SYS'
}

const DOLLAR = 0x24
