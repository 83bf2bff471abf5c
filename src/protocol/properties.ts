/**
 * MQTT 5 property sections read from the raw bytes, at framing, for what mqtt-packet's decoding hides:
 * - a property given twice (section 2.2.2.2: a Protocol Error for every property but User Property). mqtt-packet
 *   makes a repeat an array, except when the first value was falsy (0, an empty string), which it overwrites;
 * - a flag property (Payload Format Indicator, Request Problem Information, Request Response Information) that is
 *   neither 0 nor 1 (sections 3.3.2.3.2, 3.1.2.11.6, -7): mqtt-packet reads them as booleans, so 0xED would be
 *   forwarded as 1, and a value is never silently altered.
 * Sections cut short, undefined identifiers and properties a packet may not carry are left to mqtt-packet and
 * check.ts, which see them decoded.
 */

const FLAG_NAMES: Record<number, string> = { 0x01: 'Payload Format Indicator', 0x17: 'Request Problem Information', 0x19: 'Request Response Information' }
/** Value sizes by identifier (section 2.2.2.2): bytes for fixed ones, 'string' (two-byte length, also binary), 'pair', 'var'. */
const SIZE: Record<number, number | 'string' | 'pair' | 'var'> = {
  0x01: 1, 0x17: 1, 0x19: 1, 0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2a: 1,
  0x13: 2, 0x21: 2, 0x22: 2, 0x23: 2,
  0x02: 4, 0x11: 4, 0x18: 4, 0x27: 4,
  0x03: 'string', 0x08: 'string', 0x09: 'string', 0x12: 'string', 0x15: 'string', 0x16: 'string', 0x1a: 'string', 0x1c: 'string', 0x1f: 'string',
  0x26: 'pair',
  0x0b: 'var',
}
const USER_PROPERTY = 0x26

/** The reason an MQTT 5 packet's properties are refused (a Protocol Error), or null. `buf[from, to)` is its body. */
export function propertiesError(type: number, flags: number, buf: Uint8Array, from: number, to: number): string | null {
  const length = to - from
  switch (type) {
    case 1:
      return connectError(buf, from, to)
    case 3: {
      // PUBLISH: topic, packet identifier when QoS > 0, properties.
      if (length < 2) return null
      const at = from + 2 + ((buf[from]! << 8) | buf[from + 1]!) + (((flags >> 1) & 3) > 0 ? 2 : 0)
      return scan(buf, at, to)
    }
    case 4: case 5: case 6: case 7:
      // Acks: packet identifier, reason code, then properties when the body is longer than 3.
      return length > 3 ? scan(buf, from + 3, to) : null
    case 8: case 10:
      // SUBSCRIBE, UNSUBSCRIBE: packet identifier, properties.
      return scan(buf, from + 2, to)
    case 14: case 15:
      // DISCONNECT, AUTH: reason code, then properties when the body is longer than 1.
      return length > 1 ? scan(buf, from + 1, to) : null
  }
  return null
}

/** CONNECT: protocol name, level, flags, keep alive, properties; in the payload, after the client id, the will's. */
function connectError(buf: Uint8Array, from: number, to: number): string | null {
  if (to - from < 2) return null
  let at = from + 2 + ((buf[from]! << 8) | buf[from + 1]!)
  if (at + 4 > to || buf[at] !== 5) return null
  const connectFlags = buf[at + 1]!
  at += 4
  const error = scan(buf, at, to)
  if (error || (connectFlags & 0x04) === 0) return error
  const section = varInt(buf, at, to)
  if (!section) return null
  at = section[1] + section[0]
  if (at + 2 > to) return null
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

/** Walks one property section starting at its length; returns the first repeat or bad flag found. */
function scan(buf: Uint8Array, at: number, to: number): string | null {
  const length = varInt(buf, at, to)
  if (!length || length[0] === 0) return null
  let p = length[1]
  const end = Math.min(to, p + length[0])
  let seenLow = 0 // identifiers 0-31, one bit each
  let seenHigh = 0 // identifiers 32-63
  while (p < end) {
    const id = buf[p++]!
    const size = SIZE[id]
    if (size === undefined) return null // undefined: mqtt-packet refuses it
    if (id !== USER_PROPERTY) {
      const bit = 1 << (id & 31)
      if (id < 32 ? seenLow & bit : seenHigh & bit) return `property 0x${id.toString(16).padStart(2, '0')} appears more than once`
      if (id < 32) seenLow |= bit
      else seenHigh |= bit
    }
    if (id in FLAG_NAMES && p < end && buf[p]! > 1) return `${FLAG_NAMES[id]} of ${buf[p]}: expected 0 or 1`
    if (typeof size === 'number') p += size
    else if (size === 'string') p += p + 2 <= end ? 2 + ((buf[p]! << 8) | buf[p + 1]!) : end
    else if (size === 'pair') for (let k = 0; k < 2 && p < end; k++) p += p + 2 <= end ? 2 + ((buf[p]! << 8) | buf[p + 1]!) : end
    else p = varInt(buf, p, end)?.[1] ?? end
  }
  return null
}
