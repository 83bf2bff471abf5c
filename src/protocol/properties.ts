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

/** Value sizes by identifier (section 2.2.2.2): 1, 2 or 4 bytes; STRING (two-byte length; binary too), PAIR, VAR; 0 undefined. */
const STRING = -1
const PAIR = -2
const VAR = -3
const SIZE = new Int8Array(64)
for (const id of [0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2a]) SIZE[id] = 1
for (const id of [0x13, 0x21, 0x22, 0x23]) SIZE[id] = 2
for (const id of [0x02, 0x11, 0x18, 0x27]) SIZE[id] = 4
for (const id of [0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1a, 0x1c, 0x1f]) SIZE[id] = STRING
SIZE[0x26] = PAIR
SIZE[0x0b] = VAR
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
      return at < to && buf[at] === 0 ? null : scan(buf, at, to) // most PUBLISH packets carry none
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
  at = sectionEnd(buf, at, to)
  if (at < 0 || at + 2 > to) return null
  at += 2 + ((buf[at]! << 8) | buf[at + 1]!) // past the client identifier
  const willError = scan(buf, at, to)
  return willError && `will ${willError}`
}

/** Where a variable byte integer read at `at` ended (varEnd) and its value (varValue): module fields, no tuple per read. */
let varValue = 0
let varEnd = 0

/** Reads a variable byte integer at `at` into varValue / varEnd; false when cut short. */
function readVarInt(buf: Uint8Array, at: number, to: number): boolean {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4 && at < to; i++) {
    const byte = buf[at++]!
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) {
      varValue = value
      varEnd = at
      return true
    }
    multiplier *= 128
  }
  return false
}

/** Where the property section whose length starts at `at` ends, or -1. */
function sectionEnd(buf: Uint8Array, at: number, to: number): number {
  return readVarInt(buf, at, to) ? varEnd + varValue : -1
}

/** Walks one property section starting at its length; returns the first repeat or bad flag found. */
function scan(buf: Uint8Array, at: number, to: number): string | null {
  if (!readVarInt(buf, at, to) || varValue === 0) return null
  let p = varEnd
  const end = Math.min(to, p + varValue)
  let seenLow = 0 // identifiers 0-31, one bit each
  let seenHigh = 0 // identifiers 32-63
  while (p < end) {
    const id = buf[p++]!
    const size = id < 64 ? SIZE[id]! : 0
    if (size === 0) return null // undefined: mqtt-packet refuses it
    if (id !== USER_PROPERTY) {
      const bit = 1 << (id & 31)
      if ((id < 32 ? seenLow : seenHigh) & bit) return `property 0x${id.toString(16).padStart(2, '0')} appears more than once`
      if (id < 32) seenLow |= bit
      else seenHigh |= bit
    }
    if ((id === 0x01 || id === 0x17 || id === 0x19) && p < end && buf[p]! > 1) return `${FLAG_NAMES[id]} of ${buf[p]}: expected 0 or 1`
    if (size > 0) p += size
    else if (size === STRING) p += p + 2 <= end ? 2 + ((buf[p]! << 8) | buf[p + 1]!) : end
    else if (size === PAIR) for (let k = 0; k < 2 && p < end; k++) p += p + 2 <= end ? 2 + ((buf[p]! << 8) | buf[p + 1]!) : end
    else p = readVarInt(buf, p, end) ? varEnd : end
  }
  return null
}
