/**
 * The npm package as a user gets it: `npm pack`, installed into an empty project (from the npm cache, as CI's
 * install left it), then `npx midge` (Node launching Bun) and `bunx midge`: --version, init, and a broker from the
 * init's config, which imports `midge` by name from node_modules.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from '../bench/client.ts'
import { VERSION } from '../src/sys.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { repoRoot } from './helpers/process.ts'

describe('the npm package', () => {
  let dir: string
  let project: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'midge-package-'))
    const packed = Bun.spawnSync(['npm', 'pack', '--pack-destination', dir], { cwd: repoRoot, stderr: 'pipe' })
    if (packed.exitCode !== 0) throw new Error(`npm pack failed: ${packed.stderr.toString()}`)
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!
    project = join(dir, 'project')
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-midge', version: '1.0.0', private: true }))
    const installed = Bun.spawnSync(['npm', 'install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, tarball)], { cwd: project, stderr: 'pipe' })
    if (installed.exitCode !== 0) throw new Error(`npm install of the package failed: ${installed.stderr.toString()}`)
  }, 120_000)
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('the package holds what a user needs, not the tests or benchmarks', () => {
    const files = readdirSync(join(project, 'node_modules', 'midge'))
    expect(files).toEqual(expect.arrayContaining(['bin', 'src', 'plugins', 'README.md', 'package.json']))
    expect(files).not.toContain('test')
    expect(files).not.toContain('bench')
  })

  test('npx midge --version, and bunx midge --version', () => {
    expect(Bun.spawnSync(['npx', 'midge', '--version'], { cwd: project }).stdout.toString().trim()).toBe(VERSION)
    expect(Bun.spawnSync([join(project, 'node_modules', '.bin', 'bunx'), 'midge', '--version'], { cwd: project }).stdout.toString().trim()).toBe(VERSION)
  }, 30_000)

  test('npx midge init, then npx midge: the config imports from "midge" (node_modules), a user publishes over MQTT', async () => {
    expect(Bun.spawnSync(['npx', 'midge', 'init'], { cwd: project }).exitCode).toBe(0)
    const [port, http] = [freePort(), freePort()]
    const proc = Bun.spawn(['npx', 'midge'], { cwd: project, env: { ...process.env, PORT: String(port), HTTP_PORT: String(http) }, stdout: 'pipe', stderr: 'pipe' })
    try {
      if (!(await waitForPort(http, () => proc.exitCode !== null))) throw new Error(`npx midge did not start: ${await new Response(proc.stderr).text()}`)
      const sub = await connect(port, { username: 'demo', password: 'change-me' })
      await subscribe(sub.client, 'pkg/#')
      await sub.client.publishAsync('pkg/x', 'from the package', { qos: 1 })
      expect((await sub.next()).payload).toBe('from the package')
      await sub.end()
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
    // The broker behind npx goes too (npm exec does not pass SIGTERM on; the launcher sees its parent go).
    let listening = true
    while (listening) {
      listening = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } }).then(
        (socket) => (socket.end(), true),
        () => false,
      )
      if (listening) await Bun.sleep(100)
    }
  }, 30_000)
})
