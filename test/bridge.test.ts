/**
 * The MQTT bridge plugin against real brokers: an edge Midge bridged to a "cloud" Midge (MQTT 5 and 3.1.1), and
 * Mosquitto bridged both ways. Clients are MQTT.js; nothing waits on a sleep.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bridge, type BridgeOptions, type BridgePlugin } from '../plugins/bridge.ts'
import type { Plugin } from '../src/index.ts'
import { freePort, waitForPort } from '../bench/client.ts'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { makeCerts } from './helpers/certs.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'

const mosquitto = Bun.which('mosquitto') ?? (Bun.which('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : null)
if (!mosquitto && process.env.CI) throw new Error('mosquitto is required in CI (apt-get install mosquitto)')

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'midge-bridge-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A broker closed after the test. */
async function broker(config: Parameters<typeof startBroker>[0] = {}): Promise<TestBroker> {
  const b = await startBroker(config)
  cleanups.push(() => b.close())
  return b
}

async function client(port: number, options: Parameters<typeof connect>[1] = {}): Promise<TestClient> {
  const c = await connect(port, options)
  cleanups.push(() => c.end(true))
  return c
}

/** A "cloud" broker on a fixed port (so it can come back on it), whose door stays shut to the bridge until opened. */
async function cloud(port: number, gate = { open: true }): Promise<TestBroker> {
  const door: Plugin = { name: 'door', authenticate: (request) => (request.clientId === 'edge-bridge' && !gate.open ? { decision: 'deny', reasonString: 'not yet' } : 'abstain') }
  return broker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port }], plugins: [door] })
}

function edgeBridge(port: number, dir: string, overrides: Partial<BridgeOptions> = {}): BridgePlugin {
  return bridge({
    name: 'cloud',
    remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'edge-bridge', protocolVersion: 5 },
    topics: [
      { pattern: 'sensors/#', direction: 'out', qos: 1, remotePrefix: 'site-42/' },
      { pattern: 'commands/#', direction: 'in', qos: 1, remotePrefix: 'site-42/' },
      { pattern: 'shared/#', direction: 'both', qos: 1 },
    ],
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
    queue: { file: join(dir, 'bridge.db') },
    ...overrides,
  })
}

describe('bridge: edge Midge to cloud Midge', () => {
  for (const protocolVersion of [5, 4] as const) {
    test(`MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}: out and in under prefixes, QoS and retain as published, and nothing loops on a two-way rule`, async () => {
      const dir = tempDir()
      const port = freePort()
      const remote = await cloud(port)
      const plugin = edgeBridge(port, dir, { remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'edge-bridge', protocolVersion } })
      const edge = await broker({ plugins: [plugin], http: { host: '127.0.0.1', port: 0, anonymousScopes: ['read'], publicMetrics: true } })
      await until(() => plugin.status().connected === 1, 5000, 'the bridge connects')

      const cloudSub = await client(remote.port)
      await subscribe(cloudSub.client, ['site-42/#', 'shared/#'], { qos: 1 })
      const edgeSub = await client(edge.port)
      await subscribe(edgeSub.client, ['commands/#', 'shared/#', '$SYS/broker/connection/cloud/state'], { qos: 1 })
      const state = await edgeSub.next()
      expect([state.topic, state.payload, state.packet.retain]).toEqual(['$SYS/broker/connection/cloud/state', '1', true])

      // Out: under the remote prefix, at QoS 1.
      const edgePub = await client(edge.port)
      await edgePub.client.publishAsync('sensors/t1', '21.5', { qos: 1 })
      const out = await cloudSub.next()
      expect([out.topic, out.payload, out.packet.qos]).toEqual(['site-42/sensors/t1', '21.5', 1])

      // A retained message stays retained on the remote (a later subscriber there gets it with the flag).
      await edgePub.client.publishAsync('sensors/kept', 'last', { qos: 1, retain: true })
      expect((await cloudSub.next()).topic).toBe('site-42/sensors/kept')
      const late = await client(remote.port)
      await subscribe(late.client, 'site-42/sensors/kept')
      const kept = await late.next()
      expect([kept.payload, kept.packet.retain]).toEqual(['last', true])

      // In: the remote prefix comes off.
      const cloudPub = await client(remote.port)
      await cloudPub.client.publishAsync('site-42/commands/reboot', 'now', { qos: 1 })
      const cmd = await edgeSub.next()
      expect([cmd.topic, cmd.payload, cmd.packet.qos]).toEqual(['commands/reboot', 'now', 1])
      // Not under the prefix: not taken.
      await cloudPub.client.publishAsync('commands/reboot', 'elsewhere', { qos: 1 })

      // Both ways: each side's message reaches the other once, and neither comes back.
      await edgePub.client.publishAsync('shared/from-edge', 'e', { qos: 1 })
      await cloudPub.client.publishAsync('shared/from-cloud', 'c', { qos: 1 })
      await until(() => cloudSub.messages.some((m) => m.topic === 'shared/from-edge') && edgeSub.messages.some((m) => m.topic === 'shared/from-cloud'), 5000, 'both ways')
      // Proof of silence: a round trip through each broker and over the bridge in both directions.
      await edgePub.client.publishAsync('shared/marker-out', 'm', { qos: 1 })
      await cloudPub.client.publishAsync('shared/marker-in', 'm', { qos: 1 })
      await until(() => cloudSub.messages.some((m) => m.topic === 'shared/marker-out') && edgeSub.messages.some((m) => m.topic === 'shared/marker-in'), 5000, 'markers')
      await cloudSub.quiet(cloudPub)
      await edgeSub.quiet(edgePub)
      const count = (c: TestClient, topic: string) => c.messages.filter((m) => m.topic === topic).length
      expect([count(cloudSub, 'shared/from-edge'), count(cloudSub, 'shared/from-cloud'), count(edgeSub, 'shared/from-edge'), count(edgeSub, 'shared/from-cloud')]).toEqual([1, 1, 1, 1])
      expect(edgeSub.messages.filter((m) => m.payload === 'elsewhere')).toEqual([])

      // The same figures in the HTTP API and /metrics.
      const api = `http://127.0.0.1:${edge.addresses.find((a) => a.type === 'http')!.port}`
      const { plugins } = (await (await fetch(`${api}/api/v1/plugins`)).json()) as { plugins: Array<{ name: string; metrics: Record<string, number> }> }
      const status = plugins.find((p) => p.name === 'bridge:cloud')!.metrics
      expect(status).toMatchObject({ connected: 1, queued: 0, dropped: 0, forwardedOut: 4, forwardedIn: 3 }) // out: t1, kept, from-edge, marker-out; in: reboot, from-cloud, marker-in (not the echoes)
      expect(await (await fetch(`${api}/metrics`)).text()).toContain('midge_plugin_bridge_cloud_connected 1')
    })
  }

  test('nothing is lost while the remote is away, not even across a restart of the edge: QoS 1 waits in the outbox and goes out in order', async () => {
    const dir = tempDir()
    const port = freePort()
    const gate = { open: false }
    const remote = await cloud(port, gate)
    const first = edgeBridge(port, dir)
    const edge = await broker({ plugins: [first] })
    await until(() => edge.logs.some((l) => l.event === 'bridge.retrying'), 5000, 'the bridge is refused')

    const pub = await client(edge.port)
    for (let i = 0; i < 50; i++) await pub.client.publishAsync(`sensors/${i % 5}`, String(i), { qos: 1 }) // acknowledged: in the outbox
    expect(first.status()).toMatchObject({ connected: 0, queued: 50 })
    await pub.end()
    await edge.close()

    // The edge restarts with the same outbox; the remote opens; the queue drains to a subscriber there.
    const second = edgeBridge(port, dir)
    const again = await broker({ plugins: [second] })
    expect(second.status().queued).toBe(50)
    const cloudSub = await client(remote.port)
    await subscribe(cloudSub.client, 'site-42/sensors/#', { qos: 1 })
    gate.open = true
    await until(() => cloudSub.messages.length >= 50, 10_000, 'the queue drains')
    expect(cloudSub.messages.map((m) => m.payload)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)))
    await until(() => second.status().queued === 0, 5000, 'the outbox empties')
    expect(again.logs.filter((l) => l.event === 'bridge.connected')).toHaveLength(1)
  })

  test('the remote going away is seen once: state 0 then 1 again, subscriptions made again on the new connection', async () => {
    const dir = tempDir()
    const port = freePort()
    let remote = await cloud(port)
    const plugin = edgeBridge(port, dir, { remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'edge-bridge', protocolVersion: 5, cleanSession: true } })
    const edge = await broker({ plugins: [plugin] })
    await until(() => plugin.status().connected === 1, 5000, 'connected')
    await remote.close()
    await until(() => plugin.status().connected === 0, 5000, 'disconnected')
    remote = await cloud(port)
    await until(() => plugin.status().connected === 1, 5000, 'connected again')
    const edgeSub = await client(edge.port)
    await subscribe(edgeSub.client, 'commands/#', { qos: 1 })
    const cloudPub = await client(remote.port)
    await cloudPub.client.publishAsync('site-42/commands/after', 'x', { qos: 1 })
    expect((await edgeSub.next()).topic).toBe('commands/after') // the clean session's subscription was made again
    expect(edge.logs.filter((l) => l.event === 'bridge.disconnected')).toHaveLength(1)
  })

  test('several addresses: an unreachable first one fails over to the next', async () => {
    const dir = tempDir()
    const port = freePort()
    await cloud(port)
    const plugin = edgeBridge(port, dir, { remote: { url: [`mqtt://127.0.0.1:${freePort()}`, `mqtt://127.0.0.1:${port}`], clientId: 'edge-bridge' } })
    const edge = await broker({ plugins: [plugin] })
    await until(() => plugin.status().connected === 1, 5000, 'connected through the second address')
    expect(edge.logs.find((l) => l.event === 'bridge.connected')?.url).toBe(`mqtt://127.0.0.1:${port}`)
  })

  test('failover: `order` goes back to the first address after losing it, `rotate` moves on to the next', async () => {
    for (const failover of ['order', 'rotate'] as const) {
      const [first, second] = [freePort(), freePort()]
      const one = await cloud(first)
      await cloud(second)
      const plugin = edgeBridge(first, tempDir(), { remote: { url: [`mqtt://127.0.0.1:${first}`, `mqtt://127.0.0.1:${second}`], clientId: 'edge-bridge', failover } })
      const edge = await broker({ plugins: [plugin] })
      const connections = () => edge.logs.filter((l) => l.event === 'bridge.connected').map((l) => l.url)
      await until(() => connections().length === 1, 5000, 'connected')
      // The first remote drops the bridge but stays up: only the policy decides where the bridge goes next.
      ;(one.midge.broker.sessions.get('edge-bridge')?.client as { disconnect(reason: number, why: string): void }).disconnect(0x8b, 'shutting down')
      await until(() => connections().length === 2, 5000, 'connected again')
      expect(connections()).toEqual([`mqtt://127.0.0.1:${first}`, `mqtt://127.0.0.1:${failover === 'order' ? first : second}`])
    }
  })

  test('TLS: the remote is verified against the CA, and the bridge can present a client certificate; an unverifiable remote is refused', async () => {
    const certs = makeCerts()
    cleanups.push(() => rmSync(certs.dir, { recursive: true, force: true }))
    const remote = await broker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0, tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca, requestCert: true, certificateAsUsername: true } }] })
    const tlsPort = remote.addresses.find((a) => a.tls)!.port
    const dir = tempDir()
    const trusted = edgeBridge(tlsPort, dir, { remote: { url: `mqtts://127.0.0.1:${tlsPort}`, clientId: 'edge-bridge', ca: certs.ca, cert: certs.clientCert, key: certs.clientKey } })
    await broker({ plugins: [trusted] })
    await until(() => trusted.status().connected === 1, 5000, 'connected over TLS')
    const session = [...remote.midge.broker.sessions.values()].find((s) => s.clientId === 'edge-bridge')
    expect((session?.client as { username?: string } | null)?.username).toBe('alice') // the client certificate's CN

    const untrusting = edgeBridge(tlsPort, tempDir(), { name: 'untrusting', remote: { url: `mqtts://127.0.0.1:${tlsPort}`, clientId: 'edge-2' } })
    const edge = await broker({ plugins: [untrusting] })
    await until(() => edge.logs.some((l) => l.event === 'bridge.retrying'), 5000, 'refused')
    expect(untrusting.status().connected).toBe(0)
    expect(String(edge.logs.find((l) => l.event === 'bridge.retrying')?.error)).toMatch(/certificate/i) // the log says why
  })

  test('a full outbox drops new QoS 1 messages for the remote, counts them, and says so once', async () => {
    const port = freePort()
    await cloud(port, { open: false })
    const plugin = edgeBridge(port, tempDir(), { queue: { file: join(tempDir(), 'q.db'), maxMessages: 5 } })
    const edge = await broker({ plugins: [plugin] })
    const pub = await client(edge.port)
    for (let i = 0; i < 8; i++) await pub.client.publishAsync('sensors/x', String(i), { qos: 1 })
    expect(plugin.status()).toMatchObject({ queued: 5, dropped: 3 })
    expect(edge.logs.filter((l) => l.event === 'bridge.queue_full')).toHaveLength(1)
  })

  test('a 3.1.1 remote that refuses the bridge flag (CONNACK 1) is connected to as a plain 3.1.1 client', async () => {
    const levels: number[] = []
    const server = Bun.listen({
      hostname: '127.0.0.1',
      port: 0,
      socket: {
        data(socket, bytes) {
          if (bytes[0] !== 0x10) return
          const level = bytes[8]! // type, remaining length (one byte: a short CONNECT), 0x00 0x04 "MQTT", then the level
          levels.push(level)
          socket.write(new Uint8Array([0x20, 2, 0, level === 0x84 ? 1 : 0]))
        },
      },
    })
    cleanups.push(() => server.stop(true))
    const plugin = bridge({ name: 'strict', remote: { url: `mqtt://127.0.0.1:${server.port}` }, topics: [{ pattern: 'a/#' }], reconnect: { initialDelayMs: 10, maxDelayMs: 50 }, queue: { file: join(tempDir(), 'q.db') } })
    const edge = await broker({ plugins: [plugin] })
    await until(() => plugin.status().connected === 1, 5000, 'connected without the flag')
    expect(levels.slice(0, 2)).toEqual([0x84, 4])
    expect(edge.logs.filter((l) => l.event === 'bridge.private_refused')).toHaveLength(1)
  })

  test('a message from the remote that this broker refuses (over its topic limits) is dropped, counted and logged; the next one flows', async () => {
    const port = freePort()
    const remote = await cloud(port)
    const plugin = edgeBridge(port, tempDir())
    const edge = await broker({ plugins: [plugin], limits: { maxTopicLevels: 3 } })
    await until(() => plugin.status().connected === 1, 5000, 'connected')
    const edgeSub = await client(edge.port)
    await subscribe(edgeSub.client, 'commands/#', { qos: 1 })
    const cloudPub = await client(remote.port)
    await cloudPub.client.publishAsync('site-42/commands/a/b/c', 'too deep here', { qos: 1 })
    await cloudPub.client.publishAsync('site-42/commands/ok', 'fine', { qos: 1 })
    expect((await edgeSub.next()).payload).toBe('fine')
    expect(plugin.status().dropped).toBe(1)
    expect(edge.logs.find((l) => l.event === 'bridge.message_refused')?.topic).toBe('commands/a/b/c')
    // The state topic (5 levels) is over this broker's limit too: said once, the bridge works all the same.
    expect(edge.logs.filter((l) => l.event === 'bridge.state_not_published')).toHaveLength(1)
  })

  test('bad options stop start-up with a message naming the field', () => {
    expect(() => bridge({ name: 'x', remote: { url: 'http://nope' }, topics: [{ pattern: 'a/#' }] })).toThrow(/remote\.url: expected an mqtt:\/\//)
    expect(() => bridge({ name: 'x', remote: { url: 'mqtt://h' }, topics: [{ pattern: 'a/#/b' }] })).toThrow(/topics\[0\]\.pattern: "a\/#\/b": "#" must be the last level/)
    expect(() => bridge({ name: 'x', remote: { url: 'mqtt://h' }, topics: [{ pattern: 'a', remotePrefix: 'site/+/' }] })).toThrow(/topics\[0\]\.remotePrefix: .*cannot hold wildcards/)
    expect(() => bridge({ name: 'x', remote: { url: 'mqtt://h' }, topics: [{ pattern: '', localPrefix: 'a' }] })).toThrow(/topics\[0\]\.pattern: an empty pattern needs both prefixes/)
  })
})

describe.skipIf(!mosquitto)('bridge: Mosquitto', () => {
  /** Debian's mosquitto on a free port (or `port`), with `conf` added; `stop()` ends it (SIGTERM: it saves what it persists). */
  async function runMosquitto(conf: string, port = freePort(), dir = tempDir()): Promise<{ port: number; stop(): Promise<void> }> {
    const file = join(dir, 'mosquitto.conf')
    // Run as root (as CI does), mosquitto would drop to its own user, which cannot read a temporary directory: it stays root.
    writeFileSync(file, `${conf.includes('listener ') ? '' : `listener ${port} 127.0.0.1\n`}${process.getuid?.() === 0 ? 'user root\n' : ''}allow_anonymous true\n${conf.includes('persistence') ? '' : 'persistence false\n'}${conf}\n`)
    const proc = Bun.spawn([mosquitto!, '-c', file], { stdout: 'ignore', stderr: 'ignore' })
    const stop = async () => {
      proc.kill()
      await proc.exited
    }
    cleanups.push(stop)
    if (!(await waitForPort(port, () => proc.exitCode !== null))) throw new Error(`mosquitto did not start (exit ${proc.exitCode})`)
    return { port, stop }
  }
  const startMosquitto = async (conf: string) => (await runMosquitto(conf)).port

  test('Mosquitto as the remote: both directions under prefixes, QoS 1, retain as published', async () => {
    const port = await startMosquitto('')
    const plugin = bridge({
      name: 'mq',
      remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'site-42', protocolVersion: 5 },
      topics: [
        { pattern: 'sensors/#', direction: 'out', qos: 1, remotePrefix: 'site-42/' },
        { pattern: '#', direction: 'in', qos: 1, localPrefix: 'cloud/', remotePrefix: 'site-42/commands/' },
      ],
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      queue: { file: join(tempDir(), 'q.db') },
    })
    const midge = await broker({ plugins: [plugin] })
    await until(() => plugin.status().connected === 1, 5000, 'connected')
    const onMosquitto = await client(port)
    await subscribe(onMosquitto.client, 'site-42/sensors/#', { qos: 1 })
    const onMidge = await client(midge.port)
    await subscribe(onMidge.client, 'cloud/#', { qos: 1 })
    const midgePub = await client(midge.port)
    await midgePub.client.publishAsync('sensors/t', '20', { qos: 1, retain: true })
    const out = await onMosquitto.next()
    expect([out.topic, out.payload, out.packet.qos]).toEqual(['site-42/sensors/t', '20', 1])
    const later = await client(port)
    await subscribe(later.client, 'site-42/sensors/t')
    expect((await later.next()).packet.retain).toBe(true) // retained on Mosquitto as published
    const mosquittoPub = await client(port)
    await mosquittoPub.client.publishAsync('site-42/commands/valve/open', '1', { qos: 1 })
    const cmd = await onMidge.next()
    expect([cmd.topic, cmd.payload, cmd.packet.qos]).toEqual(['cloud/valve/open', '1', 1])
  })

  test('Mosquitto as the remote: QoS 1 across a restart of Mosquitto and, with messages queued, of Midge: 0 lost, in order', async () => {
    const dir = tempDir()
    const port = freePort()
    const conf = `persistence true\npersistence_location ${dir}/\nautosave_interval 1`
    let remote = await runMosquitto(conf, port, dir)
    // A persistent subscriber on Mosquitto: Mosquitto keeps what comes for it while it is away.
    const sub = await connect(port, { clientId: 'cloud-reader', clean: false })
    await subscribe(sub.client, 'site-42/#', { qos: 1 })
    await sub.end()
    const queue = join(tempDir(), 'q.db')
    const options = { name: 'mq', remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'site-42' }, topics: [{ pattern: 'sensors/#', direction: 'out' as const, qos: 1 as const, remotePrefix: 'site-42/' }], reconnect: { initialDelayMs: 20, maxDelayMs: 100 }, queue: { file: queue } }
    const first = bridge(options)
    const edge = await broker({ plugins: [first] })
    await until(() => first.status().connected === 1, 5000, 'connected')
    const pub = await client(edge.port)
    for (let i = 0; i < 10; i++) await pub.client.publishAsync('sensors/x', String(i), { qos: 1 })
    await until(() => first.status().forwardedOut === 10, 5000, 'the first ten go out')
    await remote.stop() // Mosquitto goes away (and saves its sessions)
    await until(() => first.status().connected === 0, 5000, 'the bridge sees it')
    for (let i = 10; i < 40; i++) await pub.client.publishAsync('sensors/x', String(i), { qos: 1 })
    expect(first.status().queued).toBe(30)
    await pub.end()
    await edge.close() // Midge restarts with 30 queued
    const second = bridge(options)
    await broker({ plugins: [second] })
    remote = await runMosquitto(conf, port, dir)
    await until(() => second.status().queued === 0, 10_000, 'the queue drains')
    const back = await client(port, { clientId: 'cloud-reader', clean: false })
    await until(() => back.messages.length >= 40, 10_000, 'all 40')
    expect(back.messages.map((m) => m.payload)).toEqual(Array.from({ length: 40 }, (_, i) => String(i)))
  })

  test('TLS to a Mosquitto TLS listener (throwaway certificates from openssl)', async () => {
    const certs = makeCerts()
    cleanups.push(() => rmSync(certs.dir, { recursive: true, force: true }))
    const port = freePort()
    await runMosquitto(`listener ${port} 127.0.0.1\ncafile ${certs.ca}\ncertfile ${certs.serverCert}\nkeyfile ${certs.serverKey}`, port)
    const plugin = bridge({ name: 'tls', remote: { url: `mqtts://127.0.0.1:${port}`, clientId: 'site-tls', ca: certs.ca }, topics: [{ pattern: 'sensors/#', direction: 'out', qos: 1 }], reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, queue: { file: join(tempDir(), 'q.db') } })
    const midge = await broker({ plugins: [plugin] })
    await until(() => plugin.status().connected === 1, 5000, 'connected over TLS')
    const pub = await client(midge.port)
    await pub.client.publishAsync('sensors/secure', 'over tls', { qos: 1 })
    await until(() => plugin.status().forwardedOut === 1, 5000, 'acknowledged by Mosquitto over TLS')
  })

  test('Mosquitto bridging into Midge (try_private, topic both): Midge treats it as a bridge, and nothing loops', async () => {
    const midge = await broker()
    const port = await startMosquitto(`connection to-midge\naddress 127.0.0.1:${midge.port}\ntopic loop/# both 1\ntry_private true\nnotifications false\ncleansession true\nrestart_timeout 1`)
    await until(() => [...midge.midge.broker.sessions.values()].some((s) => (s.client as { bridge?: boolean } | null)?.bridge === true), 10_000, 'Mosquitto connects as a bridge')
    const onMidge = await client(midge.port)
    await subscribe(onMidge.client, 'loop/#', { qos: 1 })
    const onMosquitto = await client(port)
    await subscribe(onMosquitto.client, 'loop/#', { qos: 1 })
    // Mosquitto's subscription on Midge is in place once a message from Midge's side reaches Mosquitto's client.
    const midgePub = await client(midge.port)
    await midgePub.client.publishAsync('loop/ready', 'r', { qos: 1 })
    await onMosquitto.next(10_000)
    const mosquittoPub = await client(port)
    await mosquittoPub.client.publishAsync('loop/from-mosquitto', 'm', { qos: 1 })
    await midgePub.client.publishAsync('loop/from-midge', 'g', { qos: 1 })
    await until(() => onMidge.messages.some((m) => m.topic === 'loop/from-mosquitto') && onMosquitto.messages.some((m) => m.topic === 'loop/from-midge'), 10_000, 'both ways')
    await midgePub.client.publishAsync('loop/marker', 'x', { qos: 1 })
    await until(() => onMosquitto.messages.some((m) => m.topic === 'loop/marker'), 10_000, 'marker')
    await onMidge.quiet(midgePub)
    const count = (c: TestClient, topic: string) => c.messages.filter((m) => m.topic === topic).length
    expect([count(onMidge, 'loop/from-mosquitto'), count(onMidge, 'loop/from-midge'), count(onMosquitto, 'loop/from-midge'), count(onMosquitto, 'loop/from-mosquitto')]).toEqual([1, 1, 1, 1])
  })

  test('Midge bridging to Mosquitto over 3.1.1 with the bridge flag: both ways, no echo, state on the remote with a will', async () => {
    const port = await startMosquitto('')
    const dir = tempDir()
    const plugin = bridge({
      name: 'mq',
      remote: { url: `mqtt://127.0.0.1:${port}`, clientId: 'midge-edge', protocolVersion: 4 },
      topics: [{ pattern: 'loop/#', direction: 'both', qos: 1 }],
      reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
      queue: { file: join(dir, 'q.db') },
    })
    const watcher = await client(port)
    await subscribe(watcher.client, '$SYS/broker/connection/midge-edge/state', { qos: 1 })
    const midge = await broker({ plugins: [plugin] })
    expect((await watcher.next(10_000)).payload).toBe('1')
    expect(midge.logs.some((l) => l.event === 'bridge.private_refused')).toBe(false)
    const onMidge = await client(midge.port)
    await subscribe(onMidge.client, 'loop/#', { qos: 1 })
    const onMosquitto = await client(port)
    await subscribe(onMosquitto.client, 'loop/#', { qos: 1 })
    const midgePub = await client(midge.port)
    const mosquittoPub = await client(port)
    await midgePub.client.publishAsync('loop/from-midge', 'g', { qos: 1 })
    await mosquittoPub.client.publishAsync('loop/from-mosquitto', 'm', { qos: 1 })
    await until(() => onMidge.messages.some((m) => m.topic === 'loop/from-mosquitto') && onMosquitto.messages.some((m) => m.topic === 'loop/from-midge'), 10_000, 'both ways')
    await mosquittoPub.client.publishAsync('loop/marker', 'x', { qos: 1 })
    await until(() => onMidge.messages.some((m) => m.topic === 'loop/marker'), 10_000, 'marker')
    await onMidge.quiet(midgePub)
    const count = (c: TestClient, topic: string) => c.messages.filter((m) => m.topic === topic).length
    expect([count(onMidge, 'loop/from-mosquitto'), count(onMidge, 'loop/from-midge'), count(onMosquitto, 'loop/from-midge'), count(onMosquitto, 'loop/from-mosquitto')]).toEqual([1, 1, 1, 1])
    // Midge stops: the state on Mosquitto goes to 0.
    await midge.close()
    expect((await watcher.next(10_000)).payload).toBe('0')
  })
})
