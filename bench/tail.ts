/**
 * Scenario 4's latency tail, pooled: each broker in turn (fresh process, the same cold second, warm-up and pause
 * as scenario 4), `reps` rounds, then every round's samples together per broker: p50 to p999 and the share of
 * messages slower than 0.1 to 1 ms. A single 10 s run's p99 rests on its slowest 200 messages and moves by a
 * quarter from run to run on a shared machine; pooled rounds say where two brokers' tails really differ
 * (below p99: per-message cost; beyond p995: pauses such as garbage collection).
 *
 *   bun bench/tail.ts [brokers=midge,mosquitto,relay] [reps=5] [qos=0] [seconds=10]
 */
import { available, type BrokerName, startBroker } from './brokers.ts'
import { fullParams, latencyTraffic } from './scenarios.ts'

const brokers = (Bun.argv[2] ?? 'midge,mosquitto,relay').split(',').filter((b) => available(b as BrokerName)) as BrokerName[]
const reps = Number(Bun.argv[3] ?? 5)
const qos = Number(Bun.argv[4] ?? 0) === 1 ? 1 : 0
const seconds = Number(Bun.argv[5] ?? 10)
const params = fullParams(seconds)

const pooled = new Map<BrokerName, number[]>(brokers.map((b) => [b, []]))
for (let rep = 0; rep < reps; rep++) {
  for (const name of brokers) {
    const broker = await startBroker(name)
    try {
      const { samples } = (await latencyTraffic(broker.port, qos, params)).warm
      pooled.get(name)!.push(...samples)
      const sorted = samples.sort((a, b) => a - b)
      console.log(`round ${rep + 1} ${name}: p99 ${sorted[Math.floor(sorted.length * 0.99)]?.toFixed(3)} ms`)
    } finally {
      await broker.stop()
    }
  }
}

const QUANTILES = [0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
const OVER_MS = [0.1, 0.15, 0.2, 0.3, 0.5, 1]
console.log(`\nQoS ${qos}, ${params.latencyRate} msg/s, ${reps} x ${seconds} s pooled; latency in ms, then the share of messages slower than each bound`)
console.log(['broker', 'n', ...QUANTILES.map((q) => `p${String(q * 100).replace('.', '')}`), ...OVER_MS.map((ms) => `>${ms}`)].join('\t'))
for (const [name, samples] of pooled) {
  samples.sort((a, b) => a - b)
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(3)
  const over = (ms: number) => `${((samples.filter((s) => s > ms).length / samples.length) * 100).toFixed(2)}%`
  console.log([name, samples.length, ...QUANTILES.map(at), ...OVER_MS.map(over)].join('\t'))
}
