/**
 * UTF-8 strings read from packets, with short repeated ones interned.
 *
 * mqtt-packet reads every topic, client id and user-property key and value as a new string. In much traffic they
 * repeat: a few topics, the same property names. A fixed table keyed by the bytes hands back the string made
 * the last time those exact bytes were read, so a repeat costs a hash and a compare instead of a decode and an
 * allocation, and everything downstream (the route cache, property maps) gets a string it has seen before.
 *
 * - The table is fixed in size (SETS sets of two strings of at most MAX_BYTES ASCII bytes): a new string takes
 *   the first place of its set and moves the one there to the second, whose string goes, so the table never grows,
 *   whatever the traffic. (With one place per set, 600 topics in turn lost one in four to a neighbour.)
 * - The answer is always exactly `Buffer.toString('utf8')`'s: a hit needs the same ASCII bytes, and anything
 *   else is decoded as before.
 * - Where strings do not repeat (a topic per device among thousands), a lookup is a miss that costs more than
 *   the decode it did not save. So the table keeps count: while fewer than half of the last SAMPLE lookups hit,
 *   it looks up only one string in STAND_ASIDE and decodes the rest at once. (Sampling all along, rather than
 *   in phases, keeps both paths compiled: switching between long phases cost a deoptimization each time.)
 * - A string decoded here is first scanned for what the checks after it need: ASCII, U+0000, and the wildcards
 *   a topic name may not hold (lastUtf8Scan). A kept string keeps what its scan found, so a hit is not scanned again.
 * - A PUBLISH's topic not found here may be left in its bytes once scanned clean (readUtf8's LEAVE_CLEAN): routed
 *   and forwarded as received, it may never be needed as a string. Whoever needs it later reads it here then.
 */

const SETS = 2048 // a power of 2
const MAX_BYTES = 32
const SAMPLE = 1024
const STAND_ASIDE = 32 // a power of 2

/** Set n's strings at 2n (the one kept last) and 2n + 1. */
const slotString: string[] = new Array<string>(2 * SETS).fill('')
/** What decode() found in each slot's string when it was kept (see lastScan). */
const slotScan = new Uint8Array(2 * SETS)
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

/** What utf8() learned of the string it last returned, from its bytes (bits below; 0 when it did not look). */
let lastScan = 0
/** ASCII without U+0000: the string needs no check of its own for ill-formed UTF-8 or U+0000 (see bytes.ts). */
export const CLEAN = 1
/** Holds neither '+' nor '#': as a topic name, it needs no scan for wildcards (validate.ts). */
export const NO_WILDCARDS = 2
/** Strings up to this many bytes are scanned here; longer ones are decoded and left to the checks that follow. */
const MAX_SCANNED = 256

/** What utf8() found in the bytes of the string it last returned: CLEAN and NO_WILDCARDS, or 0. */
export function lastUtf8Scan(): number {
  return lastScan
}

/** `Buffer.latin1Slice`, which Bun, Node and Deno all have (not in the typings): the fastest decode of ASCII bytes. */
type Latin1 = Buffer & { latin1Slice(from: number, to: number): string }

/** What readUtf8 does with bytes the table does not hold: decode them (as utf8() does). */
export const DECODE = 0
/** ... or, when they are ASCII without U+0000, '+' or '#' (up to MAX_SCANNED bytes), leave them: null. */
export const LEAVE_CLEAN = 1
/** ... or decode them without a scan: LEAVE_CLEAN found them clean before. */
export const KNOWN_CLEAN = 2

/** `buf.toString('utf8', from, to)` for a range already within `buf`. */
export function utf8(buf: Buffer, from: number, to: number): string {
  return readUtf8(buf, from, to, DECODE)!
}

/**
 * The string of the bytes [from, to) of `buf`: the one kept in the table for them, or (`miss`) decoded, or null
 * for clean bytes left as they are (LEAVE_CLEAN: a topic forwarded as received may never be read as a string,
 * message.ts LazyTopicMessage; whoever reads it later asks again with KNOWN_CLEAN). One function for the three,
 * with the hash written out in it: a lookup split into calls was ~12 ns more per packet.
 */
export function readUtf8(buf: Buffer, from: number, to: number, miss: number): string | null {
  const length = to - from
  if (length <= 0) {
    lastScan = CLEAN | NO_WILDCARDS
    return ''
  }
  if (length > MAX_BYTES || (++tick & asideFor) !== 0) return miss === DECODE ? decode(buf, from, to) : missed(buf, from, to, miss)
  // FNV-style over 4-byte words, then the rest byte by byte, with a final mix (a topic of 30 bytes: ~40 -> ~18 ns).
  let hash = 0x811c9dc5 ^ length
  let i = from
  for (const end = to - 3; i < end; i += 4) hash = Math.imul(hash ^ (buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)), 0x01000193)
  for (; i < to; i++) hash = Math.imul(hash ^ buf[i]!, 0x01000193)
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  if (++lookups === SAMPLE) {
    asideFor = (totalHits - hitsBefore) * 2 < SAMPLE ? STAND_ASIDE - 1 : 0
    hitsBefore = totalHits
    lookups = 0
  }
  const first = ((hash ^ (hash >>> 15)) & (SETS - 1)) * 2
  for (let slot = first; slot < first + 2; slot++) {
    const known = slotString[slot]!
    if (known.length === length && sameChars(known, buf, from)) {
      // The same bytes as the string kept (ASCII, or it would not be): what was found in them then holds now.
      totalHits++
      lastScan = slotScan[slot]!
      return known
    }
  }
  totalMisses++
  const text = miss === DECODE ? decode(buf, from, to) : missed(buf, from, to, miss)
  // Only ASCII without U+0000 is kept: then a string's characters are its bytes, which is what a hit compares.
  if (text !== null && lastScan & CLEAN) {
    slotString[first + 1] = slotString[first]!
    slotScan[first + 1] = slotScan[first]!
    slotString[first] = text
    slotScan[first] = lastScan
  }
  return text
}

/** What readUtf8 gives for bytes the table does not hold (see `miss`), noting in lastScan what they hold. */
function missed(buf: Buffer, from: number, to: number, miss: number): string | null {
  if (miss === KNOWN_CLEAN) {
    lastScan = CLEAN | NO_WILDCARDS
    return (buf as Latin1).latin1Slice(from, to)
  }
  if (miss === LEAVE_CLEAN && scan(buf, from, to) === (CLEAN | NO_WILDCARDS)) {
    lastScan = CLEAN | NO_WILDCARDS
    return null
  }
  return decode(buf, from, to)
}

/** Whether `known`'s characters are the bytes of `buf` from `from` on (as many as it has). */
function sameChars(known: string, buf: Buffer, from: number): boolean {
  for (let i = 0; i < known.length; i++) if (known.charCodeAt(i) !== buf[from + i]) return false
  return true
}

/**
 * Decodes bytes not found in the table, noting in `lastScan` what they hold (see scan). ASCII is decoded as
 * Latin-1, the same string made without UTF-8's checks; anything else, or longer, as UTF-8 and left to the checks
 * that follow.
 */
function decode(buf: Buffer, from: number, to: number): string {
  const found = scan(buf, from, to)
  if (found < 0) {
    lastScan = 0 // nothing known: bytes.ts checks the string itself
    return buf.toString('utf8', from, to)
  }
  lastScan = found
  return (buf as Latin1).latin1Slice(from, to)
}

/**
 * What bytes up to MAX_SCANNED hold, looked at 4 at a time: -1 if any is >= 0x80 (not ASCII: a string's chars are
 * not its bytes) or there are more; otherwise CLEAN unless a byte is zero ((w - 0x01..) & ~w sets its top bit),
 * and NO_WILDCARDS unless one is '#' or '+' (0x23 and 0x2b differ only in 0x08: with that bit set, both are 0x2b).
 */
function scan(buf: Buffer, from: number, to: number): number {
  if (to - from > MAX_SCANNED) return -1
  let high = 0
  let zeroes = 0
  let wild = 0
  let i = from
  for (const end = to - 3; i < end; i += 4) {
    const word = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24)
    high |= word
    zeroes |= (word - 0x01010101) & ~word
    const marks = (word | 0x08080808) ^ 0x2b2b2b2b
    wild |= (marks - 0x01010101) & ~marks
  }
  for (; i < to; i++) {
    const byte = buf[i]!
    high |= byte
    if (byte === 0) zeroes |= 0x80
    if ((byte | 0x08) === 0x2b) wild |= 0x80
  }
  if (high & 0x80808080) return -1
  return ((zeroes & 0x80808080) === 0 ? CLEAN : 0) | ((wild & 0x80808080) === 0 ? NO_WILDCARDS : 0)
}
