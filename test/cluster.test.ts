/** Several Midge nodes on one real nats-server (JetStream), with MQTT.js clients on different nodes. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'
import { natsServerPath, type NatsServer, startNats } from './helpers/nats.ts'
import { RawClient } from './helpers/raw.ts'
import { spawnLines } from './helpers/process.ts'
import { sysTopics } from '../src/sys.ts'
import type { ClusterPlugin } from '../src/cluster/plugin.ts'
import { freePort, waitForPort } from '../bench/client.ts'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ADMIN_TOKEN = 'cluster-admin-token-0123456789'

function mqttOpen(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 2000, ...options })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed')))
  })
}

/** Waits until each node's subscriptions, share-group consumers and writes are in place in NATS (no sleep). */
function settled(...nodes: TestBroker[]): Promise<unknown> {
  return Promise.all(nodes.map((n) => (n.midge.broker.plugins.plugins.find((p) => p.name === 'cluster') as ClusterPlugin).settled()))
}

if (!natsServerPath && process.env.CI) throw new Error('nats-server is required in CI (apt-get install nats-server)')

describe.skipIf(!natsServerPath)('cluster on NATS JetStream', () => {
  let nats: NatsServer
  let a: TestBroker
  let b: TestBroker
  const node = (nodeId: string) => startBroker({ cluster: { nats: { servers: nats.url, name: 'test' }, nodeId } })
  beforeAll(async () => {
    nats = await startNats()
    a = await node('a')
    b = await node('b')
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await nats?.close()
  })

  test('a message published on one node reaches subscribers on the other, at each QoS, with properties and retain flags', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await sub.client.subscribeAsync('x/#', { qos: 2, rap: true }) // SUBACK comes once B's interest is on the NATS server
    const pub = await connect(a.port, { protocolVersion: 5 })
    await pub.client.publishAsync('x/0', 'zero', { qos: 0 })
    await pub.client.publishAsync('x/1', 'one', { qos: 1, properties: { userProperties: { k: 'v' }, correlationData: Buffer.from('c'), contentType: 'text/plain' } })
    await pub.client.publishAsync('x/2', 'two', { qos: 2, retain: true })
    const got = [await sub.next(), await sub.next(), await sub.next()].sort((m, n) => m.topic.localeCompare(n.topic))
    expect(got.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([['x/0', 'zero', 0], ['x/1', 'one', 1], ['x/2', 'two', 2]])
    expect(got[1]!.packet.properties).toMatchObject({ userProperties: { k: 'v' }, contentType: 'text/plain' })
    expect(Buffer.from(got[1]!.packet.properties!.correlationData!).toString()).toBe('c')
    expect(got[2]!.packet.retain).toBe(true) // retain as published
    await settled(a, b)
    expect(await sub.quiet()).toEqual([]) // once each, no echo
    await sub.end()
    await pub.end()
  })

  test('retained messages are cluster-wide: retained through A, read on B; cleared on B, gone on A; loaded by a node that starts later', async () => {
    const pub = await connect(a.port)
    await pub.client.publishAsync('ret/c', 'kept', { qos: 1, retain: true })
    await pub.client.publishAsync('ret/gone', 'soon', { qos: 1, retain: true })
    await pub.client.publishAsync('ret/zero', 'at most once, but kept', { qos: 0, retain: true })
    // B has no subscriber to these topics (NATS does not send it the messages): the retained bucket's watch does.
    await until(() => b.midge.broker.retained.get('ret/c') !== undefined && b.midge.broker.retained.get('ret/zero') !== undefined, 5000, 'retained reached B')
    const onB = await connect(b.port)
    await subscribe(onB.client, 'ret/c')
    expect((await onB.next()).payload).toBe('kept')
    await onB.client.publishAsync('ret/gone', '', { qos: 1, retain: true })
    await until(() => a.midge.broker.retained.get('ret/gone') === undefined, 5000, 'cleared on A')
    const c = await node('c')
    const onC = await connect(c.port)
    await subscribe(onC.client, 'ret/#')
    expect([(await onC.next()).payload, (await onC.next()).payload].sort()).toEqual(['at most once, but kept', 'kept'])
    expect(await onC.quiet()).toEqual([])
    await Promise.all([pub.end(), onB.end(), onC.end()])
    await c.close()
  })

  test('wills published by the node that saw the client drop reach subscribers on other nodes; subscription ids are those of the subscriber\'s node', async () => {
    const watcher = await connect(b.port, { protocolVersion: 5 })
    await watcher.client.subscribeAsync('will/+', { qos: 1, properties: { subscriptionIdentifier: 42 } })
    const dying = await RawClient.connected(a.port, 5, { will: { topic: 'will/a', payload: Buffer.from('gone'), qos: 1, retain: false } })
    dying.end() // no DISCONNECT
    const m = await watcher.next()
    expect(m.payload).toBe('gone')
    expect(m.packet.properties?.subscriptionIdentifier).toBe(42)
    await watcher.end()
  })

  test('interest: a node gets from NATS only the QoS 0 messages a subscription there can match, each once though two filters match', async () => {
    const cluster = (n: TestBroker) => n.midge.broker.plugins.plugins.find((p) => p.name === 'cluster') as ClusterPlugin
    const received = () => cluster(b).metrics!().received!
    const pub = await connect(a.port)
    const before = received()
    for (let i = 0; i < 50; i++) await pub.client.publishAsync('nobody/listens', String(i), { qos: 0 })
    const wide = await connect(b.port)
    await subscribe(wide.client, 'interest/#')
    const narrow = await connect(b.port)
    await subscribe(narrow.client, 'interest/+')
    const both = await connect(b.port)
    await subscribe(both.client, ['interest/#', 'interest/+'])
    await settled(a, b) // B's subscriptions are in place on the NATS server
    await pub.client.publishAsync('interest/x', 'one', { qos: 0 })
    await pub.client.publishAsync('elsewhere/x', 'not for B', { qos: 0 })
    await settled(a, b)
    for (const c of [wide, narrow, both]) expect((await c.next()).payload).toBe('one')
    for (const c of [wide, narrow, both]) expect(await c.quiet()).toEqual([]) // one copy each
    expect(received() - before).toBe(1) // neither the 50 nor elsewhere/x came to B, and interest/x came once
    await Promise.all([pub, wide, narrow, both].map((c) => c.end()))
  })

  test('shared subscriptions span nodes: each message goes to exactly one member of the group, whichever node it is on', async () => {
    const members = [await connect(a.port), await connect(a.port), await connect(b.port)]
    for (const m of members) await subscribe(m.client, '$share/workers/jobs/#', { qos: 1 })
    const plain = await connect(b.port)
    await subscribe(plain.client, 'jobs/#', { qos: 1 })
    await settled(a, b) // queue subscriptions and the group's consumer in place
    const pub = await connect(a.port)
    const N = 40
    for (let i = 0; i < N; i++) await pub.client.publishAsync(`jobs/${i % 3}`, String(i), { qos: i % 2 ? 1 : 0 })
    await until(() => members.reduce((n, m) => n + m.messages.length, 0) >= N && plain.messages.length === N, 10_000, 'all delivered')
    await settled(a, b) // whatever NATS had for either node has reached it
    for (const m of members) await m.quiet() // and its MQTT client: a duplicate would be here by now
    const got = members.flatMap((m) => m.messages.map((x) => x.payload)).sort((x, y) => Number(x) - Number(y))
    expect(got).toEqual([...Array(N).keys()].map(String)) // once each
    expect(members[2]!.messages.length).toBeGreaterThan(0) // the member on B takes part
    await Promise.all([...members, plain, pub].map((c) => c.end()))
  })

  test('persistent sessions are cluster-wide: reconnecting to another node finds the subscriptions and the QoS 1/2 messages queued meanwhile', async () => {
    const first = await connect(a.port, { clientId: 'wanderer', clean: false })
    await subscribe(first.client, 'sess/#', { qos: 1 })
    await first.end()
    await settled(a) // the disconnect is recorded in KV
    const pub = await connect(b.port)
    for (let i = 0; i < 5; i++) await pub.client.publishAsync('sess/x', `m${i}`, { qos: i % 2 ? 2 : 1 })
    await pub.client.publishAsync('sess/x', 'qos0 is not kept', { qos: 0 })
    const back = await connect(b.port, { clientId: 'wanderer', clean: false })
    const got: string[] = []
    for (let i = 0; i < 5; i++) got.push((await back.next()).payload)
    expect(got).toEqual(['m0', 'm1', 'm2', 'm3', 'm4'])
    await until(() => !a.midge.broker.sessions.has('wanderer'), 5000, 'A dropped its copy')
    // The subscription came along: a message published on A now reaches the client on B.
    const onA = await connect(a.port)
    await onA.client.publishAsync('sess/y', 'after', { qos: 1 })
    expect((await back.next()).payload).toBe('after')
    await settled(a, b)
    expect(await back.quiet()).toEqual([])
    await Promise.all([pub.end(), back.end(), onA.end()])
  })

  test('a QoS 1 subscriber that subscribes on B while A publishes a steady stream gets every message sent after its SUBACK', async () => {
    const pub = await connect(a.port)
    let sent = 0
    let stop = false
    const stream = (async () => {
      // 16 in flight at a time, so the stream is dense around the SUBACK
      while (!stop) await Promise.all(Array.from({ length: 16 }, () => pub.client.publishAsync('steady/x', String(sent++), { qos: 1 })))
    })()
    await until(() => sent >= 50, 5000, 'streaming')
    const sub = await connect(b.port)
    await subscribe(sub.client, 'steady/#', { qos: 1 })
    const firstAfter = sent // sent from here on: after SUBACK
    await until(() => sent >= firstAfter + 200, 10_000, 'more sent')
    stop = true
    await stream
    const last = sent - 1
    await until(() => sub.messages.some((m) => m.payload === String(last)), 10_000, 'the last one arrives')
    const got = new Set(sub.messages.map((m) => Number(m.payload)))
    const missing = Array.from({ length: last - firstAfter + 1 }, (_, i) => firstAfter + i).filter((n) => !got.has(n))
    expect(missing).toEqual([])
    await Promise.all([pub.end(), sub.end()])
  })

  test('a session with a quiet and a busy filter moves to another node: everything sent while it was away arrives, and nothing it had already got comes again', async () => {
    const first = await connect(a.port, { clientId: 'two-filters', clean: false })
    await subscribe(first.client, ['quiet/#', 'busy/#'], { qos: 1 })
    const pub = await connect(b.port)
    await pub.client.publishAsync('quiet/x', 'q0', { qos: 1 })
    for (let i = 0; i < 50; i++) await pub.client.publishAsync('busy/x', `b${i}`, { qos: 1 })
    await until(() => first.messages.length === 51, 5000, 'all before the move')
    await first.end()
    await settled(a, b) // the disconnect is recorded in KV
    for (let i = 50; i < 60; i++) await pub.client.publishAsync('busy/x', `b${i}`, { qos: 1 })
    await pub.client.publishAsync('quiet/x', 'q1', { qos: 1 })
    const back = await connect(b.port, { clientId: 'two-filters', clean: false })
    await until(() => back.messages.length >= 11, 5000, 'what was sent while away')
    await settled(a, b)
    expect(await back.quiet(pub)).toEqual([])
    // The position recorded for the quiet filter was the stream's head, not its last message: no replay of b0..b49.
    expect(back.messages.map((m) => m.payload)).toEqual([...Array.from({ length: 10 }, (_, i) => `b${50 + i}`), 'q1'])
    await Promise.all([pub.end(), back.end()])
  })

  test('kill -9 of a node under a steady QoS 1 stream: every acknowledged message reaches the persistent subscriber after it reconnects to a surviving node', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'midge-cluster-kill-'))
    const port = freePort()
    const config = join(dir, 'node.config.ts')
    writeFileSync(config, `export default { listeners: [{ type: 'tcp', port: ${port} }], log: { level: 'warn' }, sys: { intervalSeconds: 0 }, cluster: { nats: { servers: '${nats.url}', name: 'test' }, nodeId: 'doomed' } }\n`)
    const doomed = spawnLines(['src/main.ts', '--config', config])
    try {
      const received = new Set<string>()
      if (!(await waitForPort(port, () => doomed.proc.exitCode !== null))) throw new Error(`the node did not come up: exit ${doomed.proc.exitCode}; ${doomed.lines.join(' | ')}`)
      const subscriber = await mqttOpen(`mqtt://127.0.0.1:${port}`, { clientId: 'survivor', clean: false })
      subscriber.on('message', (_t, p) => received.add(p.toString()))
      await subscriber.subscribeAsync('stream/#', { qos: 1 })
      const pub = await connect(a.port, { clientId: 'steady-publisher' })
      const acked: string[] = []
      let stop = false
      const stream = (async () => {
        for (let i = 0; !stop && i < 2000; i++) {
          await pub.client.publishAsync('stream/x', String(i), { qos: 1 })
          acked.push(String(i))
        }
      })()
      await until(() => acked.length >= 100, 10_000, '100 acknowledged')
      // The subscription works end to end before the node dies (its session was recorded in KV when it was made).
      await until(() => received.size > 0, 10_000, 'the doomed node delivers')
      doomed.proc.kill(9)
      await doomed.proc.exited
      await until(() => acked.length >= 200, 10_000, 'the stream goes on')
      stop = true
      await stream
      subscriber.end(true)
      // The subscriber comes back through a surviving node.
      const back = await connect(b.port, { clientId: 'survivor', clean: false })
      await until(() => {
        for (const m of back.messages) received.add(m.payload)
        return acked.every((id) => received.has(id))
      }, 10_000, 'every acknowledged message')
      await Promise.all([back.end(), pub.end()])
    } finally {
      doomed.proc.kill(9)
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  test('a client id is unique across nodes: connecting to B takes over the connection on A (MQTT 5: 0x8E)', async () => {
    const first = await RawClient.connected(a.port, 5, { clientId: 'roamer' })
    const second = await RawClient.connected(b.port, 5, { clientId: 'roamer' })
    expect(((await first.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x8e)
    await first.waitClosed()
    second.send({ cmd: 'pingreq' })
    await second.next('pingresp')
    second.end()
  })

  test('with NATS gone, a node refuses QoS 1 publishes with a reason code, and goes on once NATS is back', async () => {
    await nats.stop()
    await until(() => a.logs.some((l) => l.event === 'cluster.disconnected'), 5000, 'A notices')
    const c = await RawClient.connected(a.port, 5)
    c.send({ cmd: 'publish', topic: 'while/down', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    const ack = (await c.next('puback')) as { reasonCode: number; properties?: { reasonString?: string } }
    expect(ack.reasonCode).toBe(0x80)
    expect(ack.properties?.reasonString).toContain('cluster')
    c.end()
    // 3.1.1 cannot be told "not accepted": the connection is closed rather than the message acknowledged.
    const old = await RawClient.connected(a.port, 4)
    old.send({ cmd: 'publish', topic: 'while/down', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    await old.waitClosed()
    expect(old.packets.filter((p) => p.cmd === 'puback')).toEqual([])
    await nats.restart()
    await until(() => a.logs.some((l) => l.event === 'cluster.reconnected') && b.logs.some((l) => l.event === 'cluster.reconnected'), 15_000, 'both reconnect')
    const sub = await connect(b.port)
    await subscribe(sub.client, 'after/restart', { qos: 1 })
    const pub = await connect(a.port)
    await pub.client.publishAsync('after/restart', 'back', { qos: 1 })
    expect((await sub.next(10_000)).payload).toBe('back')
    await Promise.all([sub.end(), pub.end()])
  }, 60_000)

  test('NATS restarted under a steady QoS 1 stream: every message acknowledged to the publisher reaches the persistent subscriber', async () => {
    const sub = await connect(b.port, { clientId: 'through-restart', clean: false, reconnectPeriod: 200 })
    await subscribe(sub.client, 'load/#', { qos: 1 })
    // The publisher reconnects by itself: a node that cannot store a message closes the connection instead of acking.
    const pub = await connect(a.port, { protocolVersion: 5, reconnectPeriod: 200 })
    const acked: string[] = []
    let refused = 0
    let stop = false
    const stream = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        const id = String(i)
        const outcome = await Promise.race([pub.client.publishAsync('load/x', id, { qos: 1 }).then(() => 'acked', () => 'refused'), Bun.sleep(2000).then(() => 'timeout')])
        if (outcome === 'acked') acked.push(id)
        else {
          refused++
          await Bun.sleep(50)
        }
      }
    })()
    await until(() => acked.length >= 100, 10_000, 'flowing')
    const reconnects = () => a.logs.filter((l) => l.event === 'cluster.reconnected').length
    const reconnectsBefore = reconnects()
    await nats.stop()
    await until(() => refused > 0, 10_000, 'publishes refused while NATS is down')
    await nats.restart()
    try {
      await until(() => reconnects() > reconnectsBefore && acked.length >= 300, 20_000, 'flowing again')
      stop = true
      await stream
      await until(() => {
        const got = new Set(sub.messages.map((m) => m.payload))
        return acked.every((id) => got.has(id))
      }, 20_000, 'every acknowledged message')
    } catch (e) {
      const got = new Set(sub.messages.map((m) => m.payload))
      console.log('MISSING', acked.filter((id) => !got.has(id)).join(','), 'acked', acked.length, 'refused', refused)
      console.log(JSON.stringify([...a.logs, ...b.logs].filter((l) => String(l.event).startsWith('cluster') || l.level === 'error' || l.event === 'client.disconnected').slice(-20)))
      throw e
    } finally {
      stop = true
      await Promise.all([sub.end(true), pub.end(true)]) // force: the publisher may hold unacknowledged messages
    }
  }, 90_000)

  test('$SYS/nodes/<node>/... shows every node\'s figures on every node', async () => {
    const withSys = await startBroker({ sys: { intervalSeconds: 1 }, cluster: { nats: { servers: nats.url, name: 'test' }, nodeId: 'reporter' } })
    const onB = await connect(b.port)
    await subscribe(onB.client, '$SYS/nodes/reporter/#')
    const seen = new Map<string, string>()
    while (!seen.has('$SYS/nodes/reporter/clients/connected') || !seen.has('$SYS/nodes/reporter/node')) {
      const m = await onB.next(5000)
      seen.set(m.topic, m.payload)
    }
    expect(seen.get('$SYS/nodes/reporter/node')).toBe('reporter')
    // The reporter sums what every node reports (its own figures at least) under $SYS/cluster/...
    const totals = await connect(withSys.port)
    await subscribe(totals.client, '$SYS/cluster/#')
    const cluster = new Map<string, string>()
    while (!cluster.has('$SYS/cluster/nodes') || !cluster.has('$SYS/cluster/clients/connected')) {
      const m = await totals.next(5000)
      cluster.set(m.topic, m.payload)
    }
    expect(Number(cluster.get('$SYS/cluster/nodes'))).toBeGreaterThanOrEqual(1)
    expect(cluster.get('$SYS/cluster/clients/connected')).toMatch(/^\d+$/) // a count, summed over the nodes (0 is possible: figures lag)
    await totals.end()
    await onB.end()
    await withSys.close()
  })

  test('$SYS shows each node its own figures and name; they do not cross nodes', async () => {
    const sysA = sysTopics(a.midge.broker)
    expect(sysA['$SYS/broker/node']).toBe('a')
    const onB = await connect(b.port)
    await subscribe(onB.client, '$SYS/broker/node')
    a.midge.publish({ topic: '$SYS/broker/node', payload: 'a', retain: true })
    await settled(a, b)
    expect(await onB.quiet()).toEqual([]) // A's $SYS stays on A
    await onB.end()
  })

  test('the HTTP API answers for the whole cluster: clients with their node, stats with every node and the totals, /metrics?cluster=true labelled by node', async () => {
    const http = { host: '127.0.0.1', port: 0, anonymousScopes: ['read' as const], publicMetrics: true, tokens: [{ name: 'admin', token: ADMIN_TOKEN, scopes: ['read' as const, 'admin' as const] }] }
    const x = await startBroker({ http, cluster: { nats: { servers: nats.url, name: 'test' }, nodeId: 'x' } })
    const y = await startBroker({ http, cluster: { nats: { servers: nats.url, name: 'test' }, nodeId: 'y' } })
    const api = (n: TestBroker) => `http://127.0.0.1:${n.addresses.find((l) => l.type === 'http')!.port}`
    const onX = await connect(x.port, { clientId: 'on-x' })
    const onY = await connect(y.port, { clientId: 'on-y' })
    try {
      const clients = (await (await fetch(`${api(x)}/api/v1/clients`)).json()) as { node: string; nodes: string[]; clients: Array<{ clientId: string; node: string }> }
      expect(clients.node).toBe('x')
      expect(clients.nodes).toEqual(expect.arrayContaining(['a', 'b', 'x', 'y']))
      expect(clients.clients.filter((c) => c.clientId.startsWith('on-')).map((c) => [c.clientId, c.node]).sort()).toEqual([['on-x', 'x'], ['on-y', 'y']])
      const local = (await (await fetch(`${api(x)}/api/v1/clients?local=true`)).json()) as { clients: Array<{ clientId: string }> }
      expect(local.clients.map((c) => c.clientId)).toEqual(['on-x'])
      const stats = (await (await fetch(`${api(y)}/api/v1/stats`)).json()) as { node: string; clientsConnected: number; cluster: { nodes: Array<{ node: string; clientsConnected: number }>; totals: { clientsConnected: number } } }
      expect(stats.node).toBe('y')
      expect(stats.cluster.nodes.map((n) => n.node)).toEqual(expect.arrayContaining(['x', 'y']))
      expect(stats.cluster.totals.clientsConnected).toBe(stats.cluster.nodes.reduce((sum, n) => sum + n.clientsConnected, 0))
      expect(stats.cluster.totals.clientsConnected).toBeGreaterThanOrEqual(2)
      const metrics = await (await fetch(`${api(x)}/metrics?cluster=true`)).text()
      expect(metrics).toMatch(/^midge_connections\{node="x"\} 1$/m)
      expect(metrics).toMatch(/^midge_connections\{node="y"\} 1$/m)
      expect(metrics.match(/^# TYPE midge_connections /gm)).toHaveLength(1)
      expect(await (await fetch(`${api(x)}/metrics`)).text()).not.toContain('node="y"') // Prometheus scrapes each node
      // Disconnecting a client through any node's API: the node that has it does (admin).
      const closed = new Promise<void>((resolve) => onY.client.once('close', () => resolve()))
      const asAdmin = { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }
      expect(await (await fetch(`${api(x)}/api/v1/clients/on-y`, asAdmin)).json()).toEqual({ clientId: 'on-y', disconnected: true, node: 'y' })
      await closed
      expect((await fetch(`${api(x)}/api/v1/clients/nobody`, asAdmin)).status).toBe(404)
    } finally {
      await Promise.all([onX.end(), onY.end()])
      await Promise.all([x.close(), y.close()])
    }
  })

  test('$SYS/cluster/... counts the nodes that are there: a node that goes away drops out of the totals', async () => {
    const cluster = { nats: { servers: nats.url, name: 'test' } }
    const stays = await startBroker({ sys: { intervalSeconds: 1 }, cluster: { ...cluster, nodeId: 'stays' } })
    const leaves = await startBroker({ sys: { intervalSeconds: 1 }, cluster: { ...cluster, nodeId: 'leaves' } })
    const watcher = await connect(stays.port)
    try {
      await subscribe(watcher.client, '$SYS/cluster/nodes')
      const latest = () => watcher.messages.at(-1)?.payload
      await until(() => latest() === '2', 10_000, 'both nodes counted')
      await leaves.close()
      await until(() => latest() === '1', 10_000, 'the node that left no longer counted')
    } finally {
      await watcher.end()
      await stays.close()
      await leaves.close()
    }
  }, 30_000)

  test('without a cluster section nothing NATS-related is loaded', async () => {
    const plain = await startBroker()
    expect(plain.logs.find((l) => l.event === 'broker.starting')?.plugins).toEqual([])
    expect(plain.logs.some((l) => String(l.event).startsWith('cluster.'))).toBe(false)
    await plain.close()
    const refused = await RawClient.open(a.port, 4)
    refused.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'x', clean: true, keepalive: 0 })
    expect(((await refused.next('connack')) as IConnackPacket).returnCode).toBe(0)
    refused.end()
  })
})

describe.skipIf(!natsServerPath)('cluster interest, proven on three nodes', () => {
  test('a node whose clients subscribe to nothing matching gets none of a 10,000-message QoS 0 stream (its counters, $SYS and NATS agree) nor of a QoS 1 one; a node with a # subscriber gets all of both', async () => {
    const nats = await startNats()
    const member = (nodeId: string) => ({ nats: { servers: nats.url, name: 'proof' }, nodeId })
    const a = await startBroker({ cluster: member('a') })
    const b = await startBroker({ cluster: member('b') })
    const c = await startBroker({ cluster: member('c'), sys: { intervalSeconds: 1 }, http: { host: '127.0.0.1', port: 0, publicMetrics: true } })
    const clients: TestClient[] = []
    const cluster = (n: TestBroker) => n.midge.broker.plugins.plugins.find((p) => p.name === 'cluster') as ClusterPlugin
    try {
      const elsewhere = await connect(c.port)
      await subscribe(elsewhere.client, ['elsewhere/#', 'fleet/+/humidity'])
      const everything = await connect(b.port)
      await subscribe(everything.client, '#')
      const pub = await connect(a.port)
      clients.push(elsewhere, everything, pub)
      await settled(a, b, c)
      const metricsUrl = `http://127.0.0.1:${c.addresses.find((x) => x.type === 'http')!.port}/metrics`
      const receivedOnC = async () => Number(/^midge_plugin_cluster_received (\d+)$/m.exec(await (await fetch(metricsUrl)).text())![1])
      const before = await receivedOnC()

      const streamBefore = cluster(c).metrics!().fromStream!
      const N = 10_000
      for (let i = 0; i < N; i++) pub.client.publish(`fleet/${i % 100}/temperature`, String(i), { qos: 0 })
      await until(() => everything.messages.length >= N, 30_000, 'the # subscriber on B gets the stream')
      // And QoS 1 through JetStream: C reads none of the stream's subjects these go to.
      const M = 1_000
      await Promise.all(Array.from({ length: M }, (_, i) => pub.client.publishAsync(`fleet/${i % 100}/pressure`, `q${i}`, { qos: 1 })))
      await until(() => everything.messages.length >= N + M, 30_000, 'the # subscriber on B gets the QoS 1 stream')
      await settled(a, b, c)
      expect(await everything.quiet(pub)).toEqual([]) // all of it, once each
      expect(new Set(everything.messages.map((m) => m.payload)).size).toBe(N + M)
      expect(elsewhere.messages).toEqual([])
      expect(cluster(c).metrics!().fromStream! - streamBefore).toBe(0)
      expect(cluster(b).metrics!().fromStream!).toBeGreaterThanOrEqual(M)

      // C's own counter, over HTTP and in $SYS (a figure published after the stream: not the retained one).
      expect(await receivedOnC()).toBe(before)
      const watcher = await connect(c.port)
      clients.push(watcher)
      await subscribe(watcher.client, '$SYS/broker/plugins/cluster/received')
      let sys = await watcher.next(5000)
      while (sys.packet.retain) sys = await watcher.next(5000)
      expect(Number(sys.payload)).toBe(before)

      // NATS's own count of what it sent each node on the QoS 0 subjects.
      const connz = (await (await fetch(`${nats.monitorUrl}/connz?subs=detail`)).json()) as { connections: Array<{ cid: number; name?: string; subscriptions_list_detail?: Array<{ subject: string; msgs: number }> }> }
      const sentTo = (node: string) =>
        connz.connections
          .filter((conn) => conn.name === `midge ${node}`)
          .flatMap((conn) => conn.subscriptions_list_detail ?? [])
          .filter((sub) => sub.subject.startsWith('midge.proof.m0.t.')) // ordinary topics (every node also reads the $SYS/nodes figures)
          .reduce((sum, sub) => sum + sub.msgs, 0)
      expect(sentTo('c')).toBe(0)
      // /subsz with a subject: the subscriptions that subject would reach. None is C's; B's `#` is among them.
      const cid = (node: string) => connz.connections.find((conn) => conn.name === `midge ${node}`)!.cid
      const subsz = (await (await fetch(`${nats.monitorUrl}/subsz?subs=1&test=midge.proof.m0.t.fleet.7.temperature`)).json()) as { subscriptions_list?: Array<{ cid: number }> }
      const reached = (subsz.subscriptions_list ?? []).map((sub) => sub.cid)
      expect(reached).not.toContain(cid('c'))
      expect(reached).toContain(cid('b'))
      expect(sentTo('b')).toBeGreaterThan(0) // in batches: a NATS message per subject and tick, not per MQTT message
    } finally {
      await Promise.all(clients.map((x) => x.end(true)))
      await Promise.all([a.close(), b.close(), c.close()])
      await nats.close()
    }
  }, 60_000)
})
