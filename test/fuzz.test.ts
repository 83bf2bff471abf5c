/**
 * Fuzz: malformed, truncated, mutated and oversized packets of every type, MQTT 3.1.1 and 5.0, over many
 * connections, while a well-behaved pair of clients keeps exchanging QoS 1 messages. The broker must never crash
 * or throw out of a handler, must close only the offending connections, and the pair must lose nothing.
 * FUZZ_PACKETS (default 100,000) and FUZZ_SEED (default 1) set the run; `bun run fuzz` runs a million.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import mqttPacket from 'mqtt-packet'
import { malformed, rng } from './helpers/fuzz.ts'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe, type TestClient } from './helpers/mqttjs.ts'

const PACKETS = Number(process.env.FUZZ_PACKETS ?? 100_000)
const SEED = Number(process.env.FUZZ_SEED ?? 1)
const PER_CONNECTION = 40
const CONCURRENCY = 16

let b: TestBroker
let sub: TestClient
let pub: TestClient
beforeAll(async () => {
  b = await startBroker({ limits: { maxPacketSize: 64 * 1024, connectTimeoutMs: 2000 } })
  sub = await connect(b.port, { clientId: 'steady-sub', protocolVersion: 5 })
  await subscribe(sub.client, 'steady', { qos: 1 })
  pub = await connect(b.port, { clientId: 'steady-pub', protocolVersion: 5 })
})
afterAll(async () => {
  await sub.end()
  await pub.end()
  await b.close()
})

/** One fuzz connection: a valid CONNECT (or none), then a burst of malformed packets; resolves when it is closed or idle. */
async function attack(r: ReturnType<typeof rng>, version: 4 | 5): Promise<number> {
  let closed!: () => void
  const gone = new Promise<void>((resolve) => (closed = resolve))
  const socket = await Bun.connect({ hostname: '127.0.0.1', port: b.port, socket: { data() {}, close: () => closed(), error: () => closed() } })
  const parts: Buffer[] = []
  if (r.int(10) !== 0) parts.push(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `fuzz-${r.int(1000)}`, clean: r.int(2) === 0, keepalive: 0 }, { protocolVersion: version }))
  for (let i = 0; i < PER_CONNECTION; i++) parts.push(malformed(r, version))
  socket.write(Buffer.concat(parts))
  // Most bursts get the connection closed; the rest are left hanging mid-packet: drop them after a moment.
  await Promise.race([gone, Bun.sleep(50)])
  socket.end()
  await gone
  return PER_CONNECTION
}

test(`[MQTT-4.13] ${PACKETS.toLocaleString('en-US')} malformed packets (seed ${SEED}) close only their own connections; a steady QoS 1 stream loses nothing`, async () => {
  const r = rng(SEED)
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
  while (sent < PACKETS) {
    const batch = Array.from({ length: CONCURRENCY }, () => attack(r, r.int(2) ? 5 : 4))
    sent += (await Promise.all(batch)).reduce((a, n) => a + n, 0)
  }
  stop = true
  await stream
  await until(() => sub.messages.length === steady, 10_000, 'every steady message')
  expect(sub.messages.map((m) => Number(m.payload))).toEqual([...Array(steady).keys()])
  expect(sub.client.connected && pub.client.connected).toBe(true)
  // Nothing escaped a handler, and nothing is left behind.
  expect(b.logs.filter((l) => l.event === 'client.handler_error')).toEqual([])
  await until(() => b.midge.broker.clients.size === 2, 5000, 'fuzz connections all closed')
  const closedMalformed = b.logs.filter((l) => l.event === 'client.malformed_packet' || l.event === 'client.protocol_error').length
  console.log(`fuzz: ${sent} packets on ${sent / PER_CONNECTION} connections, ${closedMalformed} closed for bad input, ${steady} steady messages delivered`)
  expect(closedMalformed).toBeGreaterThan(sent / PER_CONNECTION / 2)
}, 600_000)
