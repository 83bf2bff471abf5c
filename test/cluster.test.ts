/** Several Midge nodes on one real nats-server (JetStream), with MQTT.js clients on different nodes. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { natsServerPath, type NatsServer, startNats } from './helpers/nats.ts'
import { RawClient } from './helpers/raw.ts'

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
    await sub.client.subscribeAsync('x/#', { qos: 2, rap: true })
    const pub = await connect(a.port, { protocolVersion: 5 })
    await pub.client.publishAsync('x/0', 'zero', { qos: 0 })
    await pub.client.publishAsync('x/1', 'one', { qos: 1, properties: { userProperties: { k: 'v' }, correlationData: Buffer.from('c'), contentType: 'text/plain' } })
    await pub.client.publishAsync('x/2', 'two', { qos: 2, retain: true })
    const got = [await sub.next(), await sub.next(), await sub.next()].sort((m, n) => m.topic.localeCompare(n.topic))
    expect(got.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([['x/0', 'zero', 0], ['x/1', 'one', 1], ['x/2', 'two', 2]])
    expect(got[1]!.packet.properties).toMatchObject({ userProperties: { k: 'v' }, contentType: 'text/plain' })
    expect(Buffer.from(got[1]!.packet.properties!.correlationData!).toString()).toBe('c')
    expect(got[2]!.packet.retain).toBe(true) // retain as published
    expect(await sub.quiet(200)).toEqual([]) // once each, no echo
    await sub.end()
    await pub.end()
  })

  test('retained messages are cluster-wide: retained through A, read on B; cleared on B, gone on A; loaded by a node that starts later', async () => {
    const pub = await connect(a.port)
    await pub.client.publishAsync('ret/c', 'kept', { qos: 1, retain: true })
    await pub.client.publishAsync('ret/gone', 'soon', { qos: 1, retain: true })
    await until(() => b.midge.broker.retained.get('ret/c') !== undefined, 5000, 'retained reached B')
    const onB = await connect(b.port)
    await subscribe(onB.client, 'ret/c')
    expect((await onB.next()).payload).toBe('kept')
    await onB.client.publishAsync('ret/gone', '', { qos: 1, retain: true })
    await until(() => a.midge.broker.retained.get('ret/gone') === undefined, 5000, 'cleared on A')
    const c = await node('c')
    const onC = await connect(c.port)
    await subscribe(onC.client, 'ret/#')
    expect((await onC.next()).payload).toBe('kept')
    expect(await onC.quiet(200)).toEqual([])
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

  test('shared subscriptions span nodes: each message goes to exactly one member of the group, whichever node it is on', async () => {
    const members = [await connect(a.port), await connect(a.port), await connect(b.port)]
    for (const m of members) await subscribe(m.client, '$share/workers/jobs/#', { qos: 1 })
    const plain = await connect(b.port)
    await subscribe(plain.client, 'jobs/#', { qos: 1 })
    await Bun.sleep(100) // queue subscriptions reach the NATS server
    const pub = await connect(a.port)
    const N = 40
    for (let i = 0; i < N; i++) await pub.client.publishAsync(`jobs/${i % 3}`, String(i), { qos: i % 2 ? 1 : 0 })
    await until(() => members.reduce((n, m) => n + m.messages.length, 0) >= N && plain.messages.length === N, 10_000, 'all delivered')
    await Bun.sleep(200)
    const got = members.flatMap((m) => m.messages.map((x) => x.payload)).sort((x, y) => Number(x) - Number(y))
    expect(got).toEqual([...Array(N).keys()].map(String)) // once each
    expect(members[2]!.messages.length).toBeGreaterThan(0) // the member on B takes part
    await Promise.all([...members, plain, pub].map((c) => c.end()))
  })

  test('persistent sessions are cluster-wide: reconnecting to another node finds the subscriptions and the QoS 1/2 messages queued meanwhile', async () => {
    const first = await connect(a.port, { clientId: 'wanderer', clean: false })
    await subscribe(first.client, 'sess/#', { qos: 1 })
    await first.end()
    await Bun.sleep(100) // the disconnect is recorded in KV
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
    expect(await back.quiet(200)).toEqual([])
    await Promise.all([pub.end(), back.end(), onA.end()])
  })

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
    await nats.restart()
    await until(() => a.logs.some((l) => l.event === 'cluster.reconnected') && b.logs.some((l) => l.event === 'cluster.reconnected'), 15_000, 'both reconnect')
    const sub = await connect(b.port)
    await subscribe(sub.client, 'after/restart', { qos: 1 })
    const pub = await connect(a.port)
    await pub.client.publishAsync('after/restart', 'back', { qos: 1 })
    expect((await sub.next(10_000)).payload).toBe('back')
    await Promise.all([sub.end(), pub.end()])
  }, 60_000)

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
