/**
 * The codec loads mqtt-packet with a silent `debug` logger (its disabled calls cost ~30 arrays per message),
 * unless DEBUG asks for logs. Run in fresh processes: in this one MQTT.js may have loaded mqtt-packet already.
 */
import { describe, expect, test } from 'bun:test'
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
