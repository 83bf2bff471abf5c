/**
 * How a message travels between nodes: its metadata in a `Midge-Meta` header (JSON), its payload as the body.
 * The same metadata, with the payload in base64, is a retained message's value in KV.
 */
import type { Message, MessageProperties } from '../message.ts'

export interface Meta {
  node: string
  topic: string
  qos: 0 | 1 | 2
  retain: boolean
  origin?: string
  expiresAt: number
  properties?: Record<string, unknown>
  /** QoS 0: the sending node's run (random per start) and its count of QoS 0 messages sent, to drop a second copy. */
  run?: number
  seq?: number
}

export const META_HEADER = 'Midge-Meta'

/** The metadata of a message this node sends on. */
export function metaOf(node: string, message: Readonly<Message>): Meta {
  return { node, topic: message.topic, qos: message.qos, retain: message.retain, origin: message.origin, expiresAt: message.expiresAt, properties: encodeProperties(message.properties) }
}

/** The metadata of a message from the cluster; null when it carries none. */
export function readMeta(text: string | undefined): Meta | null {
  return text ? (JSON.parse(text) as Meta) : null
}

/** A message that came from another node (`remote`: not sent back to the cluster). */
export function messageOf(meta: Meta, data: Uint8Array): Message {
  return {
    topic: meta.topic,
    payload: Buffer.from(data),
    qos: meta.qos,
    retain: meta.retain,
    properties: decodeProperties(meta.properties),
    expiresAt: meta.expiresAt,
    origin: meta.origin,
    owned: true,
    remote: true,
  }
}

export function encodeProperties(p: MessageProperties | undefined): Record<string, unknown> | undefined {
  if (!p) return undefined
  const { correlationData, ...rest } = p
  return correlationData ? { ...rest, correlationData: correlationData.toString('base64') } : rest
}

export function decodeProperties(p: Record<string, unknown> | undefined): MessageProperties | undefined {
  if (!p) return undefined
  const { correlationData, ...rest } = p as MessageProperties & { correlationData?: string }
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}

/** A KV key for any string (topics and client ids may hold characters KV keys may not). */
export function kvKey(text: string): string {
  return Buffer.from(text).toString('base64url')
}
