import { afterAll, describe, expect, test } from 'bun:test'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { webhook } from '../plugins/webhook.ts'
import { startBroker, until } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

const dir = mkdtempSync(join(tmpdir(), 'midge-webhook-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0
const outbox = () => join(dir, `outbox-${++n}.db`)

interface Event {
  type: string
  topic?: string
  payload?: string
  encoding?: string
  qos?: number
  retain?: boolean
  clientId?: string
  userProperties?: Record<string, string> | null
  timestamp?: number
}

/** A real HTTP receiver on 127.0.0.1 that records events and can fail or hang on purpose. */
function receiver(port = 0) {
  const events: Event[] = []
  const requests: { body: string; signature: string | null }[] = []
  const state = { failNext: 0, status: 500, hang: false }
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port,
    async fetch(req) {
      const body = await req.text()
      if (state.hang) return new Promise<Response>(() => {})
      if (state.failNext > 0) {
        state.failNext--
        return new Response('nope', { status: state.status })
      }
      requests.push({ body, signature: req.headers.get('x-midge-signature') })
      events.push(...(JSON.parse(body) as { events: Event[] }).events)
      return new Response('ok')
    },
  })
  return { server, events, requests, state, url: `http://127.0.0.1:${server.port}/hook` }
}

describe('webhook plugin', () => {
  test('matching messages are POSTed as JSON in order, signed with HMAC-SHA256; others are not', async () => {
    const r = receiver()
    const b = await startBroker({ plugins: [webhook({ url: r.url, topics: ['sensors/#'], secret: 's3cret', outbox: outbox() })] })
    const c = await connect(b.port, { protocolVersion: 5, clientId: 'pub' })
    await c.client.publishAsync('sensors/a', 'text', { qos: 1, properties: { userProperties: { unit: 'C' } } })
    await c.client.publishAsync('other/x', 'ignored', { qos: 1 })
    await c.client.publishAsync('sensors/b', Buffer.from([0xff, 0x00, 0xfe]), { qos: 0, retain: true })
    await until(() => r.events.length === 2, 5000, 'two events')
    const [a, bin] = r.events
    expect(a).toMatchObject({ type: 'message', topic: 'sensors/a', payload: 'text', encoding: 'utf8', qos: 1, retain: false, clientId: 'pub', userProperties: { unit: 'C' } })
    expect(typeof a!.timestamp).toBe('number')
    expect(bin).toMatchObject({ topic: 'sensors/b', payload: Buffer.from([0xff, 0x00, 0xfe]).toString('base64'), encoding: 'base64', retain: true })
    for (const req of r.requests) expect(req.signature).toBe(`sha256=${createHmac('sha256', 's3cret').update(req.body).digest('hex')}`)
    await c.end()
    await b.close()
    r.server.stop(true)
  })

  test('connect and disconnect events when asked', async () => {
    const r = receiver()
    const b = await startBroker({ plugins: [webhook({ url: r.url, events: ['connect', 'disconnect'], outbox: outbox() })] })
    const c = await connect(b.port, { clientId: 'ev', username: 'u' })
    c.client.publish('t', 'not posted')
    await c.end()
    await until(() => r.events.length === 2, 5000, 'two events')
    expect(r.events.map((e) => `${e.type} ${e.clientId}`)).toEqual(['connect ev', 'disconnect ev'])
    await b.close()
    r.server.stop(true)
  })

  test('a failing receiver is retried with backoff; nothing is lost and order is kept', async () => {
    const r = receiver()
    r.state.failNext = 3
    const b = await startBroker({ plugins: [webhook({ url: r.url, outbox: outbox(), retry: { initialDelayMs: 20, maxDelayMs: 100 } })] })
    for (let i = 0; i < 20; i++) b.midge.publish({ topic: 'seq', payload: String(i) })
    await until(() => r.events.length === 20, 10000, 'all 20 events')
    expect(r.events.map((e) => e.payload)).toEqual([...Array(20).keys()].map(String))
    expect(b.logs.filter((l) => l.event === 'webhook.retry').length).toBe(3)
    await b.close()
    r.server.stop(true)
  })

  test('receiver down for a while, then back: every message arrives, in order', async () => {
    const first = receiver()
    const port = first.server.port
    first.server.stop(true)
    const b = await startBroker({ plugins: [webhook({ url: `http://127.0.0.1:${port}/hook`, outbox: outbox(), retry: { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 1000 } })] })
    const pub = await connect(b.port)
    for (let i = 0; i < 30; i++) await pub.client.publishAsync('down', String(i), { qos: 1 })
    await until(() => b.logs.some((l) => l.event === 'webhook.retry'), 5000, 'a failed attempt')
    const back = receiver(port)
    await until(() => back.events.length === 30, 10000, 'all 30 after the receiver is back')
    expect(back.events.map((e) => e.payload)).toEqual([...Array(30).keys()].map(String))
    await pub.end()
    await b.close()
    back.server.stop(true)
  })

  test('the outbox survives a broker restart and resumes where it stopped', async () => {
    const path = outbox()
    const r = receiver()
    r.state.hang = true
    const b1 = await startBroker({ plugins: [webhook({ url: r.url, outbox: path, timeoutMs: 200, retry: { initialDelayMs: 50 } })] })
    const pub = await connect(b1.port)
    for (let i = 0; i < 10; i++) await pub.client.publishAsync('restart', String(i), { qos: 1 }) // acknowledged: in the outbox
    await pub.end()
    await b1.close()
    r.state.hang = false
    const b2 = await startBroker({ plugins: [webhook({ url: r.url, outbox: path })] })
    await until(() => r.events.length === 10, 10000, 'all 10 after restart')
    expect(r.events.map((e) => e.payload)).toEqual([...Array(10).keys()].map(String))
    await b2.close()
    r.server.stop(true)
  })

  test('past the retry limit (or on a 4xx) events go to the dead-letter table and are counted', async () => {
    const r = receiver()
    r.state.failNext = 100
    const plugin = webhook({ url: r.url, outbox: outbox(), retry: { maxAttempts: 2, initialDelayMs: 10 } })
    const b = await startBroker({ plugins: [plugin] })
    b.midge.publish({ topic: 'dead', payload: 'x' })
    await until(() => plugin.status().deadLettered === 1, 5000, 'dead-lettered')
    r.state.failNext = 1
    r.state.status = 400
    b.midge.publish({ topic: 'dead', payload: 'y' })
    await until(() => plugin.status().deadLettered === 2, 5000, 'refused with 400: dead-lettered at once')
    r.state.failNext = 0
    b.midge.publish({ topic: 'alive', payload: 'z' })
    await until(() => r.events.length === 1)
    expect(plugin.status()).toMatchObject({ outbox: 0, delivered: 1, deadLettered: 2 })
    await b.close()
    r.server.stop(true)
  })

  test('never blocks routing: with a receiver that hangs, MQTT traffic flows', async () => {
    const r = receiver()
    r.state.hang = true
    const b = await startBroker({ plugins: [webhook({ url: r.url, outbox: outbox(), timeoutMs: 5000 })] })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'flow')
    const pub = await connect(b.port)
    for (let i = 0; i < 50; i++) await pub.client.publishAsync('flow', String(i), { qos: 1 })
    await until(() => sub.messages.length === 50, 5000, 'all delivered to MQTT')
    await Promise.all([sub.end(), pub.end()])
    await b.close()
    r.server.stop(true)
  })

  test('options are validated when the plugin is made', () => {
    expect(() => webhook({ url: 'ftp://x' })).toThrow('Invalid options for plugin webhook:\n  url: expected an http:// or https:// URL')
  })
})
