/**
 * UTF-8 strings read from packets, with short repeated ones interned.
 *
 * mqtt-packet reads every topic, client id and user-property key and value as a new string. In much traffic they
 * repeat: a few topics, the same property names. A fixed table keyed by the bytes hands back the string made
 * the last time those exact bytes were read, so a repeat costs a hash and a compare instead of a decode and an
 * allocation, and everything downstream (the route cache, property maps) gets a string it has seen before.
 *
 * - The table is direct-mapped and fixed in size (SLOTS strings of at most MAX_BYTES ASCII bytes): a new string
 *   takes its slot's place, so the table never grows, whatever the traffic.
 * - The answer is always exactly `Buffer.toString('utf8')`'s: a hit needs the same ASCII bytes, and anything
 *   else is decoded as before.
 * - Where strings do not repeat (a topic per device among thousands), a lookup is a miss that costs more than
 *   the decode it did not save. So the table keeps count: while fewer than half of the last SAMPLE lookups hit,
 *   it looks up only one string in STAND_ASIDE and decodes the rest at once. (Sampling all along, rather than
 *   in phases, keeps both paths compiled: switching between long phases cost a deoptimization each time.)
 */

const SLOTS = 2048 // a power of 2
const MAX_BYTES = 32
const SAMPLE = 1024
const STAND_ASIDE = 32 // a power of 2

const slotString: string[] = new Array<string>(SLOTS).fill('')
let lookups = 0 // in this sample
let hitsBefore = 0 // totalHits when this sample began
let asideFor = 0 // 0 while the table earns its keep, STAND_ASIDE - 1 while it does not
let tick = 0
let totalHits = 0
let totalMisses = 0

/** What the table has done so far (for tests and diagnostics). */
export function internStats(): { hits: number; misses: number; standingAside: boolean } {
  return { hits: totalHits, misses: totalMisses, standingAside: asideFor !== 0 }
}

/** Whether the last string utf8() returned is known to be ASCII without U+0000 (seen while hashing its bytes). */
let lastClean = false

/** True when the last utf8() result needs no check for U+0000 or ill-formed UTF-8 (see bytes.ts). */
export function lastUtf8Clean(): boolean {
  return lastClean
}

/** `buf.toString('utf8', from, to)` for a range already within `buf`. */
export function utf8(buf: Buffer, from: number, to: number): string {
  lastClean = false
  const length = to - from
  if (length <= 0) {
    lastClean = true
    return ''
  }
  if (length > MAX_BYTES) return buf.toString('utf8', from, to)
  if ((++tick & asideFor) !== 0) return buf.toString('utf8', from, to)
  // FNV-style over 4-byte words, then the rest byte by byte, with a final mix (a topic of 30 bytes: ~40 -> ~18 ns).
  // The same pass finds a byte >= 0x80 (not ASCII) and a zero byte ((w - 0x01..) & ~w sets its top bit).
  let hash = 0x811c9dc5 ^ length
  let high = 0
  let zeroes = 0
  let i = from
  for (const end = to - 3; i < end; i += 4) {
    const word = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)
    high |= word
    zeroes |= (word - 0x01010101) & ~word
    hash = Math.imul(hash ^ word, 0x01000193)
  }
  for (; i < to; i++) {
    const byte = buf[i]!
    high |= byte
    if (byte === 0) zeroes |= 0x80
    hash = Math.imul(hash ^ byte, 0x01000193)
  }
  if (high & 0x80808080) return buf.toString('utf8', from, to) // not ASCII: a string's chars are not its bytes
  lastClean = (zeroes & 0x80808080) === 0
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  if (++lookups === SAMPLE) {
    asideFor = (totalHits - hitsBefore) * 2 < SAMPLE ? STAND_ASIDE - 1 : 0
    hitsBefore = totalHits
    lookups = 0
  }
  const slot = (hash ^ (hash >>> 15)) & (SLOTS - 1)
  const known = slotString[slot]!
  if (known.length === length) {
    let i = 0
    while (i < length && known.charCodeAt(i) === buf[from + i]) i++
    if (i === length) {
      totalHits++
      return known
    }
  }
  totalMisses++
  const text = buf.toString('utf8', from, to)
  slotString[slot] = text
  return text
}
