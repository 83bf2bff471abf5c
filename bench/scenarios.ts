/**
 * The benchmark scenarios. Each runs against one broker on 127.0.0.1, is bounded in count and time,
 * and returns its figures, including the CPU the broker and this load generator used.
 */
import { cpus } from 'node:os'
import type { Packet } from 'mqtt-packet'
import { BenchClient, now } from './client.ts'
import { cpuSeconds, type RunningBroker, rssBytes } from './brokers.ts'
import { Connectors } from './connector.ts'

export interface Params {
  durationS: number
  fanOutSubscribers: number
  fanOutRate: number
  latencyRate: number
  /** Messages sent before the latency is measured. */
  latencyWarmup: number
  idleConnections: number
  retainedCount: number
}

/** The sizes the issue sets (a full run), for `durationS` seconds per timed run. */
export function fullParams(durationS: number): Params {
  return { durationS, fanOutSubscribers: 200, fanOutRate: 1000, latencyRate: 2000, latencyWarmup: 20_000, idleConnections: 10_000, retainedCount: 100_000 }
}

export type Figures = Record<string, number>

export interface Scenario {
  id: string
  title: string
  /** The headline figure and whether more is better. */
  headline: { key: string; unit: string; better: 'higher' | 'lower' }
  /** Brokers that cannot run it (Aedes speaks no MQTT 5). */
  skip?: (broker: string) => boolean
  run(broker: RunningBroker, p: Params): Promise<Figures>
}

/** Waits until `count()` stops changing for `quietMs` (or `maxMs` passes); returns the time of the last change. */
async function settle(count: () => number, quietMs = 300, maxMs = 10_000): Promise<number> {
  const start = now()
  let last = count()
  let changedAt = now()
  while (now() - start < maxMs) {
    await Bun.sleep(20)
    const c = count()
    if (c !== last) {
      last = c
      changedAt = now()
    } else if (now() - changedAt >= quietMs) break
  }
  return changedAt
}

async function measured(broker: RunningBroker, body: () => Promise<Figures>): Promise<Figures> {
  const brokerCpu0 = cpuSeconds(broker.pid)
  const loadCpu0 = process.cpuUsage()
  const t0 = now()
  const figures = await body()
  const wall = (now() - t0) / 1000
  const load = process.cpuUsage(loadCpu0)
  return { ...figures, brokerCpu: (cpuSeconds(broker.pid) - brokerCpu0) / wall, loadCpu: (load.user + load.system) / 1e6 / wall }
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

function timestamped(size: number): Buffer {
  const payload = Buffer.alloc(size)
  payload.writeDoubleLE(now(), 0)
  return payload
}

const latencyOf = (payload: Uint8Array) => now() - Buffer.from(payload.buffer, payload.byteOffset, 8).readDoubleLE(0)

/** Scenario 1 and 7: four publishers flat out, QoS 0, 64-byte payloads, distinct topics, one `bench/#` subscriber. */
function fanIn(version: 4 | 5): Scenario['run'] {
  return (broker, p) =>
    measured(broker, async () => {
      const sub = await BenchClient.connect(broker.port, 'fanin-sub', { version })
      await sub.subscribe('bench/#', 0)
      let received = 0
      sub.onPublish = () => received++
      const pubs = await Promise.all([0, 1, 2, 3].map((i) => BenchClient.connect(broker.port, `fanin-pub-${i}`, { version })))
      const payload = Buffer.alloc(64, 120)
      const PER_BATCH = 500
      const batches = pubs.map((pub, i) => {
        const props = version === 5 ? { topicAlias: 1, userProperties: { source: `pub-${i}`, unit: 'C' } } : undefined
        const first = pub.encode({ cmd: 'publish', topic: `bench/${i}`, payload, qos: 0, retain: false, dup: false, properties: props } as Packet)
        // MQTT 5: the alias is set by the first packet; every later one sends an empty topic and the alias.
        const next = pub.encode({ cmd: 'publish', topic: version === 5 ? '' : `bench/${i}`, payload, qos: 0, retain: false, dup: false, properties: props } as Packet)
        return { first, batch: Buffer.concat(Array(PER_BATCH).fill(next)) }
      })
      let sent = 0
      const start = now()
      const end = start + p.durationS * 1000
      await Promise.all(
        pubs.map(async (pub, i) => {
          await pub.write(batches[i]!.first)
          sent++
          while (now() < end && !pub.closed) {
            await pub.write(batches[i]!.batch)
            sent += PER_BATCH
          }
        }),
      )
      const last = await settle(() => received)
      for (const c of [sub, ...pubs]) c.end()
      return { msgsPerSec: received / ((last - start) / 1000), sentPerSec: sent / ((end - start) / 1000), delivered: received / sent }
    })
}

/**
 * Scenarios 1b and 1c: traffic shaped like devices, not like a benchmark. Four publishers flat out as in scenario 1,
 * but every message has its own payload (a sequence number and the topic) and each publisher cycles over
 * `topicsPerPublisher` topics, one subscriber on `fleet/#`. The batches are built before the clock starts.
 */
function fanInVaried(topicsPerPublisher: number): Scenario['run'] {
  return (broker, p) =>
    measured(broker, async () => {
      const sub = await BenchClient.connect(broker.port, 'varied-sub')
      await sub.subscribe('fleet/#', 0)
      let received = 0
      sub.onPublish = () => received++
      const pubs = await Promise.all([0, 1, 2, 3].map((i) => BenchClient.connect(broker.port, `varied-pub-${i}`)))
      const PER_BATCH = 500
      let seq = 0
      const batches = pubs.map((pub, i) => {
        // Enough batches to go through every topic once; each packet names its topic and carries its own bytes.
        const count = Math.max(1, Math.ceil(topicsPerPublisher / PER_BATCH))
        return Array.from({ length: count }, (_, b) => {
          const packets: Buffer[] = []
          for (let k = 0; k < PER_BATCH; k++) {
            const topic = `fleet/${i}/device-${(b * PER_BATCH + k) % topicsPerPublisher}/temperature`
            const payload = Buffer.alloc(64, 120)
            payload.write(`${seq++} ${topic}`)
            packets.push(pub.encode({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }))
          }
          return Buffer.concat(packets)
        })
      })
      let sent = 0
      const start = now()
      const end = start + p.durationS * 1000
      await Promise.all(
        pubs.map(async (pub, i) => {
          for (let b = 0; now() < end && !pub.closed; b++) {
            await pub.write(batches[i]![b % batches[i]!.length]!)
            sent += PER_BATCH
          }
        }),
      )
      const last = await settle(() => received)
      for (const c of [sub, ...pubs]) c.end()
      return { msgsPerSec: received / ((last - start) / 1000), sentPerSec: sent / ((end - start) / 1000), delivered: received / sent }
    })
}

/** Scenario 2: one publisher at a fixed rate to many subscribers of one topic. */
const fanOut: Scenario['run'] = (broker, p) =>
  measured(broker, async () => {
    const subs: BenchClient[] = []
    for (let i = 0; i < p.fanOutSubscribers; i += 20) {
      const group = await Promise.all(Array.from({ length: Math.min(20, p.fanOutSubscribers - i) }, (_, k) => BenchClient.connect(broker.port, `fanout-sub-${i + k}`)))
      subs.push(...group)
    }
    await Promise.all(subs.map((s) => s.subscribe('fan/out', 0)))
    let delivered = 0
    const latencies: number[] = []
    subs.forEach((s, i) => {
      s.onPublish = (m) => {
        delivered++
        if (i % 10 === 0) latencies.push(latencyOf(m.payload!))
      }
    })
    const pub = await BenchClient.connect(broker.port, 'fanout-pub')
    const tickMs = 5
    const perTick = Math.max(1, Math.round((p.fanOutRate * tickMs) / 1000))
    let sent = 0
    const start = now()
    const end = start + p.durationS * 1000
    while (now() < end) {
      const tick = now()
      const packets = []
      for (let k = 0; k < perTick; k++) packets.push(pub.encode({ cmd: 'publish', topic: 'fan/out', payload: timestamped(16), qos: 0, retain: false, dup: false }))
      await pub.write(Buffer.concat(packets))
      sent += perTick
      const wait = tickMs - (now() - tick)
      if (wait > 0) await Bun.sleep(wait)
    }
    const last = await settle(() => delivered)
    for (const c of [pub, ...subs]) c.end()
    latencies.sort((a, b) => a - b)
    return { deliveriesPerSec: delivered / ((last - start) / 1000), completeness: delivered / (sent * subs.length), p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) }
  })

/** Scenario 3: QoS 1 end to end, each of four publishers keeping 64 messages un-acknowledged. */
const qos1: Scenario['run'] = (broker, p) =>
  measured(broker, async () => {
    const sub = await BenchClient.connect(broker.port, 'q1-sub')
    await sub.subscribe('q1/#', 1)
    let received = 0
    sub.onPublish = () => received++
    const pubs = await Promise.all([0, 1, 2, 3].map((i) => BenchClient.connect(broker.port, `q1-pub-${i}`)))
    const payload = Buffer.alloc(64, 120)
    let sent = 0
    let acked = 0
    const start = now()
    const end = start + p.durationS * 1000
    await Promise.all(
      pubs.map(
        (pub, i) =>
          new Promise<void>((resolve) => {
            let outstanding = 0
            let id = 0
            const template = pub.encode({ cmd: 'publish', topic: `q1/${i}`, payload, qos: 1, messageId: 1, retain: false, dup: false })
            const idAt = 2 + 2 + `q1/${i}`.length // fixed header (2) + topic length (2) + topic
            const fill = () => {
              if (now() >= end) {
                if (outstanding === 0) resolve()
                return
              }
              const n = 64 - outstanding
              if (n <= 0) return
              const out = Buffer.alloc(template.length * n)
              for (let k = 0; k < n; k++) {
                id = (id % 65535) + 1
                template.copy(out, k * template.length)
                out.writeUInt16BE(id, k * template.length + idAt)
              }
              outstanding += n
              sent += n
              void pub.write(out)
            }
            pub.onAck = (type) => {
              if (type !== 4) return
              outstanding--
              acked++
              if (outstanding < 32 || now() >= end) fill()
            }
            fill()
            setTimeout(resolve, p.durationS * 1000 + 10_000) // bounded: never wait for ever
          }),
      ),
    )
    const ackedAt = now()
    await settle(() => received)
    for (const c of [sub, ...pubs]) c.end()
    return { completedPerSec: acked / ((ackedAt - start) / 1000), delivered: received / sent }
  })

/**
 * Scenario 4: latency at a fixed 2,000 messages/s, in the steady state. A broker on a JIT (Midge, Aedes) runs
 * slower code until its hot path is compiled, which at 2,000 msg/s takes several seconds; a broker runs for days,
 * so the headline is measured after a warm-up that every broker gets alike: `latencyWarmup` messages, each sent
 * once the last is delivered, then a second's pause. The first second at the fixed rate, before that warm-up, is
 * reported too, as `coldP99Ms`.
 */
function latency(qos: 0 | 1): Scenario['run'] {
  return (broker, p) =>
    measured(broker, async () => {
      const { cold, warm } = await latencyTraffic(broker.port, qos, p)
      const samples = warm.samples.sort((a, b) => a - b)
      return {
        p50Ms: percentile(samples, 0.5),
        p99Ms: percentile(samples, 0.99),
        p999Ms: percentile(samples, 0.999),
        delivered: samples.length / warm.sent,
        coldP99Ms: percentile(cold.samples.sort((a, b) => a - b), 0.99),
      }
    })
}

/**
 * Scenario 4's traffic on one broker (also run by bench/tail.ts): the cold second at the fixed rate, the warm-up
 * and a second's pause, then `durationS` at the fixed rate; each phase's latencies (ms) and messages sent.
 */
export async function latencyTraffic(port: number, qos: 0 | 1, p: Pick<Params, 'latencyRate' | 'latencyWarmup' | 'durationS'>) {
  const sub = await BenchClient.connect(port, `lat${qos}-sub`)
  await sub.subscribe('lat', qos)
  const pub = await BenchClient.connect(port, `lat${qos}-pub`)
  const ids = { next: 0 }
  const cold = await atFixedRate(pub, sub, qos, p.latencyRate, 1000, ids)
  await warmUp(pub, sub, qos, p.latencyWarmup, ids)
  await Bun.sleep(1000)
  const warm = await atFixedRate(pub, sub, qos, p.latencyRate, p.durationS * 1000, ids)
  pub.end()
  sub.end()
  return { cold, warm }
}

/** Publishes at `rate` messages/s for `ms`, each with its send time; returns every delivery's latency. */
async function atFixedRate(pub: BenchClient, sub: BenchClient, qos: 0 | 1, rate: number, ms: number, ids: { next: number }) {
  const samples: number[] = []
  sub.onPublish = (m) => samples.push(latencyOf(m.payload!))
  const interval = 1000 / rate
  let sent = 0
  const start = now()
  while (now() - start < ms) {
    // Send what is due, one packet at a time (each with its own timestamp).
    const due = Math.floor((now() - start) / interval) - sent
    for (let k = 0; k < due; k++) {
      ids.next = (ids.next % 65535) + 1
      void pub.send({ cmd: 'publish', topic: 'lat', payload: timestamped(16), qos, messageId: qos ? ids.next : undefined, retain: false, dup: false })
      sent++
    }
    await Bun.sleep(1)
  }
  await settle(() => samples.length)
  sub.onPublish = () => {}
  return { samples, sent }
}

/**
 * Sends `count` messages one at a time, each once the last is delivered (at most 20 s in all): the same shape as
 * the measured traffic, one packet per read and per write, so the broker's per-read and per-write code is what
 * gets hot. (Batches of 500 warmed up the per-packet code but left the per-read code to be compiled by the
 * optimizing JIT during the measured window.)
 */
async function warmUp(pub: BenchClient, sub: BenchClient, qos: 0 | 1, count: number, ids: { next: number }): Promise<void> {
  let delivered: (() => void) | null = null
  // The generator's own per-message code (timestamps, latency) warms up too, alike for every broker.
  sub.onPublish = (m) => {
    if (latencyOf(m.payload!) >= 0) delivered?.()
  }
  // A message lost or late by over a second does not stall the loop: the watchdog moves it on.
  let sentAt = now()
  const watchdog = setInterval(() => now() - sentAt > 1000 && delivered?.(), 250)
  const deadline = now() + 20_000
  for (let k = 0; k < count && now() < deadline && !pub.closed; k++) {
    ids.next = (ids.next % 65535) + 1
    const arrived = new Promise<void>((resolve) => (delivered = resolve))
    sentAt = now()
    void pub.send({ cmd: 'publish', topic: 'lat', payload: timestamped(16), qos, messageId: qos ? ids.next : undefined, retain: false, dup: false })
    await arrived
  }
  clearInterval(watchdog)
  sub.onPublish = () => {}
}

/**
 * Scenario 5: idle connections: what each costs the broker in memory, and how fast they connect. The generator
 * opens them on one thread per core (bench/connector.ts): on one thread, the handshakes' kernel work put the
 * generator at a full core before the broker. Two storms of `idleConnections`: the first is measured for memory
 * (after a warm-up of a tenth as many, kept open, that pays one-time costs such as mqtt-packet's number cache);
 * it is closed, and the second, into a warm broker, is measured for the connect rate and the CPU per connection
 * (during the first, JSC was still compiling Midge's connect path: ~9 µs of broker CPU per connection). The
 * first storm's rate is reported as `coldConnectsPerSec`.
 */
const idle: Scenario['run'] = (broker, p) =>
  measured(broker, async () => {
    const threads = Math.max(1, Math.min(2, cpus().length))
    const kept = new Connectors(threads)
    const storm = new Connectors(threads)
    try {
      // A tenth as many again first (fewer when that would pass the machine's 20,000 descriptors per process).
      await kept.connect(broker.port, 'idle-warmup', Math.max(100, Math.min(Math.ceil(p.idleConnections / 10), 19_500 - p.idleConnections)))
      await Bun.sleep(1000)
      const rss0 = rssBytes(broker.pid)
      let start = now()
      const first = await storm.connect(broker.port, 'idle', p.idleConnections)
      const coldConnectsPerSec = first / ((now() - start) / 1000)
      await Bun.sleep(1000)
      const bytesPerConnection = (rssBytes(broker.pid) - rss0) / first
      await storm.closeHeld()
      await Bun.sleep(1000)
      const brokerCpu0 = cpuSeconds(broker.pid)
      const loadCpu0 = process.cpuUsage() // the whole generator process, its connection threads included
      start = now()
      const opened = await storm.connect(broker.port, 'idle-again', p.idleConnections)
      const connectsPerSec = opened / ((now() - start) / 1000)
      const brokerUsPerConnect = ((cpuSeconds(broker.pid) - brokerCpu0) * 1e6) / opened
      const load = process.cpuUsage(loadCpu0)
      return { bytesPerConnection, connectsPerSec, brokerUsPerConnect, loadUsPerConnect: (load.user + load.system) / opened, coldConnectsPerSec }
    } finally {
      await Promise.all([kept.closeAll(), storm.closeAll()])
      await Bun.sleep(200)
    }
  })

/** Scenario 6: many retained messages: how fast they are stored, and how fast a fresh `#` subscriber gets them all. */
const retained: Scenario['run'] = (broker, p) =>
  measured(broker, async () => {
    const pub = await BenchClient.connect(broker.port, 'ret-pub')
    const payload = Buffer.alloc(32, 120)
    const start = now()
    const CHUNK = 1000
    for (let i = 0; i < p.retainedCount; i += CHUNK) {
      const packets = []
      for (let k = i; k < Math.min(i + CHUNK, p.retainedCount); k++) packets.push(pub.encode({ cmd: 'publish', topic: `ret/${k % 100}/${k}`, payload, qos: 0, retain: true, dup: false }))
      await pub.write(Buffer.concat(packets))
    }
    // A QoS 1 message after them: its PUBACK means the broker has handled every one before it.
    const done = pub.wait(4)
    await pub.send({ cmd: 'publish', topic: 'ret-done', payload, qos: 1, messageId: 1, retain: false, dup: false })
    await done
    const stored = (now() - start) / 1000
    const sub = await BenchClient.connect(broker.port, 'ret-sub')
    let received = 0
    sub.onPublish = () => received++
    const t0 = now()
    await sub.subscribe('ret/#', 0)
    const deadline = t0 + 60_000
    while (received < p.retainedCount && now() < deadline) await Bun.sleep(5)
    const receiveS = (now() - t0) / 1000
    // Leave the broker clean for the next run.
    pub.end()
    sub.end()
    return { storePerSec: p.retainedCount / stored, receiveAllS: receiveS, receivedShare: received / p.retainedCount }
  })

export const scenarios: Scenario[] = [
  { id: 'fan-in', title: '1. Fan-in, QoS 0: 4 publishers, 64 B, 1 subscriber on bench/#', headline: { key: 'msgsPerSec', unit: 'msg/s', better: 'higher' }, run: fanIn(4) },
  { id: 'fan-in-topics', title: '1b. Fan-in as scenario 1, each message its own payload, 100 topics per publisher', headline: { key: 'msgsPerSec', unit: 'msg/s', better: 'higher' }, run: fanInVaried(100) },
  { id: 'fan-in-fleet', title: '1c. Fan-in as 1b over 100,000 topics (25,000 per publisher: a fleet of devices)', headline: { key: 'msgsPerSec', unit: 'msg/s', better: 'higher' }, run: fanInVaried(25_000) },
  { id: 'fan-out', title: '2. Fan-out: 1 publisher at a fixed rate to many subscribers', headline: { key: 'p99Ms', unit: 'ms p99', better: 'lower' }, run: fanOut },
  { id: 'qos1', title: '3. QoS 1 end to end, 64 un-acked per publisher', headline: { key: 'completedPerSec', unit: 'msg/s', better: 'higher' }, run: qos1 },
  { id: 'latency-qos0', title: '4a. Latency at a fixed rate, QoS 0', headline: { key: 'p99Ms', unit: 'ms p99', better: 'lower' }, run: latency(0) },
  { id: 'latency-qos1', title: '4b. Latency at a fixed rate, QoS 1', headline: { key: 'p99Ms', unit: 'ms p99', better: 'lower' }, run: latency(1) },
  { id: 'idle', title: '5. Idle connections: memory per connection', headline: { key: 'bytesPerConnection', unit: 'B/conn', better: 'lower' }, run: idle },
  // The relay (Bun's floor, bench/relay.ts) keeps no retained messages and speaks no MQTT 5.
  { id: 'retained', title: '6. Retained messages: a fresh # subscriber receives them all', headline: { key: 'receiveAllS', unit: 's', better: 'lower' }, skip: (b) => b.startsWith('relay'), run: retained },
  { id: 'fan-in-v5', title: '7. Fan-in as scenario 1, MQTT 5 with topic aliases and user properties', headline: { key: 'msgsPerSec', unit: 'msg/s', better: 'higher' }, skip: (b) => b === 'aedes' || b.startsWith('relay'), run: fanIn(5) },
]
