/**
 * Encoding a PUBLISH the broker sends, shaped for the client that gets it: its protocol version, the topic aliases
 * it allows, the message's remaining expiry and the subscription identifiers it matched. A QoS 0 PUBLISH that is the
 * same for every subscriber of a kind is encoded once per message and shared (see message.ts keepEncoded).
 */
import { type Message, remainingExpiry } from '../message.ts'
import type { ProtocolVersion, PublishPacket } from '../protocol/codec.ts'
import { encode } from '../protocol/encode.ts'
import type { Delivery } from '../session.ts'

/**
 * A client's topic aliases (MQTT 5.0 section 3.3.2.3.4), made only for a client that allows or uses any: how many
 * of ours it takes and those assigned, and its own (handlers/publish.ts).
 */
export interface TopicAliases {
  outgoingMax: number
  outgoing: Map<string, number> | null
  incoming: Map<number, string> | null
}

/** What encoding for one client reads of it. */
export interface AliasedClient {
  readonly aliases: TopicAliases | null
  /** Largest packet the client accepts: an alias assigned on a packet too large to send is taken back. */
  readonly maxOutgoingPacketSize: number
  readonly version: ProtocolVersion
}

const NO_PAYLOAD = Buffer.alloc(0)

/**
 * Every PUBLISH the broker sends is built in this one object and encoded at once (a new object per message was
 * one more piece of garbage on the hot path). Each use sets every field; see publishPacket.
 */
const outgoing: PublishPacket = { cmd: 'publish', topic: '', payload: NO_PAYLOAD, qos: 0, retain: false, dup: false, messageId: undefined, properties: undefined }

/** True when this delivery encodes the same for every subscriber of this protocol version (its bytes can be shared). */
export function shareable(delivery: Delivery, version: ProtocolVersion, aliases: TopicAliases | null): boolean {
  if (version !== 5) return true
  return delivery.subscriptionIds === undefined && delivery.message.expiresAt === 0 && (aliases === null || aliases.outgoingMax === 0)
}

/** Encodes the PUBLISH for this delivery, without topic aliases. */
export function encodePublish(delivery: Delivery, packetId: number, dup: boolean, version: ProtocolVersion, now: number): Buffer {
  return encodeOutgoing(publishPacket(delivery, packetId, dup, version, now), version)
}

/** Encodes the PUBLISH for this delivery to one client, applying its outgoing topic aliases. */
export function encodePublishFor(client: AliasedClient, delivery: Delivery, packetId: number, dup: boolean, now: number): Buffer {
  const packet = publishPacket(delivery, packetId, dup, client.version, now)
  const aliases = client.aliases
  const newAlias = aliases !== null && assignAlias(aliases, packet)
  const bytes = encodeOutgoing(packet, client.version)
  if (bytes.length > client.maxOutgoingPacketSize && newAlias) aliases!.outgoing!.delete(delivery.message.topic)
  return bytes
}

/** Encodes `outgoing`, then lets go of its payload and properties: it pins nothing. */
function encodeOutgoing(packet: PublishPacket, version: ProtocolVersion): Buffer {
  const bytes = encode(packet, version)
  packet.payload = NO_PAYLOAD
  packet.properties = undefined
  return bytes
}

/** The PUBLISH to encode for this delivery, built in the shared `outgoing` object. */
function publishPacket(delivery: Delivery, packetId: number, dup: boolean, version: ProtocolVersion, now: number): PublishPacket {
  const message: Message = delivery.message
  const packet = outgoing
  packet.topic = message.topic
  packet.payload = message.payload
  packet.qos = delivery.qos
  packet.retain = delivery.retain
  packet.dup = dup
  packet.messageId = delivery.qos > 0 ? packetId : undefined
  packet.properties = undefined
  if (version === 5) {
    const expiry = remainingExpiry(message, now)
    if (message.properties || expiry !== undefined || delivery.subscriptionIds) {
      packet.properties = { ...message.properties }
      if (expiry !== undefined) packet.properties.messageExpiryInterval = expiry // [MQTT-3.3.2-6]
      if (delivery.subscriptionIds) packet.properties.subscriptionIdentifier = delivery.subscriptionIds // [MQTT-3.3.4-3]
    }
  }
  return packet
}

/** Applies an outgoing topic alias when the client allows them; returns true if a new alias was assigned. */
function assignAlias(aliases: TopicAliases, packet: PublishPacket): boolean {
  if (aliases.outgoingMax === 0) return false
  const assigned = (aliases.outgoing ??= new Map())
  const alias = assigned.get(packet.topic)
  if (alias !== undefined) {
    packet.properties = { ...packet.properties, topicAlias: alias }
    packet.topic = ''
    return false
  }
  if (assigned.size >= aliases.outgoingMax) return false
  const fresh = assigned.size + 1
  assigned.set(packet.topic, fresh)
  packet.properties = { ...packet.properties, topicAlias: fresh }
  return true
}
