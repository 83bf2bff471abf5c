/**
 * UTF-8 strings read from packets, with the short ones interned.
 *
 * mqtt-packet reads every topic, client id and user-property key and value as a new string. In real traffic they
 * repeat: the same topics, the same property names. A fixed table keyed by the bytes hands back the string made
 * the last time those exact bytes were read, so a repeat costs a hash and a compare instead of a decode and an
 * allocation, and everything downstream (the route cache, property maps) gets a string it has seen before.
 *
 * The table is direct-mapped and fixed in size (SLOTS strings of at most MAX_BYTES bytes, ~80 KB in all): a new
 * string takes its slot's place, so the table never grows, whatever the traffic. The answer is always exactly
 * what `Buffer.toString('utf8')` gives for those bytes, malformed UTF-8 included, since a hit needs equal bytes.
 */

const SLOTS = 2048 // a power of 2
const MAX_BYTES = 32

const slotBytes = new Uint8Array(SLOTS * MAX_BYTES)
const slotLength = new Int32Array(SLOTS).fill(-1)
const slotString: string[] = new Array<string>(SLOTS).fill('')

/** `buf.toString('utf8', from, to)` for a range already within `buf`. */
export function utf8(buf: Buffer, from: number, to: number): string {
  const length = to - from
  if (length <= 0) return ''
  if (length > MAX_BYTES) return buf.toString('utf8', from, to)
  let hash = 0x811c9dc5 // FNV-1a
  for (let i = from; i < to; i++) hash = Math.imul(hash ^ buf[i]!, 0x01000193)
  const slot = (hash ^ (hash >>> 15)) & (SLOTS - 1)
  const base = slot * MAX_BYTES
  if (slotLength[slot] === length) {
    let i = 0
    while (i < length && slotBytes[base + i] === buf[from + i]) i++
    if (i === length) return slotString[slot]!
  }
  const text = buf.toString('utf8', from, to)
  for (let i = 0; i < length; i++) slotBytes[base + i] = buf[from + i]!
  slotLength[slot] = length
  slotString[slot] = text
  return text
}
