/**
 * The one importer of mqtt-packet, and every reliance on its internals, in one place. mqtt-packet is pinned to an
 * exact version in package.json; `internalsProblems()` names any internal below that a new version no longer has
 * in the shape relied on, and test/codec.test.ts fails loudly on it before anything else does.
 *
 * What is relied on, and why:
 * - its `debug` logger, replaced while it loads (about 30 arrays per routed message otherwise);
 * - `numbers.genBufVariableByteInt`, shared per value (two objects per MQTT 5 packet with properties otherwise);
 * - the parser's input (`_list`, made anew by `_resetState`), read in place (see bytes.ts);
 * - the parser's `emit`, called with 'packet' and 'error' (taken straight, without EventEmitter's argument array);
 * - the parser's `_pos`, how far into a packet's body it read, still set when it emits the packet (codec.ts checks
 *   that each body was read exactly to its end);
 * - the parser's `_parsePublish`, which reads a PUBLISH body with the topic as its first string (codec.ts may leave
 *   that topic in bytes).
 */
import { createRequire } from 'node:module'
import { ContiguousBytes } from './bytes.ts'

export const mqttPacket = loadMqttPacket()

/**
 * mqtt-packet calls its `debug` logger (npm `debug`) about 15 times per packet parsed and 5 per packet generated.
 * Even disabled, each call allocates an array for its arguments and runs a getter: about 30 short-lived arrays
 * per routed message, the larger part of the hot path's garbage. Unless DEBUG asks for logs, mqtt-packet is
 * loaded with a logger that does nothing (the stand-in lives in the require cache only while mqtt-packet loads,
 * so every other module still gets the real `debug`).
 */
function loadMqttPacket(): typeof import('mqtt-packet') {
  const local = createRequire(import.meta.url)
  let packetPath: string
  try {
    packetPath = local.resolve('mqtt-packet')
  } catch {
    // A single executable (`bun build --compile`): mqtt-packet is bundled (the bundler follows this plain `require`),
    // with no files to resolve or patch, so it loads as it is (its logger calls included).
    return require('mqtt-packet')
  }
  if (!local.cache[packetPath]) reuseVarByteInts(packetPath)
  const debugPath = process.env.DEBUG || local.cache[packetPath] ? null : resolveFrom(packetPath, 'debug')
  if (!debugPath) return local('mqtt-packet') // logs asked for, loaded already, or a version without `debug`
  const real = local.cache[debugPath]
  const silent = () => {}
  const createDebug = () => Object.assign(silent, { enabled: false })
  local.cache[debugPath] = { id: debugPath, filename: debugPath, loaded: true, exports: createDebug } as unknown as NodeJS.Module
  try {
    return local('mqtt-packet')
  } finally {
    if (real) local.cache[debugPath] = real
    else delete local.cache[debugPath]
  }
}

/**
 * mqtt-packet's MQTT 5 encoder measures every properties section by encoding its length as a variable byte
 * integer into a new buffer (`genBufVariableByteInt`: a 4-byte buffer and a view of it) and taking that buffer's
 * length: two objects per packet with properties, the largest cost in encoding them. Its callers only measure
 * the result or, for values under 16,384, cache it themselves, so one shared buffer per value serves as well.
 * writeToStream.js reads the function from numbers.js when it loads, so this runs before mqtt-packet loads; a
 * version laid out otherwise is left as it is.
 */
function reuseVarByteInts(packetPath: string): void {
  const numbersPath = resolveFrom(packetPath, './numbers')
  if (!numbersPath) return
  const numbers = createRequire(packetPath)(numbersPath) as { genBufVariableByteInt?: (num: number) => Buffer }
  const generate = numbers.genBufVariableByteInt
  if (typeof generate !== 'function') return
  const cache: Buffer[] = []
  numbers.genBufVariableByteInt = (num: number) => (num >= 0 && num < 16384 && Number.isInteger(num) ? (cache[num] ??= generate(num)) : generate(num))
}

function resolveFrom(from: string, id: string): string | null {
  try {
    return createRequire(from).resolve(id)
  } catch {
    return null
  }
}

export type ParserSettings = { protocolVersion?: number; bridgeMode?: boolean }

export interface MqttPacketParser {
  parse(buf: Buffer): number
  /** Called by the parser with 'packet' (a Packet) or 'error' (an Error); it extends EventEmitter. */
  emit(event: string, value: unknown): boolean
  /** mqtt-packet internals: what it knows of the connection (protocolVersion, bridgeMode); CONNECT replaces it. */
  settings: ParserSettings
  /** mqtt-packet internals: its input (a `bl` BufferList), made anew by `_resetState`. */
  _list: unknown
  _resetState(): void
  /** mqtt-packet internals: how far into the current packet's body it has read (still set when it emits the packet). */
  _pos: number
  /** mqtt-packet internals: reads a PUBLISH body, its topic first (section 3.3.2). */
  _parsePublish(): unknown
}

/** Has the parser call `before` as it starts to read each PUBLISH body, whose first string is then the topic. */
export function beforePublishBody(mqttPacketParser: object, before: () => void): void {
  const parser = mqttPacketParser as MqttPacketParser
  const read = parser._parsePublish
  if (typeof read !== 'function') return
  parser._parsePublish = function (this: MqttPacketParser) {
    before()
    return read.call(this)
  }
}

/**
 * Has the parser read its input from a ContiguousBytes instead of bl (see bytes.ts), now and after every reset.
 * Left as it is if this mqtt-packet keeps its input some other way.
 */
export function readInPlace(mqttPacketParser: object): void {
  const parser = mqttPacketParser as MqttPacketParser
  const list = parser._list as { consume?: unknown; readUInt8?: unknown } | undefined
  if (typeof parser._resetState !== 'function' || typeof list?.consume !== 'function' || typeof list.readUInt8 !== 'function') return
  const reset = parser._resetState
  parser._resetState = function (this: MqttPacketParser) {
    reset.call(this)
    this._list = new ContiguousBytes()
  }
  parser._list = new ContiguousBytes()
}


/** What of mqtt-packet's internals is missing or shaped otherwise than relied on above: [] when all is as expected. */
export function internalsProblems(): string[] {
  const problems: string[] = []
  const require = createRequire(import.meta.url)
  const packetPath = require.resolve('mqtt-packet')
  if (!resolveFrom(packetPath, 'debug')) problems.push('mqtt-packet no longer loads npm `debug`')
  const numbersPath = resolveFrom(packetPath, './numbers')
  const numbers = numbersPath ? (createRequire(packetPath)(numbersPath) as { genBufVariableByteInt?: unknown }) : {}
  if (typeof numbers.genBufVariableByteInt !== 'function') problems.push('numbers.genBufVariableByteInt is gone')
  const parser = mqttPacket.parser() as unknown as MqttPacketParser
  const list = parser._list as { consume?: unknown; readUInt8?: unknown; append?: unknown } | undefined
  if (typeof parser._resetState !== 'function') problems.push('parser._resetState is gone')
  if (typeof parser._parsePublish !== 'function') problems.push('parser._parsePublish is gone')
  if (typeof list?.consume !== 'function' || typeof list.readUInt8 !== 'function' || typeof list.append !== 'function') problems.push('parser._list is no longer a bl-like list')
  const seen: Array<[string, number]> = []
  readInPlace(parser)
  parser.emit = (event, value) => {
    if (event === 'packet') seen.push([(value as { cmd: string }).cmd, parser._pos])
    return true
  }
  parser.parse(mqttPacket.generate({ cmd: 'puback', messageId: 7 }))
  if (seen.length !== 1 || seen[0]![0] !== 'puback') problems.push("parser.emit is no longer called with 'packet'")
  else if (seen[0]![1] !== 2) problems.push(`parser._pos is not the bytes read when a packet is emitted (got ${seen[0]![1]} for a 2-byte PUBACK body)`)
  let publishBodies = 0
  beforePublishBody(parser, () => publishBodies++)
  parser.parse(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: 'x', qos: 0, retain: false, dup: false }))
  if (publishBodies !== 1 || seen.length !== 2) problems.push('parser._parsePublish is not called once for each PUBLISH')
  return problems
}
