import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({ sys: { intervalSeconds: 1 } })
})
afterAll(() => b.close())

describe('shared subscriptions', () => {
  test('(section 4.8.2) each message goes to one member of the group, round-robin', async () => {
    const members = await Promise.all([0, 1, 2].map(() => connect(b.port, { protocolVersion: 5 })))
    for (const m of members) await subscribe(m.client, '$share/workers/jobs/+', { qos: 1 })
    const plain = await connect(b.port)
    await subscribe(plain.client, 'jobs/+')
    for (let i = 0; i < 9; i++) b.midge.publish({ topic: 'jobs/x', payload: String(i), qos: 1 })
    await until(() => members.reduce((n, m) => n + m.messages.length, 0) === 9, 3000, 'nine deliveries')
    expect(members.map((m) => m.messages.length)).toEqual([3, 3, 3])
    const all = members.flatMap((m) => m.messages.map((x) => x.payload)).sort()
    expect(all).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8'])
    await until(() => plain.messages.length === 9, 3000, 'ordinary subscriber gets all')
    await Promise.all([...members, plain].map((m) => m.end()))
  })

  test('two groups on one filter each get every message', async () => {
    const a = await connect(b.port)
    const c = await connect(b.port)
    await subscribe(a.client, '$share/g1/two/groups')
    await subscribe(c.client, '$share/g2/two/groups')
    b.midge.publish({ topic: 'two/groups', payload: 'p' })
    expect((await a.next()).payload).toBe('p')
    expect((await c.next()).payload).toBe('p')
    await a.end()
    await c.end()
  })

  test('a member that leaves no longer receives; the others take its share', async () => {
    const a = await connect(b.port)
    const c = await connect(b.port)
    await subscribe(a.client, '$share/leave/l/x')
    await subscribe(c.client, '$share/leave/l/x')
    await a.end()
    for (let i = 0; i < 4; i++) b.midge.publish({ topic: 'l/x', payload: String(i) })
    await until(() => c.messages.length === 4, 3000, 'remaining member gets all')
    await c.end()
  })

  test('[MQTT-3.8.3-4] no local on a shared subscription is a protocol error', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/x', qos: 0, nl: true }] })
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x82)
    await c.waitClosed()
  })
})

describe('$SYS', () => {
  test('$SYS/broker topics are published retained on the interval, like Mosquitto', async () => {
    const c = await connect(b.port)
    await subscribe(c.client, '$SYS/broker/#')
    const expected = ['version', 'uptime', 'clients/connected', 'messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'subscriptions/count', 'retained messages/count']
    const seen = new Map<string, string>()
    while (!expected.every((t) => seen.has(`$SYS/broker/${t}`))) {
      const m = await c.next(3000)
      seen.set(m.topic, m.payload)
    }
    expect(seen.get('$SYS/broker/version')).toMatch(/^midge /)
    // The next round arrives as a live update and counts this client.
    let live
    do live = await c.next(3000)
    while (live.topic !== '$SYS/broker/clients/connected' || live.packet.retain)
    expect(Number(live.payload)).toBeGreaterThanOrEqual(1)
    await c.end()
  })
})
