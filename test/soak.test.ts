/**
 * Soak: churn and traffic for SOAK_SECONDS (15 in CI; `npm run soak` runs 600) against the bare broker and the
 * default config's plugins. Clean and persistent sessions come and go (half leave without DISCONNECT), QoS 0 and 1
 * messages flow, offline sessions queue and expire, retained messages are set and cleared. Afterwards everything
 * is back to its baseline: no clients, sessions, session timers or subscriptions left, open files as before, heap
 * and RSS within a bound, and the sqlite database (with its WAL) no larger than after the warm-up.
 */
import { expect, test } from 'bun:test'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { BenchClient } from '../bench/client.ts'
import { until } from './helpers/broker.ts'
import { profiles, type ProfileBroker } from './helpers/profiles.ts'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 15)
const payload = Buffer.alloc(512, 7)

/** One round: 20 clean and 5 persistent subscribers, 100 QoS 1 and 100 QoS 0 messages, 20 retained set and cleared. */
async function round(b: ProfileBroker, n: number): Promise<number> {
  let received = 0
  const clean = await Promise.all(Array.from({ length: 20 }, (_, k) => BenchClient.connect(b.port, `soak-${n}-${k}`, { version: k % 2 ? 5 : 4 })))
  // Persistent MQTT 5 sessions that expire one second after their client goes: what they queue meanwhile is stored.
  // Each is resumed once, the round after (a client id reconnecting every round would be banned as flapping).
  const persistent = await Promise.all(Array.from({ length: 5 }, (_, k) => BenchClient.connect(b.port, `soak-p-${n >> 1}-${k}`, { version: 5, clean: n % 2 === 0, properties: { sessionExpiryInterval: 1 } })))
  for (const c of [...clean, ...persistent]) c.onPublish = () => void received++
  await Promise.all(clean.map((c, k) => c.subscribe(`soak/${k % 4}/+`, (k % 2) as 0 | 1)))
  await Promise.all(persistent.map((c) => c.subscribe('soak/#', 1)))
  const pub = await BenchClient.connect(b.port, `soak-pub-${n}`, { version: 5 })
  for (let i = 0; i < 100; i++) {
    const acked = pub.wait(4)
    await pub.send({ cmd: 'publish', topic: `soak/${i % 4}/m`, payload, qos: 1, messageId: 1 + (i % 60000), retain: false, dup: false })
    await acked
    await pub.send({ cmd: 'publish', topic: `soak/${i % 4}/q0`, payload, qos: 0, retain: false, dup: false })
  }
  for (let i = 0; i < 20; i++) await pub.send({ cmd: 'publish', topic: `soak/retained/${i}`, payload, qos: 0, retain: true, dup: false })
  for (let i = 0; i < 20; i++) await pub.send({ cmd: 'publish', topic: `soak/retained/${i}`, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })
  // The persistent clients drop first (unclean); messages published now queue for their sessions until they expire.
  for (const c of persistent) c.reset()
  for (let i = 0; i < 20; i++) {
    const acked = pub.wait(4)
    await pub.send({ cmd: 'publish', topic: 'soak/offline/m', payload, qos: 1, messageId: 100 + i, retain: false, dup: false })
    await acked
  }
  await Promise.all(clean.map((c, k) => (k % 2 ? c.send({ cmd: 'disconnect' }).then(() => c.end()) : Promise.resolve(c.end()))))
  await pub.send({ cmd: 'disconnect' })
  pub.end()
  return received
}

/** Open file descriptors of this process (sockets, the database files). */
const openFiles = () => readdirSync('/proc/self/fd').length
const fileSize = (path: string | undefined) => (path ? [path, `${path}-wal`].reduce((n, p) => n + (existsSync(p) ? statSync(p).size : 0), 0) : 0)

for (const profile of profiles) {
  test(`soak (${profile.name}): ${SECONDS} s of churn and traffic leave clients, sessions, timers, files, memory and the database at their baseline`, async () => {
    // Warnings and errors only: the test keeps every log line in memory, and per-message debug lines would be what grows.
    const b = await profile.start({ limits: { maxQueuedMessages: 100 }, log: { level: 'warn' } })
    const broker = b.midge.broker
    const settled = async () => {
      await until(() => broker.clients.size === 0 && broker.sessions.size === 0, 10_000, 'clients gone and sessions expired')
      await Bun.sleep(1100) // one sqlite maintenance pass (every second in the test profile) checkpoints and vacuums
      Bun.gc(true)
    }
    let n = 0
    let received = 0
    for (; n < 3; n++) received += await round(b, n) // warm-up: caches, the database's pages, JIT
    await settled()
    const baseline = { files: openFiles(), heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss, db: fileSize(b.dbPath) }
    const deadline = Date.now() + SECONDS * 1000
    for (; Date.now() < deadline; n++) received += await round(b, n)
    await settled()
    const after = { files: openFiles(), heap: process.memoryUsage().heapUsed, rss: process.memoryUsage().rss, db: fileSize(b.dbPath) }
    const timers = [...broker.sessions.values()].filter((s) => s.willTimer || s.expiryTimer).length
    console.log(`soak (${profile.name}): ${n} rounds, ${n * 26} connections, ${received} messages delivered; baseline ${JSON.stringify(baseline)}, after ${JSON.stringify(after)}; ${broker.bans.counting} client ids in the flapping window`)
    expect(broker.clients.size).toBe(0)
    expect(broker.sessions.size).toBe(0)
    expect(timers).toBe(0)
    expect(broker.subscriptions.size).toBe(0)
    expect(broker.retained.size).toBe(0)
    expect(after.files).toBeLessThanOrEqual(baseline.files)
    expect(after.heap - baseline.heap).toBeLessThan(16 * 1024 * 1024)
    // RSS is the whole test process's (every test file runs in it) and the allocator keeps freed pages a while:
    // a loose bound here; the heap after a full GC is the tight one.
    expect(after.rss - baseline.rss).toBeLessThan(128 * 1024 * 1024)
    if (b.dbPath) expect(after.db).toBeLessThanOrEqual(Math.max(baseline.db, 64 * 1024) * 1.25)
    await b.close()
  }, (SECONDS + 120) * 1000)
}
