/**
 * The codec loads mqtt-packet with a silent `debug` logger (its disabled calls cost ~30 arrays per message),
 * unless DEBUG asks for logs. Run in fresh processes: in this one MQTT.js may have loaded mqtt-packet already.
 */
import { describe, expect, test } from 'bun:test'
import { generate, type Packet } from 'mqtt-packet'
import { encode } from '../src/protocol/codec.ts'
import { repoRoot } from './helpers/process.ts'

async function run(script: string, env: Record<string, string | undefined> = {}) {
  const proc = Bun.spawn([process.execPath, '-e', script], { cwd: repoRoot, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, DEBUG: undefined, ...env } })
  const [stdout, stderr] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()])
  expect(await proc.exited).toBe(0)
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
