/**
 * Microbenchmarks of the hot path's pieces, in-process, timed with Bun.nanoseconds():
 * the subscription trie, the retained index, framing + decoding with mqtt-packet, encoding, one message
 * routed through the whole broker (time and objects allocated per message), scenario 1's fan-in and one
 * accepted connection.
 *   bun bench/micro.ts
 */
// The codec first: it loads mqtt-packet the way the broker does (see codec.ts).
import { PacketReader } from '../src/protocol/codec.ts'
import { encode } from '../src/protocol/encode.ts'
import { heapStats } from 'bun:jsc'
import { Broker } from '../src/broker.ts'
import { resolveConfig } from '../src/config.ts'
import { createLogger } from '../src/logger.ts'
import { MemoryRetainedStore } from '../src/topics/retained.ts'
import { type Subscription, SubscriptionTrie } from '../src/topics/trie.ts'

function time(name: string, ops: number, fn: () => void): void {
  fn() // warm up
  const t0 = Bun.nanoseconds()
  fn()
  const ns = Bun.nanoseconds() - t0
  console.log(`${name.padEnd(52)} ${(ops / (ns / 1e9)).toFixed(0).padStart(12)} ops/s ${(ns / ops).toFixed(0).padStart(7)} ns/op`)
}

const sub = (i: number, filter: string): Subscription => ({ clientId: `c${i}`, filter, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: 0, group: undefined })

// A trie of 100,000 subscriptions: devices/{id}/+/state, plus some wildcards.
const trie = new SubscriptionTrie()
for (let i = 0; i < 100_000; i++) trie.add(sub(i, `devices/${i}/+/state`))
for (let i = 0; i < 100; i++) trie.add(sub(100_000 + i, i % 2 ? 'devices/#' : `devices/+/room${i}/state`))
let matched = 0
const visitor = { subscription: () => void matched++, group: () => {} }
time('trie.match, 100k subscriptions, 1 exact + 50 wildcard', 200_000, () => {
  for (let i = 0; i < 200_000; i++) trie.match(`devices/${i % 100_000}/room${i % 100}/state`, visitor)
})

const retained = new MemoryRetainedStore()
for (let i = 0; i < 100_000; i++) retained.set(`ret/${i % 100}/${i}`, { topic: `ret/${i % 100}/${i}`, payload: Buffer.from('x'), qos: 0, retain: true, properties: undefined, expiresAt: 0, origin: undefined })
time('retained.match "ret/7/+" among 100k', 1000, () => {
  for (let i = 0; i < 1000; i++) retained.match('ret/7/+')
})
time('retained.match "#" (100k messages)', 10, () => {
  for (let i = 0; i < 10; i++) retained.match('#')
})

const payload = Buffer.alloc(64, 120)
const one = encode({ cmd: 'publish', topic: 'bench/1', payload, qos: 0, retain: false, dup: false }, 4)
const chunk = Buffer.concat(Array(1000).fill(one))
let packets = 0
const reader = new PacketReader(1 << 20, { onPacket: () => void packets++, onParseError: (e) => console.error(e) })
reader.feed(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'm', clean: true, keepalive: 0 }, 4))
time('frame + decode QoS 0 PUBLISH (64 B), 1000 per chunk', 200_000, () => {
  for (let i = 0; i < 200; i++) reader.feed(chunk)
})
// A topic per device: 100,000 distinct topics, none repeated within 100 chunks (the intern table stands aside).
const distinct = Array.from({ length: 100 }, (_, c) =>
  Buffer.concat(Array.from({ length: 1000 }, (_, i) => encode({ cmd: 'publish', topic: `sensors/device-${c * 1000 + i}/temperature`, payload, qos: 0, retain: false, dup: false }, 4))),
)
time('frame + decode, 100,000 distinct topics', 200_000, () => {
  for (let i = 0; i < 200; i++) reader.feed(distinct[i % 100]!)
})
time('encode QoS 0 PUBLISH (64 B), MQTT 3.1.1', 200_000, () => {
  for (let i = 0; i < 200_000; i++) encode({ cmd: 'publish', topic: 'bench/1', payload, qos: 0, retain: false, dup: false }, 4)
})
// MQTT 5 as scenario 7 sends it: a topic alias (empty topic) and two user properties.
const userProperties = { source: 'pub-0', unit: 'C' }
const chunk5 = Buffer.concat(Array(1000).fill(encode({ cmd: 'publish', topic: '', payload, qos: 0, retain: false, dup: false, properties: { topicAlias: 1, userProperties } }, 5)))
const reader5 = new PacketReader(1 << 20, { onPacket: () => void packets++, onParseError: (e) => console.error(e) })
reader5.feed(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'm', clean: true, keepalive: 0 }, 5))
reader5.connected(5, false)
time('frame + decode, MQTT 5 with alias + 2 user properties', 200_000, () => {
  for (let i = 0; i < 200; i++) reader5.feed(chunk5)
})
time('encode, MQTT 5 with 2 user properties', 200_000, () => {
  for (let i = 0; i < 200_000; i++) encode({ cmd: 'publish', topic: 'bench/1', payload, qos: 0, retain: false, dup: false, properties: { userProperties } }, 5)
})

/** A broker with no listener, and a "socket" that takes every byte, for clients driven in-process. */
function inProcessBroker(): Broker {
  const config = resolveConfig({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1 }], log: { level: 'warn' }, sys: { intervalSeconds: 0 } })
  return new Broker(config, createLogger('warn'))
}
const sink = () => ({ write: (bytes: Uint8Array) => bytes.length, end() {}, remoteAddress: '127.0.0.1' })

/** An in-process client, accepted and CONNECTed (clean, 3.1.1). */
function connected(broker: Broker, clientId: string) {
  const client = broker.accept(sink())
  client.data(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 0 }, 4))
  return client
}

// One message through the whole broker (parse, route, encode, write) between two in-process clients whose
// "socket" takes every byte: time and heap objects allocated per message (the garbage the hot path makes).
async function routed(qos: 0 | 1): Promise<void> {
  const broker = inProcessBroker()
  const pub = connected(broker, 'pub')
  const sub = connected(broker, 'sub')
  sub.data(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'lat', qos }] }, 4))
  const N = 2000
  const publishes = Array.from({ length: N }, (_, i) => encode({ cmd: 'publish', topic: 'lat', payload: Buffer.alloc(16, i), qos, messageId: qos ? i + 1 : undefined, retain: false, dup: false }, 4))
  const pubacks = Array.from({ length: N }, (_, i) => encode({ cmd: 'puback', messageId: i + 1 }, 4))
  const run = async (n: number) => {
    for (let i = 0; i < n; i++) {
      pub.data(publishes[i]!)
      if (qos) sub.data(pubacks[i]!)
      await 0 // the end-of-tick flush
    }
  }
  await run(N) // warm up (JIT)
  Bun.gc(true)
  const before = heapStats().objectTypeCounts as Record<string, number>
  const t0 = Bun.nanoseconds()
  await run(1000)
  const ns = Bun.nanoseconds() - t0
  const after = heapStats().objectTypeCounts as Record<string, number>
  const count = (type: string) => ((after[type] ?? 0) - (before[type] ?? 0)) / 1000
  const objects = Object.keys(after).reduce((sum, type) => sum + Math.max(0, count(type)), 0)
  console.log(`${`route QoS ${qos}: PUBLISH in, PUBLISH out${qos ? ', PUBACK both ways' : ''}`.padEnd(52)} ${(ns / 1000 / 1000).toFixed(1).padStart(12)} µs/msg ${objects.toFixed(0).padStart(4)} objects/msg (arrays ${count('Array').toFixed(0)}, closures ${count('JSLexicalEnvironment').toFixed(0)})`)
  broker.close()
}
await routed(0)
await routed(1)

// Scenario 1 in-process: four publishers, 500 PUBLISHes per read, to `subscribers` clients of bench/#; with
// `topics` > 1, scenarios 1b/1c: each publisher cycles over that many topics, every message its own payload.
async function fanIn(subscribers: number, topics = 1): Promise<void> {
  const broker = inProcessBroker()
  for (let i = 0; i < subscribers; i++) connected(broker, `s${i}`).data(encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] }, 4))
  const pubs = [0, 1, 2, 3].map((i) => connected(broker, `p${i}`))
  const perPublisher = Math.max(1, Math.ceil(topics / 500))
  const reads = pubs.map((_, i) =>
    Array.from({ length: perPublisher }, (_, b) => {
      if (topics === 1) return Buffer.concat(Array(500).fill(encode({ cmd: 'publish', topic: `bench/${i}`, payload, qos: 0, retain: false, dup: false }, 4)))
      return Buffer.concat(Array.from({ length: 500 }, (_, k) => encode({ cmd: 'publish', topic: `bench/${i}/device-${(b * 500 + k) % topics}/temperature`, payload: Buffer.from(`${b} ${k} ${i}`.padEnd(64)), qos: 0, retain: false, dup: false }, 4)))
    }),
  )
  const run = async (rounds: number) => {
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < 4; i++) pubs[i]!.data(reads[i]![r % perPublisher]!)
      await 0 // the end-of-tick flush
    }
  }
  await run(500) // warm up (JIT)
  const before = heapStats().objectTypeCounts as Record<string, number>
  const t0 = Bun.nanoseconds()
  await run(500)
  const ns = (Bun.nanoseconds() - t0) / (500 * 4 * 500)
  const after = heapStats().objectTypeCounts as Record<string, number>
  const objects = Object.keys(after).reduce((sum, type) => sum + Math.max(0, (after[type] ?? 0) - (before[type] ?? 0)), 0) / (500 * 4 * 500)
  const shape = topics === 1 ? '' : `, ${topics.toLocaleString('en-US')} topics each`
  console.log(`${`fan-in: 4 publishers, 500 per read, ${subscribers} subscriber${subscribers > 1 ? 's' : ''}${shape}`.padEnd(52)} ${(1e9 / ns).toFixed(0).padStart(12)} msg/s ${ns.toFixed(0).padStart(6)} ns/msg ${objects.toFixed(1)} objects/msg`)
  broker.close()
}
await fanIn(1)
await fanIn(20)
await fanIn(1, 100)
await fanIn(1, 25_000)

// One connection accepted and CONNECTed (clean, 3.1.1): time and objects per connection, and what stays on the
// heap while it idles (the broker's share of scenario 5's memory; the socket's own is Bun's).
async function connects(): Promise<void> {
  const broker = inProcessBroker()
  const N = 5000
  const packets = Array.from({ length: 2 * N }, (_, i) => encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `idle-${i}`, clean: true, keepalive: 60 }, 4))
  const open = (from: number, n: number) => {
    for (let i = from; i < from + n; i++) broker.accept(sink()).data(packets[i]!)
  }
  open(0, N) // warm up (JIT)
  await 0
  Bun.gc(true)
  const before = heapStats()
  const t0 = Bun.nanoseconds()
  open(N, N)
  await 0
  const ns = Bun.nanoseconds() - t0
  Bun.gc(true)
  const after = heapStats()
  const counts = (s: typeof before) => s.objectTypeCounts as Record<string, number>
  const kept = Object.keys(counts(after)).reduce((sum, type) => sum + Math.max(0, (counts(after)[type] ?? 0) - (counts(before)[type] ?? 0)), 0) / N
  const bytes = (after.heapSize - before.heapSize) / N
  console.log(`${'connect: accept + CONNECT + CONNACK, kept open'.padEnd(52)} ${(ns / N / 1000).toFixed(1).padStart(12)} µs/conn ${kept.toFixed(0).padStart(4)} objects and ${bytes.toFixed(0)} B heap kept per connection`)
  broker.close()
}
await connects()
