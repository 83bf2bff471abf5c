/**
 * Deno as a second runtime: the broker started with `deno run -A src/main.ts` (Deno from the npm package `deno`),
 * with the plugins users run (auth with argon2id and bcrypt hashes made by Bun, sqlite) and every listener kind
 * (TCP, TLS, WebSocket, HTTP), driven by MQTT.js as on Bun: QoS 0/1/2, retained, persistent sessions, wills,
 * HTTP publish, bad input, and retained messages and sessions surviving a restart. Also: the embedding API
 * under Deno, and password hashes made on one runtime verifying on the other.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MqttClient } from 'mqtt'
import { until } from './helpers/broker.ts'
import { type Certs, makeCerts } from './helpers/certs.ts'
import { connect, openUrl as open, subscribe } from './helpers/mqttjs.ts'
import { repoRoot } from './helpers/process.ts'

const DENO = join(repoRoot, 'node_modules', '.bin', 'deno')

interface DenoBroker {
  proc: ReturnType<typeof Bun.spawn>
  lines: string[]
  ports: Record<'tcp' | 'tls' | 'websocket' | 'http', number>
  stop(): Promise<number>
}

/** Runs `deno run -A <args>` from the checkout (its deno.json maps 'midge'), collecting stdout lines. */
function spawnDeno(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([DENO, 'run', '-A', ...args], { cwd: repoRoot, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1', ...env } })
  const lines: string[] = []
  void (async () => {
    let rest = ''
    for await (const chunk of proc.stdout) {
      rest += new TextDecoder().decode(chunk)
      const parts = rest.split('\n')
      rest = parts.pop()!
      lines.push(...parts.filter((p) => p.trim() !== ''))
    }
  })()
  return { proc, lines, stderr: new Response(proc.stderr).text() }
}

/** Starts the broker under Deno with `config`; resolves once every listener has logged its port. */
async function startDenoBroker(config: string): Promise<DenoBroker> {
  const { proc, lines, stderr } = spawnDeno(['src/main.ts', '--config', config])
  const listening = () => lines.filter((l) => l.includes('"listener.listening"')).map((l) => JSON.parse(l) as { type: string; port: number; tls: boolean })
  try {
    await until(() => listening().length === 4 || proc.exitCode !== null, 30_000, 'the Deno broker to listen')
  } catch (error) {
    proc.kill()
    throw error
  }
  if (proc.exitCode !== null) throw new Error(`the broker under Deno exited: ${await stderr}\n${lines.join('\n')}`)
  const find = (type: string, tls: boolean) => listening().find((l) => l.type === type && l.tls === tls)!.port
  return {
    proc,
    lines,
    ports: { tcp: find('tcp', false), tls: find('tcp', true), websocket: find('websocket', false), http: find('http', false) },
    async stop() {
      proc.kill('SIGTERM')
      return await proc.exited
    },
  }
}

function nextMessage(client: MqttClient): Promise<{ topic: string; payload: string; retain: boolean }> {
  return new Promise((resolve) => client.once('message', (topic, payload, packet) => resolve({ topic, payload: payload.toString(), retain: packet.retain })))
}

describe('the broker under Deno', () => {
  let dir: string
  let certs: Certs
  let config: string
  let broker: DenoBroker
  const user = (username: string, password: string) => ({ username, password })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'midge-deno-'))
    certs = makeCerts()
    // Hashes made by Bun: they must verify under Deno (argon2id, and bcrypt).
    const users = { alice: { password: await Bun.password.hash('alice-pw') }, bob: { password: await Bun.password.hash('bob-pw', { algorithm: 'bcrypt', cost: 4 }) } }
    writeFileSync(join(dir, 'users.json'), JSON.stringify(users))
    config = join(dir, 'mqtt.config.ts')
    writeFileSync(
      config,
      `import { auth, defineConfig, sqlite } from 'midge'
export default defineConfig({
  listeners: [
    { type: 'tcp', host: '127.0.0.1', port: 0 },
    { type: 'tcp', host: '127.0.0.1', port: 0, tls: { cert: ${JSON.stringify(certs.serverCert)}, key: ${JSON.stringify(certs.serverKey)} } },
    { type: 'websocket', host: '127.0.0.1', port: 0, path: '/mqtt' },
  ],
  http: { host: '127.0.0.1', port: 0, anonymousScopes: ['read', 'publish'] },
  log: { level: 'info' },
  sys: { intervalSeconds: 0 },
  plugins: [
    auth({ usersFile: ${JSON.stringify(join(dir, 'users.json'))}, allowAnonymous: true, acl: [{ user: 'alice', publish: ['#'], subscribe: ['#'] }, { user: 'bob', publish: ['bob/#', 'qos/#'], subscribe: ['#'] }, { anonymous: true, publish: ['#'], subscribe: ['#'] }] }),
    sqlite({ path: ${JSON.stringify(join(dir, 'midge.db'))} }),
  ],
})
`,
    )
    broker = await startDenoBroker(config)
  }, 60_000)

  afterAll(async () => {
    await broker?.stop()
    rmSync(dir, { recursive: true, force: true })
    rmSync(certs.dir, { recursive: true, force: true })
  })

  test('says it runs on Deno', () => {
    expect(broker.lines.find((l) => l.includes('"broker.starting"'))).toContain('"runtime":"deno"')
  })

  test('QoS 0, 1 and 2 round trips, MQTT 3.1.1 and 5.0, with users whose hashes Bun made', async () => {
    for (const protocolVersion of [4, 5] as const) {
      const sub = await connect(broker.ports.tcp, { ...user('alice', 'alice-pw'), protocolVersion })
      await subscribe(sub.client, 'qos/#', { qos: 2 })
      const pub = await connect(broker.ports.tcp, { ...user('bob', 'bob-pw'), protocolVersion })
      for (const qos of [0, 1, 2] as const) await pub.client.publishAsync(`qos/${qos}`, `q${qos} v${protocolVersion}`, { qos })
      const got = [await sub.next(), await sub.next(), await sub.next()]
      expect(got.map((m) => [m.topic, m.payload, m.packet.qos])).toEqual([
        ['qos/0', `q0 v${protocolVersion}`, 0],
        ['qos/1', `q1 v${protocolVersion}`, 1],
        ['qos/2', `q2 v${protocolVersion}`, 2],
      ])
      await Promise.all([sub.end(), pub.end()])
    }
  })

  test('auth: a wrong password is refused (MQTT 5: 0x86 Bad user name or password), an ACL denial gets 0x87', async () => {
    const refused = await connect(broker.ports.tcp, { ...user('alice', 'nope'), protocolVersion: 5 }).then(
      () => null,
      (error: { code?: number }) => error,
    )
    expect(refused?.code).toBe(0x86)
    const bob = await connect(broker.ports.tcp, { ...user('bob', 'bob-pw'), protocolVersion: 5 })
    const denied = await bob.client.publishAsync('alice/only', 'x', { qos: 1 }).then(
      () => null,
      (error: { code?: number }) => error,
    )
    expect(denied?.code).toBe(0x87) // PUBACK 0x87 Not authorized (section 3.4.2.1)
    await bob.end()
  })

  test('password checks run off the event loop: a connected client is served while three of them run', async () => {
    const steady = await connect(broker.ports.tcp)
    let refusedAt = 0
    // Wrong passwords are never remembered, so each one is a full argon2id verification (~0.2 s of CPU each).
    const refusals = Array.from({ length: 3 }, () =>
      connect(broker.ports.tcp, user('alice', 'wrong')).then(
        () => {
          throw new Error('a wrong password was accepted')
        },
        () => void (refusedAt = performance.now()),
      ),
    )
    for (let i = 0; i < 5; i++) await steady.ping()
    const servedAt = performance.now()
    await Promise.all(refusals)
    expect(servedAt).toBeLessThan(refusedAt) // hashing on the event loop would have answered the pings after the refusals
    await steady.end()
  })

  test('a retained message reaches a later subscriber', async () => {
    const pub = await connect(broker.ports.tcp)
    await pub.client.publishAsync('retained/deno', 'kept', { qos: 1, retain: true })
    const sub = await connect(broker.ports.tcp)
    await subscribe(sub.client, 'retained/#')
    const m = await sub.next()
    expect([m.topic, m.payload, m.packet.retain]).toEqual(['retained/deno', 'kept', true]) // [MQTT-3.3.1-6]
    await Promise.all([pub.end(), sub.end()])
  })

  test('a persistent session gets what was published while it was away', async () => {
    const first = await connect(broker.ports.tcp, { clientId: 'deno-persistent', clean: false })
    await subscribe(first.client, 'away/#', { qos: 1 })
    await first.end()
    const pub = await connect(broker.ports.tcp)
    await pub.client.publishAsync('away/1', 'while away', { qos: 1 })
    const again = await connect(broker.ports.tcp, { clientId: 'deno-persistent', clean: false })
    expect(again.client.options.clean).toBe(false)
    const m = await again.next()
    expect([m.topic, m.payload]).toEqual(['away/1', 'while away']) // [MQTT-3.1.2-5]
    await Promise.all([pub.end(), again.end()])
  })

  test('a client that vanishes has its will published', async () => {
    const watcher = await connect(broker.ports.tcp)
    await subscribe(watcher.client, 'wills/#')
    const doomed = await connect(broker.ports.tcp, { will: { topic: 'wills/doomed', payload: Buffer.from('gone'), qos: 1, retain: false } })
    doomed.client.stream.destroy() // no DISCONNECT [MQTT-3.1.2-8]
    const m = await watcher.next()
    expect([m.topic, m.payload]).toEqual(['wills/doomed', 'gone'])
    await watcher.end()
  })

  test('MQTT over WebSocket (its own listener and the HTTP port at /mqtt) and over TLS talk to a TCP client', async () => {
    const sub = await connect(broker.ports.tcp)
    await subscribe(sub.client, 'via/#')
    const ws = await open(`ws://127.0.0.1:${broker.ports.websocket}/mqtt`, { protocolVersion: 5 })
    await ws.publishAsync('via/ws', 'over ws', { qos: 1 })
    expect((await sub.next()).payload).toBe('over ws')
    const wsHttp = await open(`ws://127.0.0.1:${broker.ports.http}/mqtt`)
    await wsHttp.publishAsync('via/ws-http', 'over the http port', { qos: 1 })
    expect((await sub.next()).payload).toBe('over the http port')
    const tls = await open(`mqtts://127.0.0.1:${broker.ports.tls}`, { ca: [readFileSync(certs.ca)], rejectUnauthorized: true })
    const back = nextMessage(tls)
    await tls.subscribeAsync('via/#', { qos: 1 })
    await tls.publishAsync('via/tls', 'over tls', { qos: 1 })
    expect((await sub.next()).payload).toBe('over tls')
    expect((await back).payload).toBe('over tls')
    await Promise.all([sub.end(), ws.endAsync(), wsHttp.endAsync(), tls.endAsync()])
  })

  test('HTTP: publish with POST, and the API and console answer', async () => {
    const sub = await connect(broker.ports.tcp)
    await subscribe(sub.client, 'http/#', { qos: 1 })
    const base = `http://127.0.0.1:${broker.ports.http}`
    const answer = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: 'http/in', payload: 'from http', qos: 1 }) })
    expect(answer.status).toBe(200)
    expect((await sub.next()).payload).toBe('from http')
    const bad = await fetch(`${base}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"topic": "a/+"' })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: string }).error).toBe('bad_request')
    expect(((await (await fetch(`${base}/api/v1/stats`)).json()) as { clientsConnected: number }).clientsConnected).toBeGreaterThanOrEqual(1)
    expect((await fetch(`${base}/ui/overview`)).status).toBe(200)
    const asset = await fetch(`${base}/ui/assets/uplot.iife.min.js`)
    expect([asset.status, asset.headers.get('content-type')]).toEqual([200, 'text/javascript'])
    expect((await asset.text()).length).toBeGreaterThan(1000)
    await sub.end()
  })

  test('bad input closes that connection only; the broker keeps serving', async () => {
    const garbage = await new Promise<boolean>((resolve) => {
      const socket = net.connect(broker.ports.tcp, '127.0.0.1', () => socket.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00])))
      socket.on('close', () => resolve(true))
      socket.on('error', () => {})
    })
    expect(garbage).toBe(true) // a malformed Remaining Length closes the connection [MQTT-1.5.5]
    const after = await connect(broker.ports.tcp)
    await after.ping()
    await after.end()
    expect(broker.proc.exitCode).toBeNull()
  })

  test('retained messages and a session survive a restart (sqlite on node:sqlite)', async () => {
    const sub = await connect(broker.ports.tcp, { clientId: 'deno-restart', clean: false })
    await subscribe(sub.client, 'restart/#', { qos: 1 })
    await sub.end()
    const pub = await connect(broker.ports.tcp)
    await pub.client.publishAsync('restart/retained', 'survives', { qos: 1, retain: true })
    await pub.client.publishAsync('restart/queued', 'queued', { qos: 1 })
    await pub.end()
    expect(await broker.stop()).toBe(0)
    expect(broker.lines.some((l) => l.includes('"broker.stopped"'))).toBe(true)
    expect(existsSync(join(dir, 'midge.db'))).toBe(true)

    broker = await startDenoBroker(config)
    const back = await connect(broker.ports.tcp, { clientId: 'deno-restart', clean: false })
    const got = [await back.next(), await back.next()].map((m) => [m.topic, m.payload]).sort()
    expect(got).toEqual([
      ['restart/queued', 'queued'],
      ['restart/retained', 'survives'],
    ])
    await back.end()
    const fresh = await connect(broker.ports.tcp)
    await subscribe(fresh.client, 'restart/retained')
    expect((await fresh.next()).payload).toBe('survives')
    await fresh.end()
  }, 60_000)
})

describe('a store that cannot be used, under Deno', () => {
  test('a corrupt database stops start-up naming the file and what to do; onCorrupt: moveAside starts on a new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'midge-deno-corrupt-'))
    const db = join(dir, 'midge.db')
    writeFileSync(db, 'not a database: '.repeat(64))
    const config = (onCorrupt: string) => {
      const file = join(dir, `${onCorrupt}.config.ts`)
      writeFileSync(file, `import { defineConfig, sqlite } from 'midge'\nexport default defineConfig({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], plugins: [sqlite({ path: ${JSON.stringify(db)}, onCorrupt: '${onCorrupt}' })] })\n`)
      return file
    }
    const refused = spawnDeno(['src/main.ts', '--config', config('fail')])
    expect(await refused.proc.exited).toBe(1)
    expect(await refused.stderr).toContain(`the database ${db} is not a sound SQLite database`)
    const moved = spawnDeno(['src/main.ts', '--config', config('moveAside')])
    try {
      await until(() => moved.lines.some((l) => l.includes('"listener.listening"')) || moved.proc.exitCode !== null, 20_000, 'the broker to start')
      expect(moved.lines.some((l) => l.includes('"sqlite.moved_aside"'))).toBe(true)
    } finally {
      moved.proc.kill('SIGTERM')
      await moved.proc.exited
      rmSync(dir, { recursive: true, force: true })
    }
  }, 40_000)
})

describe('Deno and Bun side by side', () => {
  test('a hash made under Deno (midge hash-password) verifies on Bun, and one made by Bun verifies on Deno', async () => {
    const made = spawnDeno(['src/main.ts', 'hash-password', 'tea for two'])
    expect(await made.proc.exited).toBe(0)
    await until(() => made.lines.length > 0, 5000, 'the hash')
    const hash = made.lines[0]!
    expect(hash).toStartWith('$argon2id$v=19$m=65536,t=2,p=1$')
    expect(await Bun.password.verify('tea for two', hash)).toBe(true)
    expect(await Bun.password.verify('tea for three', hash)).toBe(false)

    // A bcrypt hash of a password past bcrypt's 72 bytes: Bun pre-hashes it, Deno must too.
    const long = 'x'.repeat(100)
    const bunHashes = [await Bun.password.hash('tea for two'), await Bun.password.hash(long, { algorithm: 'bcrypt', cost: 4 })]
    const script = `import { verifyPassword } from './src/index.ts'
const [a, b] = ${JSON.stringify(bunHashes)}
console.log(JSON.stringify([await verifyPassword('tea for two', a), await verifyPassword('nope', a), await verifyPassword(${JSON.stringify(long)}, b), await verifyPassword('x'.repeat(99), b), await verifyPassword('x', 'not a hash')]))`
    const checked = spawnDeno(['--ext=ts', '-'])
    checked.proc.stdin!.write(script)
    checked.proc.stdin!.end()
    expect(await checked.proc.exited).toBe(0)
    expect(JSON.parse(checked.lines[0]!)).toEqual([true, false, true, false, false])
  }, 30_000)

  test('the embedding API under Deno: createBroker, listen, publish, close', async () => {
    const script = `import { createBroker } from './src/index.ts'
const midge = createBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], log: { level: 'warn' }, sys: { intervalSeconds: 0 } })
const [tcp] = await midge.listen()
console.log(JSON.stringify({ port: tcp.port }))
const line = await new Promise((resolve) => process.stdin.once('data', (d) => resolve(String(d))))
console.log(JSON.stringify({ reached: midge.publish({ topic: 'embedded/hello', payload: line.trim(), qos: 1 }) }))
await midge.close()
`
    const file = join(mkdtempSync(join(tmpdir(), 'midge-deno-embed-')), 'embed.ts')
    writeFileSync(file, script.replaceAll("'./src/index.ts'", JSON.stringify(join(repoRoot, 'src', 'index.ts'))))
    const run = spawnDeno(['--config', join(repoRoot, 'deno.json'), file]) // the script is outside the checkout: name its deno.json
    await until(() => run.lines.length > 0 || run.proc.exitCode !== null, 20_000, 'the embedded broker')
    const { port } = JSON.parse(run.lines[0]!) as { port: number }
    const sub = await connect(port)
    await subscribe(sub.client, 'embedded/#', { qos: 1 })
    run.proc.stdin!.write('from deno\n')
    run.proc.stdin!.end()
    expect((await sub.next()).payload).toBe('from deno')
    expect(await run.proc.exited).toBe(0)
    expect(JSON.parse(run.lines[1]!)).toEqual({ reached: 1 })
    await sub.end(true)
    rmSync(file, { force: true })
  }, 30_000)
})
