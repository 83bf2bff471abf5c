/**
 * The codec loads mqtt-packet with a silent `debug` logger (its disabled calls cost ~30 arrays per message),
 * unless DEBUG asks for logs. Run in fresh processes: in this one MQTT.js may have loaded mqtt-packet already.
 */
import { describe, expect, test } from 'bun:test'
import mqttPacket, { generate, type Packet } from 'mqtt-packet'
import BufferList from 'bl'
import { ContiguousBytes } from '../src/protocol/bytes.ts'
import { CLEAN, internStats, lastUtf8Scan, NO_WILDCARDS, utf8 } from '../src/protocol/strings.ts'
import { encode } from '../src/protocol/encode.ts'
import { internalsProblems, readInPlace } from '../src/protocol/mqtt-packet.ts'
import { repoRoot } from './helpers/process.ts'

/** A repeatable pseudo-random integer in [0, n), from `seed`. */
function seededRandom(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
}

async function run(script: string, env: Record<string, string | undefined> = {}) {
  const proc = Bun.spawn([process.execPath, '-e', script], { cwd: repoRoot, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, DEBUG: undefined, ...env } })
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()])
  if ((await proc.exited) !== 0) throw new Error(`the script failed: ${stderr}`)
  return { stdout, stderr }
}

// Decodes a PUBLISH, then reports what `debug` every later module gets.
const script = `
  const { PacketReader } = await import('./src/protocol/codec.ts')
  const debugLoaded = Object.keys(require.cache).some((path) => path.includes('/node_modules/debug/'))
  const { default: mqttPacket } = await import('mqtt-packet')
  const { default: createDebug } = await import('debug')
  const got = []
  const reader = new PacketReader(1 << 20, { onPacket: (p) => got.push(p.cmd + ' ' + (p.topic ?? '')), onParseError: (e) => got.push('error ' + e.message) })
  reader.feed(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 0 }))
  reader.feed(mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
  console.log(JSON.stringify({ got, debugLoaded, realDebug: typeof createDebug.enable === 'function' }))
`

describe('codec', () => {
  // Midge relies on a few mqtt-packet internals (src/protocol/mqtt-packet.ts); mqtt-packet is pinned, and an upgrade
  // that changes any of them fails here first, naming it, rather than somewhere downstream.
  test("mqtt-packet's internals are shaped as the codec relies on", () => {
    expect(internalsProblems()).toEqual([])
    expect(require('mqtt-packet/package.json').version).toBe(require('../package.json').dependencies['mqtt-packet'])
  })

  test('decodes with mqtt-packet and leaves the real debug module to every other module', async () => {
    const { stdout, stderr } = await run(script)
    expect(JSON.parse(stdout)).toEqual({ got: ['connect ', 'publish a/b'], debugLoaded: false, realDebug: true })
    expect(stderr).not.toContain('mqtt-packet:parser')
  })

  test('DEBUG=mqtt-packet:* still shows mqtt-packet logs', async () => {
    const { stdout, stderr } = await run(script, { DEBUG: 'mqtt-packet:*' })
    expect(JSON.parse(stdout)).toEqual({ got: ['connect ', 'publish a/b'], debugLoaded: true, realDebug: true })
    expect(stderr).toContain('mqtt-packet:parser')
  })
})

describe('encode', () => {
  // In a fresh process the codec loads mqtt-packet itself, with its var-int buffers shared (mqtt-packet.ts,
  // reuseVarByteInts); the bytes must still be stock mqtt-packet's, as this process (which loaded it first) makes them.
  test('MQTT 5 properties encode with shared var-int buffers, to the same bytes as stock mqtt-packet', async () => {
    const v5 = (props: object) => ({ cmd: 'publish', topic: 't/1', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false, properties: props })
    const cases = [{}, { topicAlias: 3 }, { userProperties: { a: 'b', ü: ['1', '2'] } }, { subscriptionIdentifier: [1, 200, 20_000, 268435455] }, { userProperties: { big: 'x'.repeat(20_000) } }]
    const { stdout } = await run(`
      const { encode } = await import('./src/protocol/encode.ts')
      const numbers = require('mqtt-packet/numbers')
      const cases = ${JSON.stringify(cases)}
      const bytes = cases.map((properties) => encode({ ...${JSON.stringify(v5({}))}, payload: Buffer.from('x'), properties }, 5).toString('hex'))
      console.log(JSON.stringify({ shared: numbers.genBufVariableByteInt(300) === numbers.genBufVariableByteInt(300), bytes }))
    `)
    const result = JSON.parse(stdout)
    expect(result.shared).toBe(true)
    expect(result.bytes).toEqual(cases.map((props) => generate(v5(props) as Packet, { protocolVersion: 5 }).toString('hex')))
  })

  const big = Buffer.alloc(100_000, 7) // larger than the writer's scratch buffer
  const packets: [Packet, 3 | 4 | 5][] = [
    [{ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 4],
    [{ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, 4],
    [{ cmd: 'publish', topic: 'zürich/温度/🌡', payload: 'strings are UTF-8 too', qos: 1, messageId: 7, retain: true, dup: true }, 3],
    [{ cmd: 'publish', topic: 'big', payload: big, qos: 2, messageId: 65535, retain: false, dup: false }, 5],
    [{ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 3, userProperties: { a: 'b', ü: ['1', '2'] }, contentType: 'text/plain', correlationData: Buffer.from([1, 2]), messageExpiryInterval: 60, subscriptionIdentifier: [1, 268435455] } }, 5],
    [{ cmd: 'suback', messageId: 2, granted: [0, 1, 0x80], properties: { reasonString: 'ok' } }, 5],
    [{ cmd: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'session taken over' } }, 5],
  ]

  test('writes the same bytes as mqtt-packet generate(), for every version and any size', () => {
    for (const [packet, protocolVersion] of packets) {
      expect(encode(packet, protocolVersion)).toEqual(generate(packet, { protocolVersion }))
    }
    // Each result is its own buffer: a later encode does not overwrite an earlier one.
    const first = encode(packets[1]![0], 4)
    encode(packets[3]![0], 5)
    expect(first).toEqual(generate(packets[1]![0], { protocolVersion: 4 }))
  })

  test('throws on a packet mqtt-packet refuses, then encodes the next one correctly', () => {
    expect(() => encode({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, dup: false } as never, 4)).toThrow('Invalid messageId')
    expect(() => encode({ cmd: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, properties: { topicAlias: 'x' } } as never, 5)).toThrow('Invalid topicAlias')
    expect(encode(packets[1]![0], 4)).toEqual(generate(packets[1]![0], { protocolVersion: 4 }))
  })
})

// The parser reads its input in place (ContiguousBytes) instead of from a bl BufferList: it must decode and
// refuse exactly what stock mqtt-packet does, so both parse the same inputs and their outcomes are compared.
describe('decode in place', () => {
  type Outcome = { packets: unknown[]; errors: string[]; thrown: string | null; left: number | null }
  const outcome = (inPlace: boolean, bytes: Buffer, protocolVersion: 3 | 4 | 5): Outcome => {
    const parser = mqttPacket.parser({ protocolVersion })
    if (inPlace) readInPlace(parser)
    const result: Outcome = { packets: [], errors: [], thrown: null, left: null }
    parser.on('packet', (p) => result.packets.push({ ...p }))
    parser.on('error', (e) => result.errors.push(e.message))
    try {
      result.left = parser.parse(bytes)
    } catch (error) {
      result.thrown = `${(error as Error).name}`
    }
    return result
  }
  const same = (bytes: Buffer, protocolVersion: 3 | 4 | 5) => expect(outcome(true, bytes, protocolVersion)).toEqual(outcome(false, bytes, protocolVersion))

  const will = { topic: 'w/t', payload: Buffer.from('bye'), qos: 1 as const, retain: true }
  const corpus: [Packet, 3 | 4 | 5][] = [
    [{ cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clientId: 'c3', clean: true, keepalive: 30, username: 'u', password: Buffer.from('p'), will }, 3],
    [{ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c4', clean: false, keepalive: 0 }, 4],
    [{ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'c5', clean: true, keepalive: 60, username: 'ü', password: Buffer.from([0, 255]), will: { ...will, properties: { willDelayInterval: 5, contentType: 'x', userProperties: { k: 'v' } } }, properties: { sessionExpiryInterval: 300, receiveMaximum: 10, maximumPacketSize: 1000, topicAliasMaximum: 5, requestProblemInformation: false, userProperties: { a: ['1', '2'] }, authenticationMethod: 'm', authenticationData: Buffer.from([9]) } }, 5],
    [{ cmd: 'connack', sessionPresent: true, returnCode: 0 }, 4],
    [{ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: 'no', assignedClientIdentifier: 'x', serverKeepAlive: 10 } }, 5],
    [{ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, 4],
    [{ cmd: 'publish', topic: 'zürich/温度/🌡', payload: Buffer.alloc(300, 1), qos: 2, messageId: 65535, retain: true, dup: true }, 4],
    [{ cmd: 'publish', topic: '', payload: Buffer.alloc(0), qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 3, userProperties: { a: 'b' }, correlationData: Buffer.from([1, 2]), messageExpiryInterval: 60, subscriptionIdentifier: 268435455, payloadFormatIndicator: true, responseTopic: 'r' } }, 5],
    [{ cmd: 'puback', messageId: 7 }, 4],
    [{ cmd: 'pubrec', messageId: 8, reasonCode: 0x10, properties: { reasonString: 'none' } }, 5],
    [{ cmd: 'pubrel', messageId: 9 }, 4],
    [{ cmd: 'pubcomp', messageId: 10, reasonCode: 0x92 }, 5],
    [{ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'a/+', qos: 1 }, { topic: '#', qos: 0 }] }, 4],
    [{ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: '$share/g/t', qos: 2, nl: true, rap: true, rh: 2 }], properties: { subscriptionIdentifier: 5, userProperties: { s: 't' } } }, 5],
    [{ cmd: 'suback', messageId: 2, granted: [0, 1, 0x80] }, 4],
    [{ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['a/+', 'b'] }, 4],
    [{ cmd: 'unsuback', messageId: 4, granted: [0, 17], properties: { reasonString: 'r' } }, 5],
    [{ cmd: 'pingreq' }, 4],
    [{ cmd: 'pingresp' }, 4],
    [{ cmd: 'disconnect' }, 4],
    [{ cmd: 'disconnect', reasonCode: 0x8e, properties: { reasonString: 'taken over', sessionExpiryInterval: 0 } }, 5],
    [{ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'm', authenticationData: Buffer.from([1]) } }, 5],
  ]
  const encoded = corpus.map(([packet, v]) => [generate(packet, { protocolVersion: v }), v] as const)

  test('every packet type, alone and several in one buffer, whole and cut short at every byte', () => {
    for (const [bytes, v] of encoded) {
      same(bytes, v)
      for (let cut = 0; cut < bytes.length; cut++) same(bytes.subarray(0, cut), v)
      expect(outcome(true, bytes, v).packets.length).toBe(1) // the comparison is not vacuous
    }
    for (const v of [4, 5] as const) same(Buffer.concat(encoded.filter(([, pv]) => pv === v).map(([b]) => b)), v)
  })

  test('mutated packets: the same packets, the same errors, the same throws', () => {
    const random = seededRandom(42)
    let refused = 0
    for (let round = 0; round < 40; round++) {
      for (const [bytes, v] of encoded) {
        const mutated = Buffer.from(bytes)
        for (let k = 1 + random(3); k > 0; k--) mutated[random(mutated.length)] = random(256)
        const extra = random(4) === 0 ? Buffer.from([random(256), random(256)]) : Buffer.alloc(0)
        const input = Buffer.concat([mutated, extra])
        same(input, v)
        const o = outcome(true, input, v)
        if (o.errors.length > 0 || o.thrown) refused++
      }
    }
    expect(refused).toBeGreaterThan(50) // the mutations do reach the parser's error paths
  })
})

describe('PacketReader', () => {
  test('keeps nothing of a CONNECT handled while it is decoded (its will and password are views of the read)', () => {
    const { PacketReader } = require('../src/protocol/codec.ts') as typeof import('../src/protocol/codec.ts')
    const got: string[] = []
    let connect: WeakRef<object> | undefined
    const reader = new PacketReader(1 << 20, {
      onPacket: (p) => {
        got.push(p.cmd)
        if (p.cmd !== 'connect') return
        connect = new WeakRef(p)
        reader.connected(4, false) // as the broker does while handling CONNECT, within the same decode
      },
      onParseError: (e) => got.push(`error ${e.message}`),
    })
    const bytes = (packet: Packet) => encode(packet, 4)
    const will = { topic: 'w', payload: Buffer.alloc(1024, 1), qos: 0 as const, retain: false }
    reader.feed(Buffer.concat([bytes({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true, keepalive: 0, will, username: 'u', password: Buffer.from('p') }), bytes({ cmd: 'pingreq' })]))
    reader.feed(bytes({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
    expect(got).toEqual(['connect', 'pingreq', 'publish'])
    for (let i = 0; i < 3 && connect!.deref(); i++) Bun.gc(true)
    expect(connect!.deref()).toBeUndefined()
  })
})

describe('PacketReader (topics left in bytes)', () => {
  test("every PUBLISH's message has the topic sent, whether read at once, found in the table or left in bytes, also once kept and its read overwritten, and as listeners are handed it", () => {
    const { PacketReader } = require('../src/protocol/codec.ts') as typeof import('../src/protocol/codec.ts')
    const { messageOfPacket, own, publicMessage } = require('../src/message.ts') as typeof import('../src/message.ts')
    // xorshift32: the choices below are made in turn, and an LCG's low bits (seededRandom) fall into step with them.
    let state = 23
    const random = (n: number) => {
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      return (state >>> 0) % n
    }
    // Short and long (past the table's 32 bytes and the scan's 256), repeated and not, ASCII or not, and a wildcard.
    const pool = ['a/b', 'fleet/0/device-1/temperature', `gateway/${'x'.repeat(40)}/1`, `long/${'y'.repeat(300)}`, 'caf\u00e9/1', 'w/+/x', '$SYS/x', 'a']
    for (const version of [4, 5] as const) {
      const sent: Array<{ topic: string; forwardable: boolean }> = []
      const packets: Buffer[] = [encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'c', clean: true, keepalive: 0 }, version)]
      for (let i = 0; i < 3000; i++) {
        const topic = random(3) === 0 ? `fresh/${i}/${'z'.repeat(random(40))}` : pool[random(pool.length)]!
        const qos = random(4) === 0 ? 1 : 0
        const retain = random(5) === 0
        const properties = version === 5 && random(4) === 0 ? { userProperties: { k: 'v' } } : undefined
        packets.push(encode({ cmd: 'publish', topic, payload: Buffer.alloc(random(200), 97), qos, messageId: qos ? 1 + i : undefined, retain, dup: false, properties }, version))
        sent.push({ topic, forwardable: qos === 0 && !retain && !properties })
      }
      const all = Buffer.concat(packets)
      const kept: Array<{ message: ReturnType<typeof messageOfPacket>; read: Buffer }> = []
      const got: Array<{ topic: string; forwardable: boolean }> = []
      let read = Buffer.alloc(0)
      const reader = new PacketReader(1 << 20, {
        onPacket: (p) => {
          if (p.cmd === 'connect') return reader.connected(version, false)
          const publish = p as import('../src/protocol/codec.ts').PublishPacket
          const inBytes = publish.topicAt !== undefined
          if (inBytes) {
            expect(publish.topic).toBe('') // left in bytes: the message reads them
            // What listeners are handed copies and serialises with its topic (a spread does not copy an accessor).
            const handed = publicMessage(messageOfPacket(publish, 'c', { now: () => 0 }, 0, version))
            expect([{ ...handed }.topic, JSON.parse(JSON.stringify(handed)).topic]).toEqual([sent[got.length]!.topic, sent[got.length]!.topic])
          }
          const message = messageOfPacket(publish, 'c', { now: () => 0 }, 0, version)
          got.push({ topic: message.topic, forwardable: !!publish.forwardable })
          if (got.length % 7 === 0) kept.push({ message: own(messageOfPacket(publish, 'c', { now: () => 0 }, 0, version)), read })
        },
        onParseError: (e) => got.push({ topic: `error ${e.message}`, forwardable: false }),
        topicsInBytes: true,
      })
      for (let at = 0; at < all.length; ) {
        const piece = [1 + random(8), 1 + random(300), 1 + random(40_000)][random(3)]!
        read = Buffer.from(all.subarray(at, at + piece)) // each read a buffer of its own, as a socket gives
        reader.feed(read)
        at += piece
      }
      expect(got).toEqual(sent)
      // A message kept for later holds its own copy: overwriting every read leaves its topic as it was.
      for (const { read } of kept) read.fill(0x21)
      for (const { message } of kept) expect(sent.some((s) => s.topic === message.topic)).toBe(true)
      expect(kept.map(({ message }) => message.topic)).toEqual(kept.map((_, i) => sent[(i + 1) * 7 - 1]!.topic))
    }
  })
})

describe('ContiguousBytes', () => {
  test('answers as bl does for every call the parser makes, in range and out of it', () => {
    const random = seededRandom(7)
    const call = (target: Record<string, (...a: unknown[]) => unknown>, method: string, args: unknown[]) => {
      try {
        const result = target[method]!(...args)
        return result === target ? 'this' : result
      } catch (error) {
        return `throws ${(error as Error).name}`
      }
    }
    for (let round = 0; round < 200; round++) {
      const bytes = Buffer.from(Array.from({ length: random(12) }, () => random(256)))
      const ours = new ContiguousBytes() as unknown as Record<string, (...a: unknown[]) => unknown> & { length: number }
      const theirs = new BufferList() as unknown as Record<string, (...a: unknown[]) => unknown> & { length: number }
      for (const list of [ours, theirs]) list.append!(bytes)
      for (let step = 0; step < 20; step++) {
        const at = () => (random(5) === 0 ? undefined : random(bytes.length + 6) - 3)
        const [method, args] = [
          ['readUInt8', [random(bytes.length + 2)]],
          ['readUInt16BE', [random(bytes.length + 2)]],
          ['readUInt32BE', [random(bytes.length + 2)]],
          ['slice', [at(), at()]],
          ['toString', ['utf8', at(), at()]],
          ['consume', [random(4)]],
        ][random(6)] as [string, unknown[]]
        expect(call(ours, method, args)).toEqual(call(theirs, method, args))
        expect(ours.length).toBe(theirs.length)
      }
    }
  })
})

describe('utf8 (short strings interned)', () => {
  test('gives what Buffer.toString gives, for any bytes, through slot collisions and replacements', () => {
    const random = seededRandom(11)
    const pool = Array.from({ length: 300 }, (_, i) => {
      const kind = i % 3
      if (kind === 0) return Buffer.from(`sensors/device-${i}/temperature`.slice(0, 1 + random(34)))
      if (kind === 1) return Buffer.from(Array.from({ length: random(40) }, () => random(256))) // malformed UTF-8 too
      return Buffer.from(`zürich/温度/${i}`)
    })
    for (let k = 0; k < 20_000; k++) {
      const bytes = pool[random(pool.length)]!
      const padded = Buffer.concat([Buffer.from([random(256)]), bytes, Buffer.from([random(256)])])
      expect(utf8(padded, 1, 1 + bytes.length)).toBe(padded.toString('utf8', 1, 1 + bytes.length))
    }
    // 6,000 ASCII strings of one length in 4,096 places: some must share a set and replace each other.
    const sameLength = Array.from({ length: 6000 }, (_, i) => Buffer.from(`t/${String(i).padStart(5, '0')}`))
    for (let k = 0; k < 60_000; k++) {
      const bytes = sameLength[random(k < 30_000 ? 6000 : 300)]!
      expect(utf8(bytes, 0, bytes.length)).toBe(bytes.toString())
    }
  })

  test('calls a string clean of U+0000 only when it is: a zero byte at any position, in the words hashed or the bytes after', () => {
    let cleanSaid = 0
    for (let length = 1; length <= 32; length++) {
      for (let at = -1; at < length; at++) {
        const bytes = Buffer.alloc(length + 2, 0x61) // 'a'
        if (at >= 0) bytes[1 + at] = 0
        for (let twice = 0; twice < 2; twice++) {
          // (twice: the second read is a hit in the table)
          expect(utf8(bytes, 1, 1 + length)).toBe(bytes.toString('utf8', 1, 1 + length))
          if (at >= 0) expect(lastUtf8Scan() & CLEAN).toBe(0) // then bytes.ts checks the string itself
          else if (lastUtf8Scan() & CLEAN) cleanSaid++
        }
      }
    }
    expect(cleanSaid).toBeGreaterThan(0) // the fast path is taken for clean strings
  })

  test('calls a string free of wildcards only when it is: a + or # at any position, scanned or found in the table', () => {
    let saidFree = 0
    for (const length of [1, 2, 3, 4, 5, 7, 8, 9, 30, 31, 32, 33, 64, 255, 256, 257]) {
      for (let at = -1; at < length; at++) {
        for (const mark of [0x2b, 0x23]) {
          const bytes = Buffer.alloc(length + 2, 0x61) // 'a'
          // Neighbours of the marks (0x2a, 0x22, 0x2c, 0x24, 0x03, 0x0b) elsewhere: none may pass for one.
          for (let k = 0; k < length; k++) if (k % 5 === 1) bytes[1 + k] = [0x2a, 0x22, 0x2c, 0x24, 0x2f][k % 4]!
          if (at >= 0) bytes[1 + at] = mark
          for (let twice = 0; twice < 2; twice++) {
            expect(utf8(bytes, 1, 1 + length)).toBe(bytes.toString('utf8', 1, 1 + length))
            const scan = lastUtf8Scan()
            if (at >= 0) expect(scan & NO_WILDCARDS).toBe(0)
            else if (length <= 256) expect(scan).toBe(CLEAN | NO_WILDCARDS) // clean ASCII, scanned or a hit
            else expect(scan).toBe(0) // too long to scan: nothing is claimed
            if (scan & NO_WILDCARDS) saidFree++
          }
        }
      }
    }
    expect(saidFree).toBeGreaterThan(0)
    // Not ASCII: nothing is claimed, whatever the bytes.
    expect(utf8(Buffer.from('zürich/a'), 0, 9)).toBe('zürich/a')
    expect(lastUtf8Scan()).toBe(0)
    // So many strings that do not repeat set the table aside; repeats bring it back, as the tests after this expect.
    const repeated = Buffer.from('a/b')
    for (let k = 0; k < 100_000; k++) utf8(repeated, 0, 3)
    expect(internStats().standingAside).toBe(false)
  })

  test('a repeat is a hit; equal-length neighbours do not mix; long and non-ASCII strings are decoded each time', () => {
    const before = internStats()
    const a = Buffer.from('xxbench/1xx')
    expect(utf8(a, 2, 9)).toBe('bench/1')
    for (let k = 0; k < 10; k++) expect(utf8(Buffer.from('bench/1'), 0, 7)).toBe('bench/1')
    expect(utf8(Buffer.from('bench/2'), 0, 7)).toBe('bench/2')
    expect(utf8(a, 2, 9)).toBe('bench/1')
    expect(utf8(a, 5, 5)).toBe('')
    expect(utf8(Buffer.from('a/'.repeat(100)), 0, 200)).toBe('a/'.repeat(100))
    expect(utf8(Buffer.from('zürich'), 0, 7)).toBe('zürich')
    const after = internStats()
    expect(after.hits - before.hits).toBeGreaterThanOrEqual(10)
    expect(after.misses - before.misses).toBeLessThanOrEqual(3) // bench/1 (if not there already), bench/2, and a slot lost to bench/2
  })

  test('600 topics in turn (150 devices on each of 4 gateways) are nearly all found again: two places per set', () => {
    const topics = Array.from({ length: 600 }, (_, i) => Buffer.from(`fleet/${i % 4}/device-${i}/temperature`))
    // The first round, all new, sets the table aside; it comes back once a sample of its lookups (1 call in 32) hits.
    for (let round = 0; round < 60; round++) for (const t of topics) utf8(t, 0, t.length)
    expect(internStats().standingAside).toBe(false)
    const before = internStats()
    for (let round = 0; round < 20; round++) for (const t of topics) expect(utf8(t, 0, t.length)).toBe(t.toString())
    const after = internStats()
    const hits = after.hits - before.hits
    const misses = after.misses - before.misses
    expect(hits).toBeGreaterThan(0)
    // With one place per set, about one in four of them would lose it to a neighbour and miss every time.
    expect(misses / (hits + misses)).toBeLessThan(0.05)
  })

  test('stands aside while strings do not repeat, and comes back when they do', () => {
    const random = seededRandom(5)
    for (let k = 0; k < 20_000; k++) {
      const topic = `sensors/device-${k}/t${random(1000)}`
      expect(utf8(Buffer.from(topic), 0, topic.length)).toBe(topic)
    }
    expect(internStats().standingAside).toBe(true)
    const misses = internStats().misses
    for (let k = 20_000; k < 30_000; k++) utf8(Buffer.from(`sensors/device-${k}`), 0, `sensors/device-${k}`.length)
    expect(internStats().misses - misses).toBeLessThan(10_000 / 16) // one string in 32 looked up
    const repeated = ['a/b', 'source', 'unit', 'pub-1'].map((t) => Buffer.from(t))
    for (let k = 0; k < 100_000; k++) {
      const bytes = repeated[k % 4]!
      expect(utf8(bytes, 0, bytes.length)).toBe(bytes.toString())
    }
    expect(internStats().standingAside).toBe(false)
  })
})
