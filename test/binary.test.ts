/**
 * The single executable (`bun run build`): built here, copied alone into empty directories, and run there with no
 * checkout and no node_modules: `midge init`, a broker from that config (MQTT with a user, HTTP publish), the types
 * it writes for an editor, a broker with no config at all, `--version` and `--help`.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from '../bench/client.ts'
import { VERSION } from '../src/sys.ts'
import { until } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { repoRoot } from './helpers/process.ts'

describe('the single executable', () => {
  let dir: string
  let binary: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'midge-binary-'))
    binary = join(dir, 'build', 'midge')
    // As `bun run build` does: the types it carries, then the executable.
    const typed = Bun.spawnSync([process.execPath, 'scripts/build-types.ts'], { cwd: repoRoot, stderr: 'pipe' })
    if (typed.exitCode !== 0) throw new Error(`scripts/build-types.ts failed: ${typed.stderr.toString()}`)
    const built = Bun.spawnSync([process.execPath, 'build', '--compile', '--minify', 'src/binary.ts', '--outfile', binary], { cwd: repoRoot, stderr: 'pipe' })
    if (built.exitCode !== 0) throw new Error(`bun build --compile failed: ${built.stderr.toString()}`)
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  /** A directory holding nothing but a copy of the binary. */
  function emptyDir(name: string): string {
    const here = join(dir, name)
    Bun.spawnSync(['mkdir', '-p', here])
    copyFileSync(binary, join(here, 'midge'))
    Bun.spawnSync(['chmod', '+x', join(here, 'midge')])
    return here
  }

  test('--version and --help', () => {
    const here = emptyDir('info')
    expect(Bun.spawnSync(['./midge', '--version'], { cwd: here }).stdout.toString().trim()).toBe(VERSION)
    const help = Bun.spawnSync(['./midge', '--help'], { cwd: here }).stdout.toString()
    expect(help).toContain('usage: midge')
    expect(help).toContain('midge init')
  })

  test('midge init, then midge: the config imports from "midge", a user of users.json publishes over MQTT, HTTP publishes', async () => {
    const here = emptyDir('init')
    const init = Bun.spawnSync(['./midge', 'init'], { cwd: here })
    expect(init.exitCode).toBe(0)
    expect(readFileSync(join(here, 'mqtt.config.ts'), 'utf8')).toContain("from 'midge'")
    expect(Bun.spawnSync(['./midge', 'init'], { cwd: here, stderr: 'pipe' }).exitCode).toBe(1) // never over existing files
    const [port, http] = [freePort(), freePort()]
    const proc = Bun.spawn(['./midge'], { cwd: here, env: { ...process.env, PORT: String(port), HTTP_PORT: String(http) }, stdout: 'pipe', stderr: 'pipe' })
    try {
      if (!(await waitForPort(http, () => proc.exitCode !== null))) throw new Error(`the binary did not start: ${await new Response(proc.stderr).text()}`)
      const sub = await connect(port, { username: 'demo', password: 'change-me' })
      await subscribe(sub.client, 'bin/#')
      const pub = await connect(port, { username: 'demo', password: 'change-me' })
      await pub.client.publishAsync('bin/mqtt', 'over mqtt', { qos: 1 })
      expect((await sub.next()).payload).toBe('over mqtt')
      const answer = await fetch(`http://127.0.0.1:${http}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'bin/http', payload: 'over http', qos: 1 }) })
      expect(answer.status).toBe(200)
      expect((await sub.next()).payload).toBe('over http')
      expect((await fetch(`http://127.0.0.1:${http}/ui/overview`)).status).toBe(200) // the console, served from the binary
      expect((await fetch(`http://127.0.0.1:${http}/ui/assets/uplot.iife.min.js`)).status).toBe(200)
      await Promise.all([sub.end(), pub.end()])
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  }, 30_000)

  test('midge init writes the types of "midge" beside the config: an editor (tsc) checks it with no node_modules', () => {
    const here = emptyDir('types')
    expect(Bun.spawnSync(['./midge', 'init'], { cwd: here }).exitCode).toBe(0)
    expect(JSON.parse(readFileSync(join(here, 'tsconfig.json'), 'utf8')).compilerOptions.paths).toEqual({ midge: ['./midge.d.ts'] })
    const tsc = (file: string) => Bun.spawnSync([join(repoRoot, 'node_modules', '.bin', 'tsc'), '-p', join(here, file)], { cwd: here, stdout: 'pipe' })
    const clean = tsc('tsconfig.json')
    expect(clean.stdout.toString()).toBe('') // the written config and midge.d.ts (checked too: no skipLibCheck) type-check
    expect(clean.exitCode).toBe(0)
    // A mistake in the config, and a plugin option of the wrong type, are caught by the types alone.
    const config = readFileSync(join(here, 'mqtt.config.ts'), 'utf8')
    writeFileSync(join(here, 'wrong.config.ts'), `${config.replace("port: 1883 }", "port: '1883' }")}\nimport { sqlite } from 'midge'\nsqlite({ path: 3 })\n`)
    writeFileSync(join(here, 'wrong.json'), JSON.stringify({ extends: './tsconfig.json', include: ['wrong.config.ts'] }))
    const wrong = tsc('wrong.json')
    expect(wrong.exitCode).not.toBe(0)
    const errors = wrong.stdout.toString().trim().split('\n')
    expect(errors).toHaveLength(2)
    expect(errors[0]).toContain("wrong.config.ts(6,49): error TS2322: Type 'string' is not assignable to type 'number'")
    expect(errors[1]).toContain("error TS2322: Type 'number' is not assignable to type 'string'")
    // `midge types` writes them again (after an upgrade), and leaves a tsconfig.json there alone.
    rmSync(join(here, 'midge.d.ts'))
    const again = Bun.spawnSync(['./midge', 'types'], { cwd: here })
    expect(again.exitCode).toBe(0)
    expect(readFileSync(join(here, 'midge.d.ts'), 'utf8')).toContain('export declare function defineConfig(config: UserConfig): UserConfig;')
  }, 60_000)

  test('with no config file at all it starts on built-in defaults and says so', async () => {
    const here = emptyDir('bare')
    const [port, http] = [freePort(), freePort()]
    const proc = Bun.spawn(['./midge'], { cwd: here, env: { ...process.env, PORT: String(port), HTTP_PORT: String(http) }, stdout: 'pipe' })
    const lines: string[] = []
    void (async () => {
      for await (const chunk of proc.stdout) lines.push(...new TextDecoder().decode(chunk).split('\n').filter(Boolean))
    })()
    try {
      await until(() => lines.some((l) => l.includes('"listener.listening"') && l.includes(`"port":${port}`)), 10_000, 'listening')
      expect(lines.some((l) => l.includes('"config.default"'))).toBe(true)
      const c = await connect(port)
      await c.end()
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  }, 30_000)
})
