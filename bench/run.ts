/**
 * The benchmark: Midge side by side with Mosquitto (twice: as installed, and with max_queued_messages 0 and
 * set_tcp_nodelay true) and Aedes, on 127.0.0.1, alternating brokers, several repetitions; reports medians,
 * min–max and Midge's advantage over each peer, as Markdown and JSON in bench/results/.
 *
 *   bun run bench [--scenarios fan-in,qos1] [--brokers midge,aedes] [--reps 3] [--duration 10] [--idle 10000] [--smoke]
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { available, type BrokerName, startBroker } from './brokers.ts'
import { type Figures, fullParams, type Params, type Scenario, scenarios } from './scenarios.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    scenarios: { type: 'string' },
    brokers: { type: 'string' },
    reps: { type: 'string' },
    duration: { type: 'string' },
    idle: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    out: { type: 'string', default: join(import.meta.dir, 'results') },
  },
})

const smoke = values.smoke
const params: Params = smoke
  ? { durationS: 1, fanOutSubscribers: 20, fanOutRate: 500, latencyRate: 500, latencyWarmup: 1000, idleConnections: 200, retainedCount: 2000 }
  : { ...fullParams(Number(values.duration ?? 10)), ...(values.idle ? { idleConnections: Number(values.idle) } : {}) }
const reps = Number(values.reps ?? (smoke ? 1 : 3))
const wanted = values.scenarios?.split(',')
const chosen = scenarios.filter((s) => !wanted || wanted.includes(s.id))
const brokers = ((values.brokers?.split(',') as BrokerName[]) ?? ['midge', 'midge-default', 'mosquitto', 'mosquitto-nq', 'aedes']).filter((b) => {
  if (available(b)) return true
  console.error(`bench: ${b} is not installed; skipped`)
  return false
})

type Results = Record<string, Record<string, Figures[]>> // scenario → broker → one Figures per repetition
const results: Results = {}

for (const scenario of chosen) {
  results[scenario.id] = {}
  for (let rep = 0; rep < reps; rep++) {
    // Alternate the order each repetition so no broker always runs first (warm caches, a busy neighbour).
    const order = brokers.map((_, i) => brokers[(i + rep) % brokers.length]!).filter((b) => !scenario.skip?.(b))
    for (const name of order) {
      const broker = await startBroker(name)
      try {
        const figures = await scenario.run(broker, params)
        ;(results[scenario.id]![name] ??= []).push(figures)
        console.error(`${scenario.id} ${name} #${rep + 1}: ${format(figures[scenario.headline.key]!)} ${scenario.headline.unit}`)
      } catch (error) {
        console.error(`${scenario.id} ${name} #${rep + 1}: failed: ${(error as Error).message}`)
      } finally {
        await broker.stop()
      }
    }
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

function format(x: number): string {
  if (!Number.isFinite(x)) return 'n/a'
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US')
  if (Math.abs(x) >= 10) return x.toFixed(1)
  return x.toFixed(3)
}

/** Midge's advantage: > 1 means Midge is better (more throughput, or less latency, memory or time). */
function advantage(scenario: Scenario, midge: number, peer: number): number {
  return scenario.headline.better === 'higher' ? midge / peer : peer / midge
}

const summary: Record<string, unknown> = {}
const md: string[] = []
const bunVersion = Bun.version
const mosquittoVersion = Bun.spawnSync(['sh', '-c', 'mosquitto -h 2>&1 | head -1']).stdout.toString().trim()
md.push(`# Midge benchmark`, '')
md.push(`${new Date().toISOString().slice(0, 10)} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · ${(totalmem() / 2 ** 30).toFixed(0)} GiB · Bun ${bunVersion} · ${mosquittoVersion || 'mosquitto n/a'} · Aedes ${JSON.parse(readFileSync(join(import.meta.dir, '../node_modules/aedes/package.json'), 'utf8')).version} on Node ${Bun.spawnSync(['node', '--version']).stdout.toString().trim()}`)
md.push('', `Loopback, ${reps} repetition(s), ${params.durationS} s per timed run${smoke ? ' (smoke run: tiny sizes, not figures to quote)' : ''}. Medians, with min–max. "vs" is Midge's advantage over that broker (above 1: Midge better). CPU is the share of one core used by the broker and by the load generator.`, '')

for (const scenario of chosen) {
  const per = results[scenario.id]!
  const keys = [...new Set(Object.values(per).flatMap((runs) => runs.flatMap((f) => Object.keys(f))))]
  md.push(`## ${scenario.title}`, '')
  md.push(`| broker | ${keys.join(' | ')} | vs Midge (${scenario.headline.key}) |`)
  md.push(`|---|${keys.map(() => '---').join('|')}|---|`)
  const midgeHeadline = per.midge ? median(per.midge.map((f) => f[scenario.headline.key]!)) : NaN
  summary[scenario.id] = {}
  for (const [name, runs] of Object.entries(per)) {
    const cells = keys.map((k) => {
      const xs = runs.map((f) => f[k]!).filter((x) => x !== undefined)
      return xs.length > 1 ? `${format(median(xs))} (${format(Math.min(...xs))}–${format(Math.max(...xs))})` : format(xs[0] ?? NaN)
    })
    const headline = median(runs.map((f) => f[scenario.headline.key]!))
    // (No ratio when the bare broker was not in this run: there is nothing to compare with.)
    const ratio = name === 'midge' || Number.isNaN(midgeHeadline) ? '' : `${advantage(scenario, midgeHeadline, headline).toFixed(2)}×`
    md.push(`| ${name} | ${cells.join(' | ')} | ${ratio} |`)
    ;(summary[scenario.id] as Record<string, unknown>)[name] = { median: Object.fromEntries(keys.map((k) => [k, median(runs.map((f) => f[k]!))])), runs, midgeAdvantage: name === 'midge' || Number.isNaN(midgeHeadline) ? null : advantage(scenario, midgeHeadline, headline) }
  }
  md.push('')
}

mkdirSync(values.out!, { recursive: true })
const base = smoke ? 'smoke' : 'latest'
writeFileSync(join(values.out!, `${base}.md`), md.join('\n'))
writeFileSync(join(values.out!, `${base}.json`), JSON.stringify({ date: new Date().toISOString(), params, reps, results: summary }, null, 2))
console.log(md.join('\n'))
