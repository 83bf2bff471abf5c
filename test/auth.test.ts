import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { IConnackPacket, ISubackPacket } from 'mqtt-packet'
import { filterCovers, filtersOverlap } from '../plugins/acl.ts'
import { auth } from '../plugins/auth.ts'
import { topicNameError } from '../src/protocol/validate.ts'
import { filterMatches } from '../src/topics/trie.ts'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { repoRoot } from './helpers/process.ts'
import { RawClient } from './helpers/raw.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-auth-'))
const aliceHash = await Bun.password.hash('alice-pw', { algorithm: 'argon2id' })
const bobHash = await Bun.password.hash('bob-pw', { algorithm: 'bcrypt', cost: 4 })
const usersFile = join(dir, 'users.json')
writeFileSync(usersFile, JSON.stringify({ carol: { password: await Bun.password.hash('carol-pw') } }))

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({
    plugins: [
      auth({
        users: { alice: { password: aliceHash }, bob: { password: bobHash } },
        usersFile,
        allowAnonymous: true,
        acl: [
          { user: 'alice', publish: ['sensors/#'], subscribe: ['#'], deny: { subscribe: ['sensors/secret/#'] } },
          { user: '*', publish: ['clients/%u/#', 'by-id/%c'], subscribe: ['clients/%u/#', 'public/#'] },
          { anonymous: true, subscribe: ['public/#'] },
        ],
      }),
    ],
  })
})
afterAll(async () => {
  await b.close()
  rmSync(dir, { recursive: true, force: true })
})

async function connack(version: 4 | 5, username?: string, password?: string): Promise<IConnackPacket> {
  const c = await RawClient.open(b.port, version)
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `c-${Math.random()}`, clean: true, keepalive: 0, username, password: password === undefined ? undefined : Buffer.from(password) })
  const ack = (await c.next('connack')) as IConnackPacket
  c.end()
  return ack
}

describe('auth plugin: authentication', () => {
  test('argon2id and bcrypt hashes are accepted with the right password', async () => {
    expect((await connack(5, 'alice', 'alice-pw')).reasonCode).toBe(0)
    expect((await connack(4, 'bob', 'bob-pw')).returnCode).toBe(0)
  })

  test('wrong credentials: CONNACK 0x86 (5.0) / 4 (3.1.1); logged without the password', async () => {
    expect((await connack(5, 'alice', 'nope-secret-1')).reasonCode).toBe(0x86)
    expect((await connack(4, 'alice', 'nope-secret-2')).returnCode).toBe(4)
    expect((await connack(5, 'mallory', 'nope-secret-3')).reasonCode).toBe(0x86)
    const lines = b.logs.filter((l) => l.event === 'auth.failed')
    expect(lines.length).toBeGreaterThanOrEqual(3)
    expect(lines.find((l) => l.username === 'alice' && l.failures === 2)).toBeDefined()
    expect(JSON.stringify(b.logs)).not.toContain('nope-secret')
  })

  test('users from usersFile are accepted, and SIGHUP reloads the file', async () => {
    expect((await connack(5, 'carol', 'carol-pw')).reasonCode).toBe(0)
    expect((await connack(5, 'dave', 'dave-pw')).reasonCode).toBe(0x86)
    writeFileSync(usersFile, JSON.stringify({ dave: { password: await Bun.password.hash('dave-pw') } }))
    process.kill(process.pid, 'SIGHUP')
    await until(() => b.logs.some((l) => l.event === 'auth.users_reloaded'))
    expect((await connack(5, 'dave', 'dave-pw')).reasonCode).toBe(0)
  })

  test('a verified password is remembered for verifiedCacheSeconds: the same one is not hashed again; a wrong one, a changed hash or 0 is', async () => {
    const real = Bun.password.verify
    let hashed = 0
    Bun.password.verify = (...args: Parameters<typeof real>) => {
      hashed++
      return real(...args)
    }
    try {
      const file = join(dir, 'cached-users.json')
      writeFileSync(file, JSON.stringify({ erin: { password: await Bun.password.hash('erin-pw') } }))
      const cached = await startBroker({ plugins: [auth({ usersFile: file, acl: [] })] })
      const uncached = await startBroker({ plugins: [auth({ usersFile: file, acl: [], verifiedCacheSeconds: 0 })] })
      const login = async (broker: TestBroker, password: string) => {
        const c = await RawClient.open(broker.port, 5)
        c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'erin', clean: true, keepalive: 0, username: 'erin', password: Buffer.from(password) })
        const code = ((await c.next('connack')) as IConnackPacket).reasonCode
        c.end()
        return code
      }
      expect(await login(cached, 'erin-pw')).toBe(0)
      expect(hashed).toBe(1)
      expect(await login(cached, 'erin-pw')).toBe(0) // remembered
      expect(hashed).toBe(1)
      expect(await login(cached, 'not-erin')).toBe(0x86) // a wrong password is always verified in full
      expect(hashed).toBe(2)
      // A users-file reload with a new hash for the same password: verified again, then remembered again.
      writeFileSync(file, JSON.stringify({ erin: { password: await Bun.password.hash('erin-pw') } }))
      process.kill(process.pid, 'SIGHUP')
      await until(() => cached.logs.some((l) => l.event === 'auth.users_reloaded') && uncached.logs.some((l) => l.event === 'auth.users_reloaded'))
      hashed = 0
      expect(await login(cached, 'erin-pw')).toBe(0)
      expect(await login(cached, 'erin-pw')).toBe(0)
      expect(hashed).toBe(1)
      hashed = 0
      expect(await login(uncached, 'erin-pw')).toBe(0)
      expect(await login(uncached, 'erin-pw')).toBe(0)
      expect(hashed).toBe(2)
      await cached.close()
      await uncached.close()
    } finally {
      Bun.password.verify = real
    }
  })

  test('a users file may also be a TS module with a default export', async () => {
    const tsFile = join(dir, 'users.ts')
    writeFileSync(tsFile, `export default { erin: { password: ${JSON.stringify(await Bun.password.hash('erin-pw'))} } }\n`)
    const other = await startBroker({ plugins: [auth({ usersFile: tsFile })] })
    const c = await RawClient.open(other.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'erin', clean: true, keepalive: 0, username: 'erin', password: Buffer.from('erin-pw') })
    expect(((await c.next('connack')) as IConnackPacket).reasonCode).toBe(0)
    c.end()
    await other.close()
  })

  test('anonymous clients are refused with 0x87 / 5 when allowAnonymous is off', async () => {
    const strict = await startBroker({ plugins: [auth({ users: { alice: { password: aliceHash } } })] })
    for (const version of [4, 5] as const) {
      const c = await RawClient.open(strict.port, version)
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: 'anon', clean: true, keepalive: 0 })
      const ack = (await c.next('connack')) as IConnackPacket
      expect(version === 5 ? ack.reasonCode : ack.returnCode).toBe(version === 5 ? 0x87 : 5)
      await c.waitClosed()
    }
    await strict.close()
  })
})

describe('auth plugin: ACL', () => {
  test('denied publish: PUBACK 0x87 on MQTT 5 QoS 1, silently dropped on QoS 0, never delivered', async () => {
    const watcher = await connect(b.port, { username: 'alice', password: 'alice-pw' })
    await subscribe(watcher.client, ['clients/#', 'sensors/x', 'sensors/y'])
    const bob = await RawClient.connected(b.port, 5, { username: 'bob', password: Buffer.from('bob-pw') })
    bob.send({ cmd: 'publish', topic: 'sensors/x', payload: Buffer.from('no'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await bob.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    bob.send({ cmd: 'publish', topic: 'sensors/y', payload: Buffer.from('no'), qos: 0, retain: false, dup: false })
    bob.send({ cmd: 'publish', topic: 'clients/bob/status', payload: Buffer.from('yes'), qos: 1, messageId: 2, retain: false, dup: false })
    expect(((await bob.next('puback')) as { reasonCode: number }).reasonCode).toBe(0)
    const m = await watcher.next()
    expect(m.topic).toBe('clients/bob/status')
    expect(await watcher.quiet()).toEqual([])
    bob.end()
    await watcher.end()
  })

  test('%u and %c substitution; a user cannot reach another user\'s topics', async () => {
    const bob = await RawClient.connected(b.port, 5, { clientId: 'bobs-phone', username: 'bob', password: Buffer.from('bob-pw') })
    bob.send({ cmd: 'publish', topic: 'by-id/bobs-phone', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await bob.next('puback')) as { reasonCode: number }).reasonCode).toBeLessThan(0x80)
    bob.send({ cmd: 'publish', topic: 'clients/alice/x', payload: Buffer.from('2'), qos: 1, messageId: 2, retain: false, dup: false })
    expect(((await bob.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    bob.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'clients/bob/#', qos: 1 }, { topic: 'clients/+/#', qos: 1 }, { topic: 'public/news', qos: 0 }] })
    expect(((await bob.next('suback')) as ISubackPacket).granted).toEqual([1, 0x87, 0])
    bob.end()
  })

  test('denied subscribe: SUBACK 0x80 on 3.1.1; deny wins over allow (a filter overlapping a deny rule is refused)', async () => {
    const alice = await RawClient.connected(b.port, 4, { username: 'alice', password: Buffer.from('alice-pw') })
    alice.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sensors/#', qos: 0 }, { topic: 'sensors/public', qos: 0 }, { topic: 'other/x', qos: 1 }] })
    expect(((await alice.next('suback')) as ISubackPacket).granted).toEqual([0x80, 0, 1])
    alice.end()
    const anon = await RawClient.connected(b.port, 4)
    anon.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'public/#', qos: 0 }, { topic: '#', qos: 0 }] })
    expect(((await anon.next('suback')) as ISubackPacket).granted).toEqual([0, 0x80])
    anon.send({ cmd: 'publish', topic: 'public/x', payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false })
    await anon.next('puback') // 3.1.1 cannot carry a reason: acknowledged, and dropped
    anon.end()
  })

  test('publish decisions stay right past the per-client memory of them: 600 topics, every other one denied, twice over', async () => {
    const c = await RawClient.connected(b.port, 5, { clientId: 'many-topics', username: 'alice', password: Buffer.from('alice-pw') })
    const codes = new Map<string, number>()
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 600; i++) {
        const topic = i % 2 ? `sensors/t${i}` : `actuators/t${i}` // alice may publish under sensors/ only
        c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: i + 1, retain: false, dup: false })
        const ack = (await c.next('puback')) as { messageId: number; reasonCode?: number }
        const code = ack.reasonCode ?? 0
        if (round === 1) expect(code).toBe(codes.get(topic)!)
        codes.set(topic, code)
      }
    }
    expect([...codes].filter(([t, code]) => (t.startsWith('sensors/') ? code >= 0x80 : code !== 0x87))).toEqual([])
    c.end()
  })

  test('publish decisions remembered for the levels that decide them agree with the rules: 300 rule sets, 30,000 topics', () => {
    // Words that share characters ('a', 'ab'), empty levels and a `$` level: where a remembered answer stops holding.
    const words = ['a', 'ab', 'b', '', '$x']
    let seed = 17
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n
    }
    const level = () => words[random(words.length)]!
    const filter = () => {
      const levels = Array.from({ length: 1 + random(3) }, () => (random(4) === 0 ? '+' : level()))
      if (random(3) > 0) levels[levels.length - 1] = '#' // mostly `#` rules (remembered by levels), some not (by topic)
      return levels.join('/') || 'a' // (a filter of one empty level is refused by the options)
    }
    let byLevels = 0
    for (let round = 0; round < 300; round++) {
      const publish = Array.from({ length: random(3) }, filter)
      const deny = Array.from({ length: random(2) }, filter)
      const plugin = auth({ allowAnonymous: true, acl: [{ anonymous: true, publish, deny: { publish: deny } }] })
      const client = { clientId: `c${round}`, username: undefined, protocolVersion: 4 as const, address: '127.0.0.1' }
      if ([...publish, ...deny].every((f) => f === '#' || f.endsWith('/#'))) byLevels++
      let last = level()
      for (let n = 0; n < 100; n++) {
        // A new topic, or the last one cut short, carried on, or with a sibling level: every way a memory is tested.
        const cut = last.split('/').slice(0, 1 + random(3)).join('/')
        const topic = [Array.from({ length: 1 + random(4) }, level).join('/'), cut, `${cut}/${level()}`, `${cut}${level()}`][random(4)]!
        if (topic === '' || topicNameError(topic, { maxTopicLevels: 128, maxTopicLength: 65535 })) continue
        const want = !deny.some((f) => filterMatches(f, topic)) && publish.some((f) => filterMatches(f, topic))
        const got = plugin.authorizePublish!(client, { topic, payload: Buffer.alloc(0), qos: 0, retain: false })
        if ((got === 'allow') !== want) expect(`${publish} deny ${deny}: ${last} then ${topic}: ${got}`).toBe(`${publish} deny ${deny}: ${last} then ${topic}: ${want}`)
        last = topic
      }
    }
    expect(byLevels).toBeGreaterThan(100)
  })

  test('filter coverage and overlap rules', () => {
    expect(filterCovers('#', 'a/b')).toBe(true)
    expect(filterCovers('a/+', 'a/b')).toBe(true)
    expect(filterCovers('a/+', 'a/+')).toBe(true)
    expect(filterCovers('a/+', 'a/#')).toBe(false)
    expect(filterCovers('a/b', 'a/+')).toBe(false)
    expect(filterCovers('#', '$SYS/#')).toBe(false)
    expect(filtersOverlap('a/#', 'a')).toBe(true)
    expect(filtersOverlap('a/+/c', 'a/b/+')).toBe(true)
    expect(filtersOverlap('a/b', 'a/c')).toBe(false)
    expect(filtersOverlap('#', '$SYS/x')).toBe(false)
  })
})

describe('auth plugin: options', () => {
  test('plain-text passwords are refused unless allowPlainTextPasswords, naming the field', () => {
    expect(() => auth({ users: { eve: { password: 'plain' } } })).toThrow('users.eve.password: expected a hash from `bun run hash-password`')
    expect(() => auth({ users: { eve: { password: 'plain' } }, allowPlainTextPasswords: true })).not.toThrow()
    expect(() => auth({ acl: [{ publish: ['x'] }] })).toThrow('acl[0]: a rule needs exactly one of `user`')
  })

  test('plain-text passwords work when allowed (development)', async () => {
    const dev = await startBroker({ plugins: [auth({ users: { dev: { password: 'devpw' } }, allowPlainTextPasswords: true, acl: [{ user: '*', publish: ['#'], subscribe: ['#'] }] })] })
    const c = await connect(dev.port, { username: 'dev', password: 'devpw' })
    await c.end()
    await expect(connect(dev.port, { username: 'dev', password: 'wrong' })).rejects.toThrow()
    await dev.close()
  })

  test('`bun run hash-password` prints a hash the plugin accepts', async () => {
    const proc = Bun.spawn([process.execPath, 'scripts/hash-password.ts', 'hunter2'], { cwd: repoRoot, stdout: 'pipe' })
    const hash = (await new Response(proc.stdout).text()).trim()
    expect(hash).toStartWith('$argon2id$')
    expect(await Bun.password.verify('hunter2', hash)).toBe(true)
  })
})
