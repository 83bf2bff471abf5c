/**
 * Fuzz: malformed, truncated, mutated and oversized packets of every type, MQTT 3.1.1 and 5.0, over many
 * connections, while a well-behaved pair of clients keeps exchanging QoS 1 messages. Runs against the bare broker
 * and against the default config's plugins (auth, a late decision, sqlite, webhook), whose held packets and
 * delayed acks are paths of their own. The broker must never crash, throw out of a handler or a promise callback,
 * or make the runtime warn; it must close only the offending connections, and the pair must lose nothing.
 * FUZZ_PACKETS (default 100,000 per seed and profile), FUZZ_SEEDS (default "1") set the run; `npm run fuzz` runs
 * a million with several seeds.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import mqttPacket from 'mqtt-packet'
import { classics, hostileConnects, malformed, rng } from './helpers/fuzz.ts'
import { until, watchProcess, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'
import { profiles } from './helpers/profiles.ts'

const PACKETS = Number(process.env.FUZZ_PACKETS ?? 100_000)
const SEEDS = (process.env.FUZZ_SEEDS ?? process.env.FUZZ_SEED ?? '1').split(',').map(Number)
const PER_CONNECTION = 40
const CONCURRENCY = 16

for (const profile of profiles) {
  describe(`fuzz (${profile.name})`, () => {
    let b: TestBroker
    let sub: TestClient
    let pub: TestClient
    beforeAll(async () => {
      b = await profile.start({ limits: { maxPacketSize: 64 * 1024, connectTimeoutMs: 2000 } })
      // A persistent session: with the sqlite plugin, every steady message is on disk before its PUBACK.
      sub = await connect(b.port, { clientId: 'steady-sub', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } })
      await subscribe(sub.client, 'steady', { qos: 1 })
      pub = await connect(b.port, { clientId: 'steady-pub', protocolVersion: 5 })
    })
    afterAll(async () => {
      await sub.end()
      await pub.end()
      await b.close()
    })
    for (const seed of SEEDS) test(`(section 4.13) ${PACKETS.toLocaleString('en-US')} malformed packets (seed ${seed}) close only their own connections; a steady QoS 1 stream loses nothing`, () => run(b, sub, pub, seed), 3_600_000)
  })
}

/** One fuzz connection: a valid CONNECT (or none), then a burst of malformed packets; resolves when it is closed or idle. */
async function attack(b: TestBroker, r: ReturnType<typeof rng>, version: 4 | 5): Promise<number> {
  let closed!: () => void
  const gone = new Promise<void>((resolve) => (closed = resolve))
  const socket = await Bun.connect({ hostname: '127.0.0.1', port: b.port, socket: { data() {}, close: () => closed(), error: () => closed() } })
  const parts: Buffer[] = []
  const opening = r.int(20)
  if (opening === 0 && version === 5) parts.push(r.pick(hostileConnects))
  else if (opening !== 1) parts.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `fuzz-${r.int(1000)}`, clean: r.int(2) === 0, keepalive: 0 }, { protocolVersion: version }))
  // Most connections end at their first bad packet: a quarter start with one of the known attacks, so each of them
  // meets a live, connected session (and, with plugins, its held packets and delayed acks).
  if (r.int(4) === 0) parts.push(r.pick(classics))
  while (parts.length < PER_CONNECTION) parts.push(malformed(r, version))
  socket.write(Buffer.concat(parts))
  // Most bursts get the connection closed; the rest are left hanging mid-packet: drop them after a moment.
  await Promise.race([gone, Bun.sleep(50)])
  socket.end()
  await gone
  return parts.length
}

async function run(b: TestBroker, sub: TestClient, pub: TestClient, seed: number): Promise<void> {
  const watch = watchProcess()
  const r = rng(seed)
  sub.messages.length = 0
  const logStart = b.logs.length
  let sent = 0
  let steady = 0
  let stop = false
  // The well-behaved publisher keeps going throughout.
  const stream = (async () => {
    while (!stop) {
      await pub.client.publishAsync('steady', String(steady++), { qos: 1 })
      await Bun.sleep(2)
    }
  })()
  let connections = 0
  while (sent < PACKETS) {
    connections += CONCURRENCY
    const batch = Array.from({ length: CONCURRENCY }, () => attack(b, r, r.int(2) ? 5 : 4))
    sent += (await Promise.all(batch)).reduce((a, n) => a + n, 0)
  }
  stop = true
  await stream
  await until(() => sub.messages.length === steady, 10_000, 'every steady message')
  expect(sub.messages.map((m) => Number(m.payload))).toEqual([...Array(steady).keys()])
  expect(sub.client.connected && pub.client.connected).toBe(true)
  // Nothing escaped a handler, and nothing is left behind.
  expect(b.logs.slice(logStart).filter((l) => l.event === 'client.handler_error')).toEqual([])
  await until(() => b.midge.broker.clients.size === 2, 5000, 'fuzz connections all closed')
  const closedMalformed = b.logs.slice(logStart).filter((l) => l.event === 'client.malformed_packet' || l.event === 'client.protocol_error').length
  console.log(`fuzz (seed ${seed}): ${sent} packets on ${connections} connections, ${closedMalformed} closed for bad input, ${steady} steady messages delivered`)
  expect(closedMalformed).toBeGreaterThan(connections / 2)
  watch.stop()
  expect(watch.problems).toEqual([])
  expect(b.logs.filter((l) => String(l.event).startsWith('process.'))).toEqual([])
}
