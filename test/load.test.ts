/** Load and churn: thousands of connections at once, and a connect/subscribe/publish/disconnect loop that must leave nothing behind. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { BenchClient } from '../bench/client.ts'
import { until, type TestBroker } from './helpers/broker.ts'
import { profiles } from './helpers/profiles.ts'

const CHURN_ROUNDS = Number(process.env.CHURN_ROUNDS ?? 30)
for (const profile of profiles) describe(`load (${profile.name})`, () => {
  let b: TestBroker
  beforeAll(async () => {
    b = await profile.start()
  })
  afterAll(() => b.close())

  test('5,000 concurrent connections connect, subscribe and all receive a broadcast', async () => {
    const N = 5000
    const clients: BenchClient[] = []
    let received = 0
    for (let i = 0; i < N; i += 250) {
      const group = await Promise.all(Array.from({ length: Math.min(250, N - i) }, (_, k) => BenchClient.connect(b.port, `many-${i + k}`)))
      await Promise.all(group.map((c) => c.subscribe('broadcast/all', 1)))
      for (const c of group) c.onPublish = () => void received++
      clients.push(...group)
    }
    expect(b.midge.broker.clients.size).toBe(N)
    expect(b.midge.publish({ topic: 'broadcast/all', payload: 'to everyone', qos: 1 })).toBe(N)
    await until(() => received === N, 20_000, 'every client got the broadcast')
    for (const c of clients) c.end()
    await until(() => b.midge.broker.clients.size === 0, 10_000, 'all closed')
    expect(b.midge.broker.sessions.size).toBe(0)
    expect(b.midge.broker.subscriptions.size).toBe(0)
  }, 60_000)

  test('connection churn leaves no sessions, subscriptions, clients or memory behind', async () => {
    const broker = b.midge.broker
    const churn = async (rounds: number) => {
      for (let round = 0; round < rounds; round++) {
        const group = await Promise.all(Array.from({ length: 100 }, (_, k) => BenchClient.connect(b.port, `churn-${round}-${k}`, { version: k % 2 ? 5 : 4 })))
        await Promise.all(group.map((c, k) => c.subscribe(`churn/${k % 10}/#`, (k % 3) as 0 | 1 | 2)))
        await Promise.all(group.map((c, k) => c.send({ cmd: 'publish', topic: `churn/${k % 10}/x`, payload: Buffer.alloc(100), qos: 0, retain: false, dup: false })))
        // Half leave with DISCONNECT, half just drop the socket (unclean).
        await Promise.all(group.map((c, k) => (k % 2 ? c.send({ cmd: 'disconnect' }).then(() => c.end()) : Promise.resolve(c.end()))))
      }
      await until(() => broker.clients.size === 0, 10_000, 'churned clients closed')
    }
    await churn(5) // warm up: code paths, caches
    Bun.gc(true)
    const heapBefore = process.memoryUsage().heapUsed
    await churn(CHURN_ROUNDS) // 100 connections a round: 3,000 in CI; `npm run soak` runs 100,000
    Bun.gc(true)
    const heapAfter = process.memoryUsage().heapUsed
    expect(broker.sessions.size).toBe(0)
    expect(broker.subscriptions.size).toBe(0)
    expect(broker.clients.size).toBe(0)
    expect(heapAfter - heapBefore).toBeLessThan(8 * 1024 * 1024)
  }, 3_600_000)
})
