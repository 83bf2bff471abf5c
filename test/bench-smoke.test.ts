/** A one-second smoke of the benchmark harness, so it cannot rot. Figures are not checked: only that it runs. */
import { afterAll, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { repoRoot } from './helpers/process.ts'

const out = mkdtempSync(join(tmpdir(), 'midge-bench-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

test('bun run bench --smoke runs Midge and Aedes (and Mosquitto when installed) through three scenarios', async () => {
  const brokers = ['midge', 'aedes', ...(Bun.which('mosquitto') || Bun.which('/usr/sbin/mosquitto') ? ['mosquitto'] : [])]
  const proc = Bun.spawn([process.execPath, 'bench/run.ts', '--smoke', '--scenarios', 'fan-in,qos1,idle', '--brokers', brokers.join(','), '--out', out], { cwd: repoRoot, stdout: 'pipe', stderr: 'pipe' })
  const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()])
  expect(stderr).not.toContain('failed')
  expect(code).toBe(0)
  const report = JSON.parse(readFileSync(join(out, 'smoke.json'), 'utf8')) as { results: Record<string, Record<string, { median: Record<string, number> }>> }
  for (const scenario of ['fan-in', 'qos1', 'idle']) for (const broker of brokers) expect(report.results[scenario]![broker]!.median).toBeDefined()
  expect(report.results['fan-in']!.midge!.median.msgsPerSec).toBeGreaterThan(0)
  expect(report.results.idle!.midge!.median.connectsPerSec).toBeGreaterThan(0) // the connection threads opened them
}, 60_000)
