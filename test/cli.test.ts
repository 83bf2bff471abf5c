import { afterAll, describe, expect, test } from 'bun:test'
import mqtt from 'mqtt'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../bench/client.ts'
import { until } from './helpers/broker.ts'
import { spawnLines } from './helpers/process.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-cli-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Runs `bun src/main.ts` and parses its JSON log lines. */
function start(args: string[], env: Record<string, string> = {}) {
  const { proc, lines, stderr } = spawnLines(['src/main.ts', ...args], env)
  return { proc, stderr, get lines() { return lines.map((l) => JSON.parse(l) as Record<string, unknown>) } }
}

describe('bun src/main.ts (npm start)', () => {
  test('starts from mqtt.config.ts, logs its listener, and SIGTERM shuts down gracefully: MQTT 5 clients get DISCONNECT 0x8B, exit 0', async () => {
    const broker = start([], { PORT: '0', HTTP_PORT: '0' })
    await until(() => broker.lines.filter((l) => l.event === 'listener.listening').length === 2, 10000, 'listening')
    const listening = broker.lines.find((l) => l.event === 'listener.listening' && l.type === 'tcp')!
    expect(listening.host).toBe('127.0.0.1')
    const http = broker.lines.find((l) => l.event === 'listener.listening' && l.type === 'http')!
    expect(await (await fetch(`http://127.0.0.1:${http.port}/readyz`)).json()).toEqual({ status: 'ready' })
    // The default config demonstrates the plugins: auth (anonymous allowed on 127.0.0.1, demo users) and sqlite.
    expect(broker.lines.find((l) => l.event === 'broker.starting')?.plugins).toEqual(['auth', 'sqlite'])
    const demo = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, { username: 'alice', password: 'midge', reconnectPeriod: 0 })
    await new Promise((resolve) => demo.once('connect', resolve))
    demo.end(true)
    const wrong = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, { username: 'alice', password: 'wrong', reconnectPeriod: 0 })
    wrong.on('error', () => {})
    await new Promise<void>((resolve) => wrong.once('close', () => resolve()))
    expect(wrong.connected).toBe(false)
    const client = mqtt.connect(`mqtt://127.0.0.1:${listening.port}`, { protocolVersion: 5, reconnectPeriod: 0 })
    await new Promise((resolve) => client.once('connect', resolve))
    const reason = new Promise<number | undefined>((resolve) => client.once('disconnect', (p) => resolve(p.reasonCode)))
    broker.proc.kill('SIGTERM')
    expect(await reason).toBe(0x8b)
    expect(await broker.proc.exited).toBe(0)
    expect(broker.lines.map((l) => l.event)).toContain('broker.stopped')
    client.end(true)
  })

  test('a bad config stops start-up with one line naming the field, the problem and the value', async () => {
    const file = join(dir, 'bad.config.ts')
    writeFileSync(file, `export default { listeners: [{ type: 'tcp', port: 'abc' }], limits: { maxInflight: 0, nope: 1 } }\n`)
    const broker = start(['--config', file])
    expect(await broker.proc.exited).toBe(1)
    const err = await broker.stderr
    expect(err).toContain('listeners[0].port: expected a whole number from 0 to 65535, got "abc"')
    expect(err).toContain('limits.maxInflight: expected a whole number from 1 to 65535, got 0')
    expect(err).toContain('limits.nope: unknown field')
  })

  test('MQTT_CONFIG chooses the file and --port overrides its first TCP listener (and is validated)', async () => {
    const file = join(dir, 'ok.config.ts')
    writeFileSync(file, `export default { listeners: [{ type: 'tcp', port: 1 }], log: { level: 'warn' } }\n`)
    const bad = start(['--port', 'abc'], { MQTT_CONFIG: file })
    expect(await bad.proc.exited).toBe(1)
    expect(await bad.stderr).toContain('listeners[0].port: expected a whole number from 0 to 65535, got "abc"')
    // log level warn from that file: no info lines, so check by connecting on the override port.
    const port = freePort()
    const ok = start(['--port', String(port)], { MQTT_CONFIG: file })
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 200, connectTimeout: 2000 })
    await new Promise((resolve) => client.once('connect', resolve))
    client.end(true)
    expect(ok.lines.filter((l) => l.level === 'info')).toEqual([])
    ok.proc.kill('SIGINT')
    expect(await ok.proc.exited).toBe(0)
  })

  test('a missing config file is reported by name', async () => {
    const broker = start(['--config', join(dir, 'missing.ts')])
    expect(await broker.proc.exited).toBe(1)
    expect(await broker.stderr).toContain('missing.ts')
  })
})

describe.skipIf(!(Bun.which('nats-server') || Bun.which('/usr/sbin/nats-server')))('bun src/main.ts --nodes (every core)', () => {
  test('--nodes 2 runs two nodes of one config as one cluster on a local NATS, sharing the MQTT port on Linux; SIGTERM stops them all', async () => {
    const port = freePort()
    const config = join(dir, 'nodes.config.ts')
    writeFileSync(config, `export default { listeners: [{ type: 'tcp', host: '127.0.0.1', port: ${port} }], sys: { intervalSeconds: 1 } }\n`)
    const supervisor = start(['--config', config, '--nodes', '2'], { MIDGE_NATS_STORE: join(dir, 'nats') })
    await until(() => supervisor.lines.filter((l) => l.event === 'cluster.joined').length === 2, 15_000, 'two nodes joined')
    await until(() => supervisor.lines.filter((l) => l.event === 'listener.listening').length === 2, 15_000, 'both listening')
    // Which node a connection landed on: its retained $SYS/broker/node. Open connections until both nodes have one.
    const byNode = new Map<string, mqtt.MqttClient>()
    const opened: mqtt.MqttClient[] = []
    for (let i = 0; i < 64 && byNode.size < 2; i++) {
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
      opened.push(c)
      const node = await new Promise<string>((resolve) => {
        c.on('message', (_t, payload) => resolve(payload.toString()))
        c.once('connect', () => c.subscribe('$SYS/broker/node'))
      })
      if (!byNode.has(node)) byNode.set(node, c)
    }
    if (process.platform === 'linux') expect([...byNode.keys()].sort()).toEqual(['node-1', 'node-2']) // the kernel spread them
    if (byNode.size === 2) {
      const [sub, pub] = [...byNode.values()]
      await sub!.subscribeAsync('across/nodes', { qos: 1 })
      const got = new Promise<string>((resolve) => sub!.on('message', (topic, payload) => topic === 'across/nodes' && resolve(payload.toString())))
      await pub!.publishAsync('across/nodes', 'from the other core', { qos: 1 })
      expect(await got).toBe('from the other core')
    }
    for (const c of opened) c.end(true)
    supervisor.proc.kill('SIGTERM')
    expect(await supervisor.proc.exited).toBe(0)
    expect(supervisor.lines.some((l) => l.event === 'nodes.stopped')).toBe(true)
  }, 30_000)

  test('a node that cannot start (its port held by another program) stops them all, exit 1, rather than restarting for ever; a config with a store plugin is refused up front', async () => {
    const held = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
    const config = join(dir, 'held.config.ts')
    writeFileSync(config, `export default { listeners: [{ type: 'tcp', host: '127.0.0.1', port: ${held.port} }] }\n`)
    const supervisor = start(['--config', config, '--nodes', '2'], { MIDGE_NATS_STORE: join(dir, 'nats-held') })
    expect(await supervisor.proc.exited).toBe(1)
    expect(supervisor.lines.some((l) => l.event === 'nodes.node_failed')).toBe(true)
    held.stop(true)
    const withSqlite = start(['--nodes', '2'], { MIDGE_NATS_STORE: join(dir, 'nats-sqlite') }) // the default mqtt.config.ts has sqlite
    expect(await withSqlite.proc.exited).toBe(1)
    expect(await withSqlite.stderr).toContain('leave sqlite out of the config used with --nodes')
  }, 30_000)
})
