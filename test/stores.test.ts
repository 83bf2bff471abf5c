/**
 * The store contracts, each run against every implementation. The retained-store contract (RetainedPersistence,
 * src/plugin.ts): the sqlite plugin's file and the cluster's NATS KV bucket. Each is used as the broker uses it (through a broker that
 * started with it), and a second broker on the same backend loads what the first wrote.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sqlite } from '../plugins/sqlite.ts'
import { createBroker, type Message, type RetainedPersistence, type SessionPersistence, type StoredSession, type Subscription, type UserConfig } from '../src/index.ts'
import { createLogger } from '../src/logger.ts'
import { natsServerPath, startNats, type NatsServer } from './helpers/nats.ts'

interface Backend {
  name: string
  /** Broker config whose retained store is this backend (a new broker on it sees what earlier ones kept). */
  config(): UserConfig
  setup?(): Promise<void>
  teardown?(): Promise<void>
}

/** A broker on the backend, and its retained store as the broker sees it. */
async function open(backend: Backend): Promise<{ store: RetainedPersistence; close(): Promise<void> }> {
  const midge = createBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], sys: { intervalSeconds: 0 }, ...backend.config() }, { logger: createLogger('silent') })
  await midge.listen()
  return { store: midge.broker.plugins.retainedStore!, close: () => midge.close() }
}

const message = (topic: string, payload: string | Buffer, extra: Partial<Message> = {}): Message => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
  properties: undefined,
  expiresAt: 0,
  origin: undefined,
  ...extra,
})

/** Writes through one broker, waits until durable, and loads through a second one. */
async function roundTrip(backend: Backend, write: (store: RetainedPersistence) => void): Promise<Map<string, Message>> {
  const first = await open(backend)
  write(first.store)
  await first.store.flushed?.()
  await first.close()
  const second = await open(backend)
  const loaded = new Map([...(await second.store.load())].map((m) => [m.topic, m]))
  await second.close()
  return loaded
}

let dir = ''
let nats: NatsServer | null = null
/** Each test gets a backend of its own: a new database file, a new cluster name (and so KV bucket). */
let generation = 0
const backends: Backend[] = [
  {
    name: 'sqlite',
    config: () => ({ plugins: [sqlite({ path: join(dir, `retained-${generation}.db`) })] }),
    async setup() {
      dir = mkdtempSync(join(tmpdir(), 'midge-stores-'))
    },
    async teardown() {
      rmSync(dir, { recursive: true, force: true })
    },
  },
  {
    name: 'cluster (NATS KV)',
    config: () => ({ cluster: { nats: { servers: nats!.url, name: `contract${generation}` } } }),
    async setup() {
      nats = await startNats()
    },
    async teardown() {
      await nats?.close()
    },
  },
]

for (const backend of backends) {
  const skip = backend.name.startsWith('cluster') && !natsServerPath
  describe.skipIf(skip)(`retained store contract: ${backend.name}`, () => {
    beforeAll(() => backend.setup?.())
    afterAll(() => backend.teardown?.())

    test('a message kept and flushed is loaded whole by the next broker: topic, bytes, QoS, properties, expiry', async () => {
      generation++
      const expiresAt = Date.now() + 3_600_000
      const binary = Buffer.from([0, 255, 1, 254, 0x80])
      const loaded = await roundTrip(backend, (store) => {
        store.set('sensors/kitchen', message('sensors/kitchen', '21.5'))
        store.set('raw/bytes', message('raw/bytes', binary, { qos: 2 }))
        store.set('with/properties', message('with/properties', '{}', { qos: 0, expiresAt, properties: { contentType: 'application/json', userProperties: { unit: 'C', tags: ['a', 'b'] }, correlationData: Buffer.from([1, 2, 3]), payloadFormatIndicator: true } }))
      })
      expect([...loaded.keys()].sort()).toEqual(['raw/bytes', 'sensors/kitchen', 'with/properties'])
      expect(loaded.get('sensors/kitchen')!.payload.toString()).toBe('21.5')
      expect(loaded.get('sensors/kitchen')!.qos).toBe(1)
      expect(Buffer.compare(loaded.get('raw/bytes')!.payload, binary)).toBe(0)
      expect(loaded.get('raw/bytes')!.qos).toBe(2)
      const withProps = loaded.get('with/properties')!
      expect(withProps.expiresAt).toBe(expiresAt)
      expect(withProps.properties?.contentType).toBe('application/json')
      expect(withProps.properties?.userProperties).toEqual({ unit: 'C', tags: ['a', 'b'] })
      expect([...(withProps.properties?.correlationData ?? [])]).toEqual([1, 2, 3])
      expect(withProps.properties?.payloadFormatIndicator).toBe(true)
    })

    test('a replaced message loads as its last version; a cleared one does not load', async () => {
      generation++
      const loaded = await roundTrip(backend, (store) => {
        store.set('a', message('a', 'first'))
        store.set('a', message('a', 'second'))
        store.set('b', message('b', 'kept, then cleared'))
        store.set('b', null)
        store.set('never', null) // clearing what was never kept is fine
      })
      expect([...loaded.keys()]).toEqual(['a'])
      expect(loaded.get('a')!.payload.toString()).toBe('second')
    })

    test('topics with any characters a topic may hold round-trip', async () => {
      generation++
      const topics = ['ünïcødé/温度', 'with space/and+plus?', '$share-like/x', 'a//b', '/leading', 'trailing/', "quote'\"/back\\slash"]
      const loaded = await roundTrip(backend, (store) => {
        for (const topic of topics) store.set(topic, message(topic, topic))
      })
      expect([...loaded.keys()].sort()).toEqual([...topics].sort())
      for (const topic of topics) expect(loaded.get(topic)!.payload.toString()).toBe(topic)
    })

    test('flushed() says when what was kept is durable: null with nothing pending, else a promise that resolves', async () => {
      generation++
      const { store, close } = await open(backend)
      await store.flushed?.()
      expect(store.flushed?.() ?? null).toBe(null)
      store.set('x', message('x', '1'))
      const pending = store.flushed?.()
      expect(pending).toBeInstanceOf(Promise)
      await pending
      await close()
    })
  })
}

/**
 * The session-store contract (SessionPersistence, src/plugin.ts), run against every implementation (today the sqlite
 * plugin): what the broker writes as sessions change is what the next broker on the same file loads.
 */
const sessionBackends: Backend[] = [backends[0]!]

const subscription = (clientId: string, filter: string, extra: Partial<Subscription> = {}): Subscription => ({ clientId, filter, qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: 0, group: undefined, ...extra })

/** Writes sessions through one broker's store, waits until durable, and loads them through a second broker's. */
async function sessionRoundTrip(backend: Backend, write: (store: SessionPersistence) => void): Promise<Map<string, StoredSession>> {
  const open = async () => {
    const midge = createBroker({ listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }], sys: { intervalSeconds: 0 }, ...backend.config() }, { logger: createLogger('silent') })
    await midge.listen()
    return { store: midge.broker.plugins.sessionStore!, close: () => midge.close() }
  }
  const first = await open()
  write(first.store)
  await first.store.flushed()
  await first.close()
  const second = await open()
  const loaded = new Map((await second.store.load()).map((s) => [s.clientId, s]))
  await second.close()
  return loaded
}

for (const backend of sessionBackends) {
  describe(`session store contract: ${backend.name}`, () => {
    beforeAll(() => backend.setup?.())
    afterAll(() => backend.teardown?.())

    test('a session with its subscriptions, queued and in-flight messages and open QoS 2 ids loads whole, in stream order', async () => {
      generation++
      const loaded = await sessionRoundTrip(backend, (store) => {
        store.saveSession('device-1', 3600, 0)
        store.saveSubscription('device-1', 'cmd/#', subscription('device-1', 'cmd/#', { qos: 2, identifier: 7, noLocal: true }))
        store.saveSubscription('device-1', '$share/g/jobs/+', subscription('device-1', 'jobs/+', { group: 'g' }))
        store.saveDelivery('device-1', { seq: 2, packetId: 0, state: 'queued', qos: 1, retain: false, subscriptionIds: undefined, message: message('cmd/b', 'second', { retain: false }) })
        store.saveDelivery('device-1', { seq: 1, packetId: 5, state: 'puback', qos: 1, retain: true, subscriptionIds: [7], message: message('cmd/a', 'first') })
        store.saveReceived('device-1', 42)
      })
      const s = loaded.get('device-1')!
      expect(s.expiryInterval).toBe(3600)
      expect(s.subscriptions.map((x) => [x.filter, x.group, x.qos, x.identifier, x.noLocal]).sort()).toEqual([
        ['cmd/#', undefined, 2, 7, true],
        ['jobs/+', 'g', 1, 0, false],
      ])
      expect(s.deliveries.map((d) => [d.seq, d.packetId, d.state, d.message.topic, d.message.payload.toString(), d.retain, d.subscriptionIds])).toEqual([
        [1, 5, 'puback', 'cmd/a', 'first', true, [7]],
        [2, 0, 'queued', 'cmd/b', 'second', false, undefined],
      ])
      expect(s.awaitingRelease).toEqual([42])
    })

    test('what is deleted stays deleted: a subscription, a delivery, a released QoS 2 id, a whole session', async () => {
      generation++
      const loaded = await sessionRoundTrip(backend, (store) => {
        store.saveSession('keeps', 60, 0)
        store.saveSubscription('keeps', 'a', subscription('keeps', 'a'))
        store.saveSubscription('keeps', 'b', subscription('keeps', 'b'))
        store.deleteSubscription('keeps', 'a')
        store.saveDelivery('keeps', { seq: 1, packetId: 1, state: 'pubrec', qos: 2, retain: false, subscriptionIds: undefined, message: message('b', 'x') })
        store.saveDelivery('keeps', { seq: 2, packetId: 2, state: 'pubcomp', qos: 2, retain: false, subscriptionIds: undefined, message: message('b', 'y') })
        store.deleteDelivery('keeps', 1)
        store.saveReceived('keeps', 9)
        store.deleteReceived('keeps', 9)
        store.saveSession('goes', 60, 0)
        store.saveSubscription('goes', 'x', subscription('goes', 'x'))
        store.deleteSession('goes')
      })
      expect([...loaded.keys()]).toEqual(['keeps'])
      const s = loaded.get('keeps')!
      expect(s.subscriptions.map((x) => x.filter)).toEqual(['b'])
      expect(s.deliveries.map((d) => [d.seq, d.state])).toEqual([[2, 'pubcomp']])
      expect(s.awaitingRelease).toEqual([])
    })
  })
}
