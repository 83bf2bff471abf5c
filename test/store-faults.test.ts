/**
 * Store faults are told, never hidden: a QoS 1/2 message whose write failed is not acknowledged as received (MQTT 5:
 * PUBACK / PUBREC 0x80; 3.1.1: the connection closes), QoS 0 goes on, the fault is logged once, and a database that
 * cannot be used stops start-up with a message that names the file. Real files throughout: a lock held by another
 * connection, a size limit that fills up, a garbage file and a truncated one.
 */
import { Database } from 'bun:sqlite'
import { afterAll, describe, expect, test } from 'bun:test'
import type { IPubackPacket, IPubrecPacket } from 'mqtt-packet'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqlite } from '../plugins/sqlite.ts'
import { webhook } from '../plugins/webhook.ts'
import { createBroker } from '../src/index.ts'
import { createLogger } from '../src/logger.ts'
import { startBroker, until } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'
import { repoRoot, spawnLines } from './helpers/process.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-store-faults-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const dbPath = () => join(dir, `midge-${++n}.db`)

/** Publishes one QoS 1 or 2 message from a raw client and returns the ack's reason code, or 'closed'. */
async function publishAck(c: RawClient, topic: string, qos: 1 | 2, id: number, payload = 'x'): Promise<number | 'closed'> {
  c.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, messageId: id, retain: false, dup: false })
  try {
    const ack = (await c.next(qos === 1 ? 'puback' : 'pubrec')) as IPubackPacket | IPubrecPacket
    return ack.reasonCode ?? 0
  } catch {
    return 'closed'
  }
}

describe('a store that cannot write', () => {
  test('database locked by another connection: MQTT 5 gets PUBACK/PUBREC 0x80, 3.1.1 is closed, QoS 0 flows, one log line; acks resume when the lock goes', async () => {
    const path = dbPath()
    const b = await startBroker({ plugins: [sqlite({ path })] })
    // A persistent QoS 1 subscriber: every QoS 1/2 message to it is a write the ack waits on.
    const sub = await connect(b.port, { clientId: 'keeper', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 300 } })
    await subscribe(sub.client, 'store/#', { qos: 1 })
    const v5 = await RawClient.connected(b.port, 5)
    expect(await publishAck(v5, 'store/a', 1, 1)).toBe(0)

    const locker = new Database(path)
    locker.exec('BEGIN EXCLUSIVE')
    expect(await publishAck(v5, 'store/b', 1, 2)).toBe(0x80)
    expect(await publishAck(v5, 'store/c', 1, 3)).toBe(0x80)
    expect(await publishAck(v5, 'store/d', 2, 4)).toBe(0x80)
    // The refused QoS 2 id is free again: the same id is a new message, not a duplicate (section 4.3.3).
    expect(await publishAck(v5, 'store/d', 2, 4)).toBe(0x80)
    // QoS 0 does not wait on the store.
    v5.send({ cmd: 'publish', topic: 'store/qos0', payload: Buffer.from('still here'), qos: 0, retain: false, dup: false })
    await until(() => sub.messages.some((m) => m.topic === 'store/qos0'), 5000, 'QoS 0 delivered while the store fails')
    const v4 = await RawClient.connected(b.port, 4)
    expect(await publishAck(v4, 'store/e', 1, 1)).toBe('closed') // 3.1.1 has no negative ack: closed, not acknowledged
    expect(b.logs.filter((l) => l.event === 'sqlite.write_failed')).toHaveLength(1)
    expect(String(b.logs.find((l) => l.event === 'sqlite.write_failed')!.error)).toContain('locked')

    locker.exec('COMMIT')
    locker.close()
    expect(await publishAck(v5, 'store/f', 1, 5)).toBe(0)
    expect(b.logs.filter((l) => l.event === 'sqlite.write_recovered')).toHaveLength(1)
    expect(v5.closed).toBe(false)
    v5.end()
    await sub.end()
    await b.close()
  })

  test('database full (size limit): retained QoS 1 messages past it get 0x80, the broker goes on serving', async () => {
    const b = await startBroker({ plugins: [sqlite({ path: dbPath(), maxSizeBytes: 256 * 1024 })] })
    const c = await RawClient.connected(b.port, 5)
    const big = 'x'.repeat(16 * 1024)
    const codes: Array<number | 'closed'> = []
    for (let i = 1; i <= 40; i++) {
      c.send({ cmd: 'publish', topic: `full/${i}`, payload: Buffer.from(big), qos: 1, messageId: i, retain: true, dup: false })
      codes.push(((await c.next('puback')) as IPubackPacket).reasonCode ?? 0)
    }
    expect(codes.slice(0, 5)).toEqual([0x10, 0x10, 0x10, 0x10, 0x10]) // stored (no subscriber: 0x10 No matching subscribers)
    expect(codes.filter((code) => code === 0x80).length).toBeGreaterThan(10)
    expect(b.logs.filter((l) => l.event === 'sqlite.write_failed')).toHaveLength(1)
    expect(String(b.logs.find((l) => l.event === 'sqlite.write_failed')!.error)).toContain('full')
    // Others are served: a QoS 0 round trip.
    const sub = await connect(b.port)
    await subscribe(sub.client, 'live')
    const pub = await connect(b.port)
    pub.client.publish('live', 'ok')
    expect((await sub.next()).payload).toBe('ok')
    c.end()
    await sub.end()
    await pub.end()
    await b.close()
  })
})

describe('the webhook outbox', () => {
  test('an outbox that cannot be written refuses acks (MQTT 5: 0x80) with one log line; once it can, events flow again', async () => {
    const events: string[] = []
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        for (const e of ((await req.json()) as { events: Array<{ payload: string }> }).events) events.push(e.payload)
        return new Response('ok')
      },
    })
    const outbox = join(dir, `outbox-${++n}.db`)
    const b = await startBroker({ plugins: [webhook({ url: `http://127.0.0.1:${server.port}/`, outbox, retry: { initialDelayMs: 10, maxDelayMs: 50 } })] })
    const c = await RawClient.connected(b.port, 5)
    expect(await publishAck(c, 'hook/a', 1, 1, 'before')).toBe(0x10)
    await until(() => events.includes('before'), 5000, 'the first event delivered')
    const locker = new Database(outbox)
    locker.exec('BEGIN EXCLUSIVE')
    expect(await publishAck(c, 'hook/b', 1, 2, 'while locked')).toBe(0x80)
    expect(await publishAck(c, 'hook/c', 1, 3, 'while locked')).toBe(0x80)
    expect(b.logs.filter((l) => l.event === 'webhook.outbox_write_failed')).toHaveLength(1)
    locker.exec('COMMIT')
    locker.close()
    expect(await publishAck(c, 'hook/d', 1, 4, 'after')).toBe(0x10)
    await until(() => events.includes('after'), 5000, 'events flow again')
    expect(events).not.toContain('while locked') // refused, so not promised: the publisher knows to send again
    c.end()
    await b.close()
    server.stop(true)
  })

  test('the sender survives an outbox it cannot update: it logs once, tries again every second, and delivers at least once', async () => {
    const events: string[] = []
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    let requests = 0
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch(req) {
        const body = (await req.json()) as { events: Array<{ payload: string }> }
        if (++requests === 1) await held // the first POST waits while the test locks the outbox
        for (const e of body.events) events.push(e.payload)
        return new Response('ok')
      },
    })
    const outbox = join(dir, `outbox-${++n}.db`)
    const b = await startBroker({ plugins: [webhook({ url: `http://127.0.0.1:${server.port}/`, outbox })] })
    const c = await RawClient.connected(b.port, 5)
    expect(await publishAck(c, 'hook/x', 1, 1, 'once')).toBe(0x10)
    await until(() => requests === 1, 5000, 'the POST in flight')
    const locker = new Database(outbox)
    locker.exec('BEGIN EXCLUSIVE')
    release() // delivered, but the sender cannot remove it from the outbox
    await until(() => b.logs.some((l) => l.event === 'webhook.sender_failed'), 5000, 'the sender fault logged')
    locker.exec('COMMIT')
    locker.close()
    await until(() => (b.midge.broker.plugins.plugins[0] as ReturnType<typeof webhook>).status().outbox === 0, 5000, 'the outbox emptied after the retry')
    expect(events.filter((e) => e === 'once').length).toBeGreaterThanOrEqual(1)
    expect(b.logs.filter((l) => l.event === 'webhook.sender_failed')).toHaveLength(1)
    c.end()
    await b.close()
    server.stop(true)
  })
})

describe('a database that cannot be used at start', () => {
  const start = (path: string, onCorrupt?: 'fail' | 'moveAside') => {
    const logs: Array<Record<string, unknown>> = []
    const midge = createBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], sys: { intervalSeconds: 0 }, plugins: [sqlite({ path, onCorrupt })] }, { logger: createLogger('info', (line) => logs.push(JSON.parse(line))) })
    return { midge, logs }
  }

  test('a garbage file stops start-up with a message naming the file and what to do', async () => {
    const path = dbPath()
    writeFileSync(path, Buffer.from('this is not a database, it is a shopping list: eggs, milk, '.repeat(100)))
    const { midge } = start(path)
    const error = await midge.listen().then(() => null, (e: Error) => e)
    expect(error?.message).toContain(path)
    expect(error?.message).toContain('not a sound SQLite database')
    expect(error?.message).toContain("onCorrupt: 'moveAside'")
    await midge.close()
  })

  test('a truncated database stops start-up too', async () => {
    const path = dbPath()
    const db = new Database(path, { create: true })
    db.exec('CREATE TABLE filler (x BLOB)')
    for (let i = 0; i < 100; i++) db.query('INSERT INTO filler VALUES (?)').run(Buffer.alloc(4000, i))
    db.close()
    truncateSync(path, Math.floor(statSync(path).size / 2))
    const { midge } = start(path)
    const error = await midge.listen().then(() => null, (e: Error) => e)
    expect(error?.message).toContain(path)
    expect(error?.message).toContain('malformed')
    await midge.close()
  })

  test("onCorrupt: 'moveAside' keeps the bad file beside, logs it, and starts empty", async () => {
    const path = dbPath()
    writeFileSync(path, Buffer.alloc(8192, 0xab))
    const { midge, logs } = start(path, 'moveAside')
    await midge.listen()
    const moved = logs.find((l) => l.event === 'sqlite.moved_aside')
    expect(moved?.path).toBe(path)
    expect(existsSync(String(moved?.movedTo))).toBe(true)
    expect(readdirSync(dir).some((f) => f.startsWith(`${path.split('/').pop()}.corrupt-`))).toBe(true)
    await midge.close()
  })

  test('a database file made read-only (chmod) stops start-up with a message naming the file and what to check', async () => {
    // As root, chmod does not stop writes: the broker then runs as nobody, as a service user would.
    const root = process.getuid?.() === 0
    const folder = join(dir, `readonly-${++n}`)
    mkdirSync(folder)
    const path = join(folder, 'midge.db')
    const db = new Database(path, { create: true })
    db.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (x)')
    db.close()
    chmodSync(path, 0o444)
    chmodSync(folder, 0o555)
    chmodSync(dir, 0o755)
    const config = join(folder, '..', `readonly-${n}.config.ts`)
    writeFileSync(config, `import { sqlite } from '${join(import.meta.dir, '..', 'plugins', 'sqlite.ts')}'\nexport default { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], plugins: [sqlite({ path: '${path}' })] }\n`)
    chmodSync(config, 0o644)
    const command = root ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [process.execPath]
    const proc = Bun.spawn([...command, 'src/main.ts', '--config', config], { cwd: repoRoot, stdout: 'pipe', stderr: 'pipe' })
    expect(await proc.exited).toBe(1)
    const said = await new Response(proc.stderr).text()
    expect(said).toContain(path)
    expect(said).toContain('cannot be written')
  })

  test('npm start with a corrupt database exits 1 and says which file', async () => {
    const path = dbPath()
    writeFileSync(path, Buffer.alloc(8192, 0xcd))
    const config = join(dir, 'corrupt.config.ts')
    writeFileSync(config, `import { sqlite } from '${join(import.meta.dir, '..', 'plugins', 'sqlite.ts')}'\nexport default { listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], plugins: [sqlite({ path: '${path}' })] }\n`)
    const { proc, stderr } = spawnLines(['src/main.ts', '--config', config])
    expect(await proc.exited).toBe(1)
    const said = await stderr
    expect(said).toContain(path)
    expect(said).toContain('sqlite')
  })
})
