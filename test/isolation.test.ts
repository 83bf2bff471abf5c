/**
 * A plugin's bug stays the plugin's: whatever hook throws or rejects (decision, notification, store, start, stop),
 * and whatever escapes into a timer or a forgotten promise, the broker logs one line and the other clients go on.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import type { IPubackPacket } from 'mqtt-packet'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqlite } from '../plugins/sqlite.ts'
import { createBroker, type Plugin } from '../src/index.ts'
import { createLogger } from '../src/logger.ts'
import { startBroker, until } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { spawnLines } from './helpers/process.ts'
import { RawClient } from './helpers/raw.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-isolation-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Two well-behaved clients still exchange a QoS 1 message. */
async function othersGoOn(port: number): Promise<void> {
  const sub = await connect(port, { protocolVersion: 5 })
  await subscribe(sub.client, 'alive', { qos: 1 })
  const pub = await connect(port)
  await pub.client.publishAsync('alive', 'yes', { qos: 1 })
  expect((await sub.next()).payload).toBe('yes')
  await sub.end()
  await pub.end()
}

describe('the last line of defence', () => {
  // bun test fails whichever test is running on an uncaught error, whatever handlers the process has: so the broker
  // runs as users run it, `bun src/main.ts`, with a plugin that leaves both behind on every message to `trigger`.
  test('an exception thrown in a timer and a rejection nobody handles, both from a plugin hook: one line each, and the broker serves on', async () => {
    const config = join(dir, 'careless.config.ts')
    writeFileSync(
      config,
      `export default {
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }],
  plugins: [{
    name: 'careless',
    onPublish(message) {
      if (message.topic !== 'trigger') return
      setTimeout(() => { throw new Error('thrown from a timer the plugin set') }, 1)
      void Promise.reject(new Error('rejected and never handled'))
    },
  }],
}
`,
    )
    const { proc, lines } = spawnLines(['src/main.ts', '--config', config])
    try {
      const logs = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>)
      await until(() => logs().some((l) => l.event === 'listener.listening'), 10_000, 'listening')
      const port = Number(logs().find((l) => l.event === 'listener.listening')!.port)
      const c = await connect(port)
      for (let i = 0; i < 3; i++) await c.client.publishAsync('trigger', 'go', { qos: 1 })
      await until(() => logs().filter((l) => l.event === 'process.uncaught_exception').length === 3 && logs().filter((l) => l.event === 'process.unhandled_rejection').length === 3, 5000, 'each logged')
      expect(String(logs().find((l) => l.event === 'process.uncaught_exception')!.error)).toContain('thrown from a timer the plugin set')
      expect(String(logs().find((l) => l.event === 'process.unhandled_rejection')!.error)).toContain('rejected and never handled')
      expect(c.client.connected).toBe(true)
      await othersGoOn(port)
      await c.end()
      expect(proc.exitCode).toBe(null) // still running
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  })

  test('once every broker is closed, the process handlers are removed again', async () => {
    const before = process.listenerCount('uncaughtException')
    const b = await startBroker()
    expect(process.listenerCount('uncaughtException')).toBe(before + 1)
    await b.close()
    expect(process.listenerCount('uncaughtException')).toBe(before)
  })
})

describe('held packets whose client has gone', () => {
  test('a decision that settles after its client went, or after its session was taken over, does nothing: no ack, no error', async () => {
    const pending: Array<() => void> = []
    const slow: Plugin = { name: 'slow', authorizePublish: () => new Promise((resolve) => pending.push(() => resolve('allow'))) }
    const dir2 = mkdtempSync(join(tmpdir(), 'midge-held-'))
    const b = await startBroker({ plugins: [slow, sqlite({ path: join(dir2, 'midge.db') })] })
    const watcher = await connect(b.port)
    await subscribe(watcher.client, 'held/#', { qos: 1 })
    // One client goes while its QoS 1 PUBLISH (and the packets behind it) wait for the decision.
    const gone = await RawClient.connected(b.port, 5, { clientId: 'gone' })
    gone.send({ cmd: 'publish', topic: 'held/gone', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false })
    gone.send({ cmd: 'publish', topic: 'held/gone', payload: Buffer.from('2'), qos: 2, messageId: 2, retain: false, dup: false })
    await until(() => pending.length === 1, 5000, 'the first decision pending')
    gone.end()
    await gone.waitClosed()
    // Another's persistent session is taken over by a new connection meanwhile.
    const old = await RawClient.connected(b.port, 5, { clientId: 'moved', clean: false, properties: { sessionExpiryInterval: 60 } })
    old.send({ cmd: 'publish', topic: 'held/moved', payload: Buffer.from('3'), qos: 2, messageId: 7, retain: false, dup: false })
    await until(() => pending.length === 2, 5000, 'the second decision pending')
    const heir = await RawClient.connected(b.port, 5, { clientId: 'moved', clean: false, properties: { sessionExpiryInterval: 60 } })
    await old.waitClosed()
    for (const settle of pending.splice(0)) settle()
    await until(() => b.midge.broker.clients.size === 2, 5000, 'only the watcher and the heir left')
    expect(await watcher.quiet()).toEqual([]) // decided for clients that had gone: not routed
    expect(heir.packets).toEqual([]) // and the heir is not sent the old connection's PUBREC
    expect(b.logs.filter((l) => l.event === 'client.handler_error' || String(l.event).startsWith('process.'))).toEqual([])
    heir.end()
    await watcher.end()
    await b.close()
    rmSync(dir2, { recursive: true, force: true })
  })
})

describe('a plugin that throws is isolated', () => {
  test('decision hooks that throw or reject deny (fail closed), with one log line each; the others go on', async () => {
    const failing: Plugin = {
      name: 'failing',
      authenticate: (r) => (r.clientId === 'doomed' ? Promise.reject(new Error('auth backend down')) : 'abstain'),
      authorizePublish: (_c, m) => {
        if (m.topic === 'bad') throw new Error('publish check crashed')
        return 'abstain'
      },
    }
    const b = await startBroker({ plugins: [failing] })
    expect(await RawClient.connackCode(b.port, 5, { clientId: 'doomed' })).toBe(0x87)
    const raw = await RawClient.connected(b.port, 5)
    raw.send({ cmd: 'publish', topic: 'bad', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await raw.next('puback')) as IPubackPacket).reasonCode).toBe(0x87)
    expect(b.logs.filter((l) => l.event === 'plugin.error').map((l) => l.hook)).toEqual(['authenticate', 'authorizePublish'])
    await othersGoOn(b.port)
    raw.end()
    await b.close()
  })

  test('a store whose write throws: the message is not acknowledged as stored (MQTT 5: 0x80), one log line, routing goes on', async () => {
    const kept = new Map<string, unknown>()
    const brokenStore: Plugin = {
      name: 'broken-store',
      retainedStore: {
        load: () => [],
        set(topic, message) {
          if (topic.startsWith('unstorable/')) throw new Error('the store refused')
          kept.set(topic, message)
        },
      },
    }
    const b = await startBroker({ plugins: [brokenStore] })
    const watcher = await connect(b.port)
    await subscribe(watcher.client, 'unstorable/#')
    const raw = await RawClient.connected(b.port, 5)
    for (let id = 1; id <= 3; id++) {
      raw.send({ cmd: 'publish', topic: `unstorable/${id}`, payload: Buffer.from('x'), qos: 1, messageId: id, retain: true, dup: false })
      expect(((await raw.next('puback')) as IPubackPacket).reasonCode).toBe(0x80)
    }
    raw.send({ cmd: 'publish', topic: 'storable', payload: Buffer.from('x'), qos: 1, messageId: 4, retain: true, dup: false })
    expect(((await raw.next('puback')) as IPubackPacket).reasonCode).toBe(0x10)
    expect(kept.has('storable')).toBe(true)
    await until(() => watcher.messages.length === 3, 5000, 'routed while the store refused') // delivery does not wait on the store
    expect(b.logs.filter((l) => l.event === 'plugin.error' && l.hook === 'retainedStore.set')).toHaveLength(1)
    expect(raw.closed).toBe(false)
    raw.end()
    await watcher.end()
    await b.close()
  })

  test('start() that throws stops start-up naming the plugin; stop() that throws is logged and close completes', async () => {
    const logs: Array<Record<string, unknown>> = []
    const logger = createLogger('info', (line) => logs.push(JSON.parse(line)))
    const bad = createBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], plugins: [{ name: 'no-start', start: () => Promise.reject(new Error('cannot reach its backend')) }] }, { logger })
    const error = await bad.listen().then(() => null, (e: Error) => e)
    expect(error?.message).toBe('plugin no-start failed to start: cannot reach its backend')
    await bad.close()

    const b = await startBroker({ plugins: [{ name: 'no-stop', stop: () => { throw new Error('stop crashed') } }] })
    await othersGoOn(b.port)
    await b.close()
    expect(b.logs.some((l) => l.event === 'plugin.error' && l.plugin === 'no-stop' && l.hook === 'stop')).toBe(true)
    expect(b.logs.at(-1)?.event).toBe('broker.stopped')
  })
})
