/**
 * What mqtt-packet's parser reads its input from, in place of npm `bl` (a list of buffers).
 *
 * mqtt-packet keeps its input in a `bl` BufferList and reads every field through it: each `readUInt8` makes a
 * Buffer view and a two-element array, and each `append` a view of the ArrayBuffer. That was about half the
 * garbage of a routed message. Midge only ever hands the parser runs of whole packets in one buffer, so the
 * input is always contiguous, and this reads it in place: one buffer, a start and a length.
 *
 * It keeps exactly the part of bl's contract the parser uses (mqtt-packet 9: append, length, readUInt8,
 * readUInt16BE, readUInt32BE, slice, toString, consume), with bl's results, including a RangeError for a read
 * past the end and views (not copies) for slices. `test/codec.test.ts` checks that the parser decodes and
 * refuses the same packets either way. mqtt-packet still decodes every packet: this only holds its bytes.
 */

import { isUtf8 } from 'node:buffer'
import { CLEAN, DECODE, KNOWN_CLEAN, lastUtf8Scan, LEAVE_CLEAN, readUtf8 } from './strings.ts'

const EMPTY = Buffer.alloc(0)

export class ContiguousBytes {
  private bytes: Buffer = EMPTY
  private start = 0
  /** Bytes not yet consumed (mqtt-packet reads it as a field, like bl's). */
  length = 0
  /** The range the last slice or toString asked for, clamped (see clamp). */
  private from = 0
  private to = 0
  /** Set when a string read since the last packet broke [MQTT-1.5.4-1, -2]; the decoder refuses that packet. */
  stringError: string | null = null
  /**
   * What utf8() found in the first string read since the decoder last reset it (strings.ts CLEAN, NO_WILDCARDS),
   * -1 before one: the decoder resets it after each packet, so for a PUBLISH it is the topic's (section 3.3.2).
   */
  firstScan = -1
  /**
   * The next string read is a PUBLISH's topic that may be left in bytes (set by the decoder as the parser starts a
   * PUBLISH body). If it is, toString returns '' and `topicFrom`/`topicTo` say where its bytes are (see takeTopic).
   */
  topicNext = false
  topicFrom = -1
  topicTo = -1

  append(buf: Buffer): this {
    if (buf.length === 0) return this
    if (this.length === 0) {
      this.bytes = buf
      this.start = 0
    } else {
      // Not reached by Midge (every run of packets is consumed whole), kept so the contract holds.
      this.bytes = Buffer.concat([this.bytes.subarray(this.start, this.start + this.length), buf])
      this.start = 0
    }
    this.length = this.bytes.length - this.start
    return this
  }

  readUInt8(offset: number): number {
    this.check(offset, 1)
    return this.bytes[this.start + offset]!
  }

  readUInt16BE(offset: number): number {
    this.check(offset, 2)
    const at = this.start + offset
    return (this.bytes[at]! << 8) | this.bytes[at + 1]!
  }

  readUInt32BE(offset: number): number {
    this.check(offset, 4)
    const at = this.start + offset
    return this.bytes[at]! * 0x1000000 + ((this.bytes[at + 1]! << 16) | (this.bytes[at + 2]! << 8) | this.bytes[at + 3]!)
  }

  /** A view of [start, end), clamped to what is held, as bl's slice (empty when nothing is in range). */
  slice(start?: number, end?: number): Buffer {
    this.clamp(start, end)
    return this.from === this.to ? EMPTY : this.bytes.subarray(this.start + this.from, this.start + this.to)
  }

  toString(encoding: BufferEncoding, start?: number, end?: number): string {
    this.clamp(start, end)
    if (encoding !== 'utf8') return this.bytes.toString(encoding, this.start + this.from, this.start + this.to)
    const from = this.start + this.from
    const to = this.start + this.to
    // What the parser asks: topics, client ids, properties. A PUBLISH's topic may be left in bytes (topicNext).
    const text = readUtf8(this.bytes, from, to, this.topicNext ? LEAVE_CLEAN : DECODE)
    if (this.topicNext) {
      this.topicNext = false
      if (text === null) {
        this.topicFrom = from
        this.topicTo = to
      }
    }
    const scan = lastUtf8Scan()
    if (this.firstScan < 0) this.firstScan = scan
    if (text === null) return ''
    // Every string the parser reads is a UTF-8 Encoded String (section 1.5.4). ASCII ones were checked as utf8()
    // read them; the decoder turns ill-formed bytes into U+FFFD, so only a string holding one is read again, byte by byte.
    if (scan & CLEAN) return text
    if (text.indexOf('\u0000') !== -1) this.stringError ??= 'a UTF-8 string holds U+0000'
    else if (text.indexOf('\uFFFD') !== -1 && !isUtf8(this.bytes.subarray(from, to))) this.stringError ??= 'a string is not well-formed UTF-8'
    return text
  }

  /** The string of the topic toString left in bytes (its ASCII read as it is), now; the bytes are forgotten. */
  takeTopic(): string {
    const text = readUtf8(this.bytes, this.topicFrom, this.topicTo, KNOWN_CLEAN)!
    this.topicFrom = this.topicTo = -1
    return text
  }

  consume(bytes: number): this {
    const n = Math.trunc(bytes)
    if (Number.isNaN(n) || n <= 0) return this
    // The bytes are kept when all are consumed: the packet just read is still asked for (packetBefore).
    const taken = n >= this.length ? this.length : n
    this.start += taken
    this.length -= taken
    return this
  }

  /**
   * The packet that ends where the unread input starts, as a view, if its first byte is `first` and its remaining
   * length `remaining` is encoded in the fewest bytes (section 1.5.5); null otherwise. Asked when the parser emits
   * a packet, whose bytes it has consumed by then. (A longer encoding of the length leaves a continuation byte,
   * never `first`, where the fixed header would begin.)
   */
  packetBefore(remaining: number, first: number): Buffer | null {
    const at = this.start - remaining - (remaining < 0x80 ? 2 : remaining < 0x4000 ? 3 : remaining < 0x200000 ? 4 : 5)
    if (at < 0 || this.bytes[at] !== first) return null
    return this.bytes.subarray(at, this.start)
  }

  /** Lets go of the input (the decoder's parser outlives the read it was handed). */
  release(): void {
    this.bytes = EMPTY
    this.start = 0
    this.length = 0
  }

  /**
   * bl's arithmetic, into `from` and `to`: negative start/end count from the end, then both are clamped; an
   * empty range is [0, 0]. (Fields rather than a returned pair: the parser reads every topic and payload through
   * here, and a pair was an array per read.)
   */
  private clamp(start: number | undefined, end: number | undefined): void {
    let from = typeof start === 'number' ? (start < 0 ? start + this.length : start) : 0
    let to = typeof end === 'number' ? (end < 0 ? end + this.length : end) : this.length
    if (from < 0) from = 0
    if (to > this.length) to = this.length
    if (from >= this.length || to <= 0 || to <= from) from = to = 0
    this.from = from
    this.to = to
  }

  private check(offset: number, size: number): void {
    if (offset < 0 || offset + size > this.length) {
      throw new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${this.length - size}. Received ${offset}`)
    }
  }
}
