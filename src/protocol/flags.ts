/**
 * MQTT 5 properties whose value is a byte that must be 0 or 1: Payload Format Indicator (section 3.3.2.3.2),
 * Request Problem Information and Request Response Information (3.1.2.11.6, -7). mqtt-packet reads them as
 * booleans, so 0xED would be taken (and forwarded) as 1: a value is never silently altered, so the raw bytes of
 * the PUBLISH and CONNECT property sections are read here, at framing, before mqtt-packet sees them.
 */

/** Byte-valued properties that are flags. */
const FLAG = new Set([0x01, 0x17, 0x19])
const NAMES: Record<number, string> = { 0x01: 'Payload Format Indicator', 0x17: 'Request Problem Information', 0x19: 'Request Response Information' }
/** Fixed value sizes by property identifier (MQTT 5.0 section 2.2.2.2); the rest are strings, binary, pairs or a var int. */
const FIXED: Record<number, number> = { 0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2a: 1, 0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2, 0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4 }
const PREFIXED = new Set([0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f])

/**
 * Checks the flag properties of a PUBLISH (type 3) or CONNECT (type 1) whose body is buf[from, to). Returns what
 * is wrong, or null; a section cut short or an unknown identifier is left to mqtt-packet and check.ts to refuse.
 */
export function flagPropertyError(type: number, flags: number, buf: Uint8Array, from: number, to: number, version: number | undefined): string | null {
  if (type === 3) {
    if (version !== 5 || to - from < 2) return null
    let at = from + 2 + ((buf[from]! << 8) | buf[from + 1]!)
    if (((flags >> 1) & 3) > 0) at += 2
    return scan(buf, at, to)
  }
  // CONNECT: protocol name, level, flags, keep alive, then properties; in the payload, the will's properties.
  if (to - from < 2) return null
  let at = from + 2 + ((buf[from]! << 8) | buf[from + 1]!)
  if (at + 4 > to || buf[at] !== 5) return null
  const connectFlags = buf[at + 1]!
  at += 4
  const error = scan(buf, at, to)
  if (error || (connectFlags & 0x04) === 0) return error
  at = skipSection(buf, at, to) // past the properties
  if (at < 0 || at + 2 > to) return null
  at += 2 + ((buf[at]! << 8) | buf[at + 1]!) // past the client identifier
  const willError = scan(buf, at, to)
  return willError && `will ${willError}`
}

/** Reads a variable byte integer at `at`: [value, next position], or null when cut short. */
function varInt(buf: Uint8Array, at: number, to: number): [number, number] | null {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4 && at < to; i++) {
    const byte = buf[at++]!
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return [value, at]
    multiplier *= 128
  }
  return null
}

/** Where the property section starting at `at` ends, or -1. */
function skipSection(buf: Uint8Array, at: number, to: number): number {
  const length = varInt(buf, at, to)
  return length ? length[1] + length[0] : -1
}

/** Walks one property section; returns the first flag that is neither 0 nor 1. */
function scan(buf: Uint8Array, at: number, to: number): string | null {
  const length = varInt(buf, at, to)
  if (!length || length[0] === 0) return null
  let p = length[1]
  const end = Math.min(to, p + length[0])
  while (p < end) {
    const id = buf[p++]!
    if (FLAG.has(id)) {
      if (p >= end) return null
      const value = buf[p]!
      if (value > 1) return `${NAMES[id]} of ${value}: expected 0 or 1`
    }
    const fixed = FIXED[id]
    if (fixed !== undefined) p += fixed
    else if (PREFIXED.has(id)) p += p + 2 <= end ? 2 + ((buf[p]! << 8) | buf[p + 1]!) : end
    else if (id === 0x26) for (let k = 0; k < 2 && p + 2 <= end; k++) p += 2 + ((buf[p]! << 8) | buf[p + 1]!) // user property: two strings
    else if (id === 0x0b) p = varInt(buf, p, end)?.[1] ?? end
    else return null // unknown: mqtt-packet refuses it
  }
  return null
}
