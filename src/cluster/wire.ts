/**
 * How a message travels between nodes: one binary frame per message, its metadata first and its payload after,
 * as the NATS message body (no NATS headers, no JSON on the way: both cost more than the rest of the trip).
 *
 *   u8 version (1) · u8 flags (bits 0-1 QoS, 2 retain, 3 origin, 4 properties) · f64 expiresAt
 *   · u16 node length, node · u16 topic length, topic · [u16 origin length, origin]
 *   · [u32 properties length, properties as JSON] · payload
 *
 * QoS 0 messages travel in batches: those for the same subject within one tick go together in one NATS message, so
 * NATS and both nodes pay their per-message cost once per batch, not per MQTT message. A batch carries the sending
 * node's run (random per start) and its count of batches sent: a batch that matches two of a node's NATS
 * subscriptions comes twice, one copy right after the other, and the second is dropped by that number.
 *
 *   u8 2 (batch) · u32 run · f64 sequence · then per frame: u32 length, frame
 *
 * All nodes of a cluster run the same version; a frame of another version is dropped. The properties (MQTT 5,
 * rare) stay JSON. A retained message's value in KV is JSON with the payload in base64 (retained.ts).
 */
import { type Message, propertiesFromJson, propertiesToJson } from '../message.ts'


const VERSION = 1
const RETAIN = 1 << 2
const ORIGIN = 1 << 3
const PROPERTIES = 1 << 4

const BATCH = 2

const BATCH_HEADER = 13

/**
 * A batch being written: each frame goes straight into one growing buffer (no buffer per message), after room
 * for the header, which `finish` fills in. The buffer is handed to NATS as is, so each batch has its own.
 */
export class Batch {
  private buf: Buffer
  private used = BATCH_HEADER
  count = 0

  constructor(sizeHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(1024, BATCH_HEADER + 4 + sizeHint))
  }

  get bytes(): number {
    return this.used
  }

  add(node: string, message: Readonly<Message>): void {
    const properties = message.properties ? JSON.stringify(propertiesToJson(message.properties)) : undefined
    const size = frameSize(node, message, properties)
    if (this.used + 4 + size > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + 4 + size))
      this.buf.copy(bigger, 0, 0, this.used)
      this.buf = bigger
    }
    this.used = this.buf.writeUInt32LE(size, this.used)
    this.used = writeFrame(this.buf, this.used, node, message, properties)
    this.count++
  }

  /** The NATS message body: header (the sender's run and this batch's number) and frames. */
  finish(run: number, seq: number): Buffer {
    this.buf[0] = BATCH
    this.buf.writeUInt32LE(run >>> 0, 1)
    this.buf.writeDoubleLE(seq, 5)
    return this.buf.subarray(0, this.used)
  }
}

/** A batch's sender run and sequence; null when `data` is no batch (a single frame, from the stream) or is cut short. */
export function batchHeader(data: Uint8Array): { run: number; seq: number } | null {
  if (data[0] !== BATCH || data.length < BATCH_HEADER) return null
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return { run: view.readUInt32LE(1), seq: view.readDoubleLE(5) }
}

/** Calls `take` with each frame of a NATS message body (one frame, or a batch); false if a batch is cut short. */
export function eachFrame(data: Uint8Array, take: (frame: Uint8Array) => void): boolean {
  if (data[0] !== BATCH) {
    take(data)
    return true
  }
  if (data.length < BATCH_HEADER) return false
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  let at = BATCH_HEADER
  while (at < view.length) {
    if (at + 4 > view.length) return false
    const length = view.readUInt32LE(at)
    if (at + 4 + length > view.length) return false
    take(view.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return true
}

/** The frame of a message this node sends on, on its own (a QoS 1/2 message: one JetStream message each). */
export function encodeFrame(node: string, message: Readonly<Message>): Buffer {
  const properties = message.properties ? JSON.stringify(propertiesToJson(message.properties)) : undefined
  const frame = Buffer.allocUnsafe(frameSize(node, message, properties))
  writeFrame(frame, 0, node, message, properties)
  return frame
}

function frameSize(node: string, message: Readonly<Message>, properties: string | undefined): number {
  const origin = message.origin === undefined ? 0 : 2 + Buffer.byteLength(message.origin)
  const props = properties === undefined ? 0 : 4 + Buffer.byteLength(properties)
  return 10 + 2 + Buffer.byteLength(node) + 2 + Buffer.byteLength(message.topic) + origin + props + message.payload.length
}

/** Writes a message's frame into `into` at `at` (room for frameSize() bytes); returns where it ends. */
function writeFrame(into: Buffer, at: number, node: string, message: Readonly<Message>, properties: string | undefined): number {
  into[at] = VERSION
  into[at + 1] = message.qos | (message.retain ? RETAIN : 0) | (message.origin !== undefined ? ORIGIN : 0) | (properties !== undefined ? PROPERTIES : 0)
  into.writeDoubleLE(message.expiresAt, at + 2)
  at = writeText(into, at + 10, node)
  at = writeText(into, at, message.topic)
  if (message.origin !== undefined) at = writeText(into, at, message.origin)
  if (properties !== undefined) {
    const length = into.write(properties, at + 4)
    into.writeUInt32LE(length, at)
    at += 4 + length
  }
  return at + message.payload.copy(into, at)
}

/** A u16 length and the UTF-8 text. */
function writeText(into: Buffer, at: number, text: string): number {
  const length = into.write(text, at + 2)
  into.writeUInt16LE(length, at)
  return at + 2 + length
}

/** Whether a frame was sent by the node whose name is `node` (UTF-8), read in place. */
export function sentBy(data: Uint8Array, node: Buffer): boolean {
  if (data.length < 12 + node.length || data[10]! + (data[11]! << 8) !== node.length) return false
  for (let i = 0; i < node.length; i++) if (data[12 + i] !== node[i]) return false
  return true
}

/** Where the next field of the frame being read starts (one frame is read at a time: no closure, no state object). */
let cursor = 0

/** A u16-length UTF-8 field at the cursor, or null past the end. */
function readText(frame: Buffer): string | null {
  if (cursor + 2 > frame.length) return null
  const length = frame.readUInt16LE(cursor)
  if (cursor + 2 + length > frame.length) return null
  const value = frame.toString('utf8', cursor + 2, cursor + 2 + length)
  cursor += 2 + length
  return value
}

/**
 * The message a frame carries, as from another node (`remote`: not sent back to the cluster); null when it is no
 * frame of this version, or is cut short. Its payload is a view of the NATS message, as an MQTT PUBLISH's is of the
 * socket's read: the broker copies it only if it keeps the message (queued, retained, stored; see `own`).
 */
export function frameMessage(data: Uint8Array): Message | null {
  const frame = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (frame.length < 14 || frame[0] !== VERSION) return null
  const flags = frame[1]!
  if ((flags & 3) === 3) return null
  cursor = 12 + frame.readUInt16LE(10) // past the sender's name (sentBy reads it)
  if (cursor > frame.length) return null
  const topic = readText(frame)
  if (topic === null) return null
  let origin: string | undefined
  if (flags & ORIGIN) {
    const text = readText(frame)
    if (text === null) return null
    origin = text
  }
  let properties: Record<string, unknown> | undefined
  if (flags & PROPERTIES) {
    if (cursor + 4 > frame.length) return null
    const length = frame.readUInt32LE(cursor)
    if (cursor + 4 + length > frame.length) return null
    try {
      properties = JSON.parse(frame.toString('utf8', cursor + 4, cursor + 4 + length)) as Record<string, unknown>
    } catch {
      return null
    }
    cursor += 4 + length
  }
  return {
    topic,
    payload: frame.subarray(cursor),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & RETAIN) !== 0,
    properties: propertiesFromJson(properties),
    expiresAt: frame.readDoubleLE(2),
    origin,
    owned: false,
    remote: true,
  }
}

/** A KV key for any string (topics and client ids may hold characters KV keys may not). */
export function kvKey(text: string): string {
  return Buffer.from(text).toString('base64url')
}
