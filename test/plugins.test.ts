import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, createBroker, type Decision, type Plugin } from '../src/index.ts'
import { denyTopics } from '../examples/plugins/deny-topics.ts'
import { startBroker, until } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { repoRoot, spawnLines } from './helpers/process.ts'
import { RawClient } from './helpers/raw.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-plugins-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const deferred = <T>() => {
  let resolve!: (v: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

describe('plugin API', () => {
  test('decisions are asked in order; the first that does not abstain decides; all abstaining allows', async () => {
    const asked: string[] = []
    const first: Plugin = { name: 'first', authorizePublish: (_c, m) => (asked.push(`first ${m.topic}`), m.topic === 'ok/by-first' ? 'allow' : 'abstain') }
    const second: Plugin = { name: 'second', authorizePublish: (_c, m) => (asked.push(`second ${m.topic}`), m.topic.startsWith('no/') ? 'deny' : 'abstain') }
    const b = await startBroker({ plugins: [first, second] })
    const sub = await connect(b.port)
    await subscribe(sub.client, '#')
    const pub = await connect(b.port, { protocolVersion: 5 })
    await pub.client.publishAsync('ok/by-first', 'a', { qos: 1 })
    await expect(pub.client.publishAsync('no/denied', 'b', { qos: 1 })).rejects.toThrow()
    await pub.client.publishAsync('nobody/cares', 'c', { qos: 1 })
    expect(asked).toEqual(['first ok/by-first', 'first no/denied', 'second no/denied', 'first nobody/cares', 'second nobody/cares'])
    await until(() => sub.messages.length === 2)
    expect(sub.messages.map((m) => m.topic)).toEqual(['ok/by-first', 'nobody/cares'])
    await sub.end()
    await pub.end()
    await b.close()
  })

  test('an async decision holds that client\'s later packets in order and does not stall other clients', async () => {
    const gate = deferred<void>()
    const slow: Plugin = {
      name: 'slow',
      async authorizePublish(client, message): Promise<Decision> {
        if (message.topic === 'slow/first') await gate.promise
        return 'allow'
      },
    }
    const b = await startBroker({ plugins: [slow] })
    const sub = await connect(b.port)
    await subscribe(sub.client, '#')
    const held = await connect(b.port)
    const other = await connect(b.port)
    held.client.publish('slow/first', '1')
    held.client.publish('slow/second', '2')
    await other.client.publishAsync('other/now', 'x', { qos: 1 })
    expect((await sub.next()).topic).toBe('other/now') // not stalled by the pending decision
    expect(await sub.quiet()).toEqual([])
    gate.resolve()
    expect((await sub.next()).topic).toBe('slow/first')
    expect((await sub.next()).topic).toBe('slow/second') // order kept
    await Promise.all([sub.end(), held.end(), other.end()])
    await b.close()
  })

  test('a deny carries its MQTT 5 reason code: SUBACK 0x80 instead of 0x87, CONNACK 0x86 with a reason string', async () => {
    const plugin: Plugin = {
      name: 'strict',
      authenticate: (r) => (r.username === 'bad' ? { decision: 'deny', reasonCode: 0x86, reasonString: 'who are you' } : 'allow'),
      authorizeSubscribe: (_c, s) => (s.filter.startsWith('secret/') ? { decision: 'deny', reasonCode: 0x80 } : 'abstain'),
    }
    const b = await startBroker({ plugins: [plugin] })
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'secret/x', qos: 0 }, { topic: 'open/x', qos: 1 }] })
    expect(((await c.next('suback')) as { granted: number[] }).granted).toEqual([0x80, 1])
    c.end()
    const refused = await RawClient.open(b.port, 5)
    refused.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'x', clean: true, keepalive: 0, username: 'bad', password: Buffer.from('pw') })
    const connack = (await refused.next('connack')) as { reasonCode: number; properties?: { reasonString?: string } }
    expect(connack.reasonCode).toBe(0x86)
    expect(connack.properties?.reasonString).toBe('who are you')
    await refused.waitClosed()
    const line = b.logs.find((l) => l.event === 'client.refused')!
    expect(JSON.stringify(line)).not.toContain('pw')
    await b.close()
  })

  test('a throwing decision denies (fail closed) and is logged; a throwing notification only logs', async () => {
    const plugin: Plugin = {
      name: 'buggy',
      authorizeSubscribe: () => {
        throw new Error('oops')
      },
      onPublish: () => {
        throw new Error('notification oops')
      },
    }
    const b = await startBroker({ plugins: [plugin] })
    const raw = await RawClient.connected(b.port, 5)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x', qos: 0 }] })
    expect(((await raw.next('suback')) as { granted: number[] }).granted).toEqual([0x87])
    raw.end()
    const c = await connect(b.port, { protocolVersion: 5 })
    await c.client.publishAsync('y', 'still routed', { qos: 1 })
    expect(b.logs.some((l) => l.event === 'plugin.error' && l.hook === 'authorizeSubscribe')).toBe(true)
    await until(() => b.logs.some((l) => l.event === 'plugin.error' && l.plugin === 'buggy' && l.hook === 'onPublish'))
    await c.end()
    await b.close()
  })

  test('notifications and lifecycle: start(ctx) before listening, every event, stop() on close', async () => {
    const seen: string[] = []
    const plugin: Plugin = {
      name: 'watcher',
      start(ctx) {
        seen.push(`start ${ctx.stats.clientsConnected}`)
        ctx.publish({ topic: 'from/plugin', payload: 'hello', retain: true })
      },
      stop: () => void seen.push('stop'),
      onConnect: (c) => void seen.push(`connect ${c.clientId}`),
      onSubscribe: (c, s) => void seen.push(`subscribe ${c.clientId} ${s.filter}`),
      onPublish: (m) => void seen.push(`publish ${m.topic}`),
      onDeliver: (c, m) => void seen.push(`deliver ${c.clientId} ${m.topic}`),
      onUnsubscribe: (c, s) => void seen.push(`unsubscribe ${c.clientId} ${s.filter}`),
      onDisconnect: (c) => void seen.push(`disconnect ${c.clientId}`),
    }
    const b = await startBroker({ plugins: [plugin] })
    const c = await connect(b.port, { clientId: 'w' })
    await subscribe(c.client, 'from/plugin')
    expect((await c.next()).payload).toBe('hello')
    await c.client.unsubscribeAsync('from/plugin')
    await c.end()
    await until(() => seen.includes('disconnect w'))
    await b.close()
    expect(seen).toEqual(['start 0', 'publish from/plugin', 'connect w', 'subscribe w from/plugin', 'deliver w from/plugin', 'unsubscribe w from/plugin', 'disconnect w', 'stop'])
  })

  test('a shared subscription reaches the plugins parsed: its filter and its group, no $share/ to take apart', async () => {
    const asked: string[] = []
    const told: string[] = []
    const plugin: Plugin = {
      name: 'groups',
      authorizeSubscribe: (c, s) => {
        asked.push(`${c.clientId} ${s.group ?? '-'} ${s.filter}`)
        return s.group === 'banned' ? 'deny' : 'allow'
      },
      onSubscribe: (c, s) => void told.push(`subscribe ${c.clientId} ${s.group ?? '-'} ${s.filter} ${s.qos}`),
      onUnsubscribe: (c, s) => void told.push(`unsubscribe ${c.clientId} ${s.group ?? '-'} ${s.filter}`),
    }
    const b = await startBroker({ plugins: [plugin] })
    const c = await RawClient.connected(b.port, 5, { clientId: 'member' })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/workers/jobs/+', qos: 1 }, { topic: '$share/banned/jobs/#', qos: 0 }, { topic: 'plain/#', qos: 0 }] })
    expect(((await c.next('suback')) as { granted: number[] }).granted).toEqual([1, 0x87, 0]) // MQTT 5: a plain deny is 0x87 Not authorized
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['$share/workers/jobs/+'] })
    await c.next('unsuback')
    expect(asked).toEqual(['member workers jobs/+', 'member banned jobs/#', 'member - plain/#'])
    expect(told).toEqual(['subscribe member workers jobs/+ 1', 'subscribe member - plain/# 0', 'unsubscribe member workers jobs/+'])
    c.end()
    await b.close()
  })

  test('at most one plugin provides each store', () => {
    const store = { load: () => [], set: () => {} }
    expect(() => createBroker({ plugins: [{ name: 'a', retainedStore: store }, { name: 'b', retainedStore: store }] })).toThrow('only one plugin may provide the retainedStore (a, b do)')
  })

  test('a plugin factory refuses bad options, naming the plugin and the field', () => {
    expect(() => denyTopics({ topics: [] })).toThrow(ConfigError)
    expect(() => denyTopics({ topics: [] })).toThrow('Invalid options for plugin denyTopics:\n  topics: ')
    expect(() => createBroker({ plugins: [{ nope: 1 } as never] })).toThrow('plugins[0]: expected a plugin object')
  })

  test('a user-written plugin declared in a config file is loaded and called', async () => {
    const file = join(dir, 'with-plugin.config.ts')
    writeFileSync(
      file,
      `import { defineConfig } from '${join(repoRoot, 'src/index.ts')}'\n` +
        `import { denyTopics } from '${join(repoRoot, 'examples/plugins/deny-topics.ts')}'\n` +
        `export default defineConfig({ listeners: [{ type: 'tcp', port: 0 }], plugins: [denyTopics({ topics: ['readonly/#'] })] })\n`,
    )
    const broker = spawnLines(['src/main.ts', '--config', file])
    try {
      await until(() => broker.lines.some((l) => l.includes('listener.listening')), 10000, 'listening')
      expect(broker.lines.some((l) => l.includes('"plugin":"denyTopics"') && l.includes('plugin.started'))).toBe(true)
      const port = JSON.parse(broker.lines.find((l) => l.includes('listener.listening'))!).port
      const c = await RawClient.connected(port, 5, { clientId: 'cfg' })
      c.send({ cmd: 'publish', topic: 'readonly/x', payload: Buffer.from('no'), qos: 1, messageId: 1, retain: false, dup: false })
      const ack = (await c.next('puback')) as { reasonCode: number; properties?: { reasonString?: string } }
      expect(ack.reasonCode).toBe(0x87)
      expect(ack.properties?.reasonString).toBe('this topic is read-only (1 refused so far)')
      c.end()
      await until(() => broker.lines.includes('denyTopics: cfg connected'))
    } finally {
      broker.proc.kill('SIGTERM')
      await broker.proc.exited
    }
  })

  test('a bad plugin option in a config file stops start-up with the plugin and field named', async () => {
    const file = join(dir, 'bad-plugin.config.ts')
    writeFileSync(file, `import { denyTopics } from '${join(repoRoot, 'examples/plugins/deny-topics.ts')}'\nexport default { plugins: [denyTopics({ topics: 'readonly/#' } as never)] }\n`)
    const broker = spawnLines(['src/main.ts', '--config', file])
    expect(await broker.proc.exited).toBe(1)
    expect(await broker.stderr).toContain('Invalid options for plugin denyTopics:\n  topics: ')
  })
})
