import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { auth } from '../plugins/auth.ts'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

const ADMIN = 'admin-token-0123456789abcdef'
const READER = 'reader-token-0123456789abcdef'
const PUBLISHER = 'publisher-token-0123456789ab'
let b: TestBroker
let api: string
beforeAll(async () => {
  b = await startBroker({
    limits: { maxPacketSize: 64 * 1024 },
    http: {
      host: '127.0.0.1',
      port: 0,
      tokens: [
        { name: 'admin', token: ADMIN, scopes: ['read', 'publish', 'admin'] },
        { name: 'reader', token: READER, scopes: ['read'] },
        { name: 'publisher', token: PUBLISHER, scopes: ['publish'] },
      ],
    },
    plugins: [
      auth({
        users: { alice: { password: await Bun.password.hash('alice-pw') } },
        allowAnonymous: true,
        acl: [
          { user: 'alice', publish: ['alice/#'], subscribe: ['#'] },
          { anonymous: true, publish: ['#'], subscribe: ['#'] },
        ],
      }),
    ],
  })
  const http = b.addresses.find((a) => a.type === 'http')!
  api = `http://127.0.0.1:${http.port}`
})
afterAll(() => b.close())

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` })
const postJson = (body: unknown, headers: Record<string, string> = bearer(ADMIN)) =>
  fetch(`${api}/api/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })

describe('HTTP API: publish', () => {
  test('POST /api/v1/publish (JSON) reaches MQTT subscribers with QoS, retain and properties', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'http/#', { qos: 1 })
    const res = await postJson({ topic: 'http/a', payload: 'hello', qos: 1, properties: { contentType: 'text/plain', responseTopic: 'http/reply', correlationData: 'c-1', userProperties: { from: 'curl' }, messageExpiryInterval: 60 } })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ topic: 'http/a', qos: 1, retain: false, bytes: 5, reached: 1 })
    const m = await sub.next()
    expect(m.payload).toBe('hello')
    expect(m.packet.qos).toBe(1)
    expect(m.packet.properties).toMatchObject({ contentType: 'text/plain', responseTopic: 'http/reply', userProperties: { from: 'curl' } })
    expect(Buffer.from(m.packet.properties!.correlationData!).toString()).toBe('c-1')
    expect(m.packet.properties!.messageExpiryInterval).toBeLessThanOrEqual(60)
    await sub.end()
  })

  test('encodings: base64 and json; a raw body with ?topic=&qos=&retain= (curl --data-binary)', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, 'enc/#')
    expect((await postJson({ topic: 'enc/b64', payload: Buffer.from([1, 2, 3]).toString('base64'), encoding: 'base64' })).status).toBe(200)
    expect((await postJson({ topic: 'enc/json', payload: { t: 21.5 }, encoding: 'json' })).status).toBe(200)
    const raw = await fetch(`${api}/api/v1/publish?topic=enc/raw&qos=1&retain=true`, { method: 'POST', headers: { ...bearer(ADMIN), 'content-type': 'application/octet-stream' }, body: new Uint8Array([0xde, 0xad]) })
    expect(await raw.json()).toMatchObject({ topic: 'enc/raw', qos: 1, retain: true, bytes: 2 })
    const got = [await sub.next(), await sub.next(), await sub.next()]
    expect([...Buffer.from(got[0]!.packet.payload as Buffer)]).toEqual([1, 2, 3])
    expect(got[1]!.payload).toBe('{"t":21.5}')
    expect(got[1]!.packet.topic).toBe('enc/json')
    expect([...Buffer.from(got[2]!.packet.payload as Buffer)]).toEqual([0xde, 0xad])
    await sub.end()
  })

  test('400 names the bad field; malformed JSON is 400; 413 over the maximum packet size', async () => {
    const cases: Array<[unknown, string]> = [
      [{ topic: 'x', payload: 'p', qos: 3 }, 'qos: expected 0, 1 or 2, got 3'],
      [{ payload: 'p' }, 'topic: expected a topic name'],
      [{ topic: 'a/+', payload: 'p' }, 'topic: wildcards are not allowed'],
      [{ topic: 'x', payload: 5 }, 'payload: expected a string with encoding "utf8", got 5'],
      [{ topic: 'x', payload: '!!', encoding: 'base64' }, 'payload: expected base64 text'],
      [{ topic: 'x', payload: 'p', retain: 'yes' }, 'retain: expected true or false, got "yes"'],
      [{ topic: 'x', payload: 'p', extra: 1 }, 'extra: unknown field'],
    ]
    for (const [body, message] of cases) {
      const res = await postJson(body)
      expect(res.status).toBe(400)
      const json = (await res.json()) as { error: string; message: string }
      expect(json.error).toBe('bad_request')
      expect(json.message).toContain(message)
    }
    const malformed = await postJson('{"topic": "x",')
    expect(malformed.status).toBe(400)
    expect(((await malformed.json()) as { message: string }).message).toContain('not valid JSON')
    const huge = await fetch(`${api}/api/v1/publish?topic=big`, { method: 'POST', headers: { ...bearer(ADMIN), 'content-type': 'application/octet-stream' }, body: new Uint8Array(70 * 1024) })
    expect(huge.status).toBe(413)
    const badQuery = await fetch(`${api}/api/v1/publish?topic=x&qos=7`, { method: 'POST', headers: bearer(ADMIN), body: 'x' })
    expect(badQuery.status).toBe(400)
    expect(((await badQuery.json()) as { message: string }).message).toContain('qos: expected 0, 1 or 2')
  })

  test('401 without or with wrong credentials; 403 without the scope; ACLs apply to HTTP publishes', async () => {
    expect((await postJson({ topic: 'x', payload: 'p' }, {})).status).toBe(401)
    const wrong = await postJson({ topic: 'x', payload: 'p' }, bearer('not-a-real-token-at-all'))
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toContain('Bearer')
    expect((await postJson({ topic: 'x', payload: 'p' }, bearer(READER))).status).toBe(403)
    expect((await postJson({ topic: 'x', payload: 'p' }, basic('alice', 'wrong'))).status).toBe(401)
    expect((await postJson({ topic: 'alice/ok', payload: 'p' }, basic('alice', 'alice-pw'))).status).toBe(200)
    const denied = await postJson({ topic: 'bob/not-yours', payload: 'p' }, basic('alice', 'alice-pw'))
    expect(denied.status).toBe(403)
    expect(((await denied.json()) as { message: string }).message).toContain('not allowed to publish to bob/not-yours')
  })
})

describe('HTTP API: Basic credentials', () => {
  test('failed Basic logins count towards the address ban like failed MQTT logins: then even the right password is refused, unverified', async () => {
    const own = await startBroker({
      http: { host: '127.0.0.1', port: 0, anonymousScopes: [] },
      bans: { authFailures: { max: 2, windowSeconds: 60, banSeconds: 60 } },
      plugins: [auth({ users: { alice: { password: await Bun.password.hash('alice-pw') } }, acl: [{ user: 'alice', publish: ['#'] }] })],
    })
    const url = `http://127.0.0.1:${own.addresses.find((a) => a.type === 'http')!.port}/api/v1/publish`
    const post = (pass: string) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...basic('alice', pass) }, body: JSON.stringify({ topic: 't', payload: 'p' }) })
    expect((await post('alice-pw')).status).toBe(200)
    for (let i = 0; i < 3; i++) expect((await post(`guess-${i}`)).status).toBe(401)
    expect(own.logs.filter((l) => l.event === 'ban.added').map((l) => [l.kind, l.value])).toContainEqual(['address', '127.0.0.1'])
    const real = Bun.password.verify
    let hashed = 0
    Bun.password.verify = (...args: Parameters<typeof real>) => (hashed++, real(...args))
    try {
      expect((await post('alice-pw')).status).toBe(401) // banned: refused before any verification
      expect(hashed).toBe(0)
    } finally {
      Bun.password.verify = real
    }
    await own.close()
  })
})

describe('HTTP API: retained, clients, subscriptions, stats', () => {
  test('GET /api/v1/retained?filter= lists them; DELETE /api/v1/retained/{topic} clears one', async () => {
    await postJson({ topic: 'ret/one/a', payload: 'A', retain: true })
    await postJson({ topic: 'ret/two', payload: 'B', retain: true })
    const list = await (await fetch(`${api}/api/v1/retained?filter=ret/%23`, { headers: bearer(READER) })).json()
    expect((list as { retained: { topic: string }[] }).retained.map((r) => r.topic).sort()).toEqual(['ret/one/a', 'ret/two'])
    expect((await fetch(`${api}/api/v1/retained?filter=bad/%23/x`, { headers: bearer(READER) })).status).toBe(400)
    const del = await fetch(`${api}/api/v1/retained/ret/one/a`, { method: 'DELETE', headers: bearer(PUBLISHER) })
    expect(await del.json()).toEqual({ topic: 'ret/one/a', cleared: true })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'ret/#')
    expect((await sub.next()).topic).toBe('ret/two')
    expect(await sub.quiet()).toEqual([])
    await sub.end()
    expect((await fetch(`${api}/api/v1/retained/x`, { method: 'DELETE', headers: bearer(READER) })).status).toBe(403)
  })

  test('GET /api/v1/clients and /subscriptions; DELETE /api/v1/clients/{id} disconnects (MQTT 5: 0x98), admin only', async () => {
    const c = await RawClient.connected(b.port, 5, { clientId: 'listed', username: 'alice', password: Buffer.from('alice-pw') })
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'list/+', qos: 1 }] })
    await c.next('suback')
    const clients = (await (await fetch(`${api}/api/v1/clients`, { headers: bearer(READER) })).json()) as { clients: Array<Record<string, unknown>> }
    expect(clients.clients.find((x) => x.clientId === 'listed')).toMatchObject({ connected: true, username: 'alice', protocolVersion: 5, address: '127.0.0.1', subscriptions: 1, queued: 0, inflight: 0 })
    const subs = (await (await fetch(`${api}/api/v1/subscriptions`, { headers: bearer(READER) })).json()) as { subscriptions: Array<Record<string, unknown>> }
    expect(subs.subscriptions).toContainEqual({ clientId: 'listed', filter: 'list/+', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionIdentifier: null })
    expect((await fetch(`${api}/api/v1/clients/listed`, { method: 'DELETE', headers: bearer(READER) })).status).toBe(403)
    const kicked = await fetch(`${api}/api/v1/clients/listed`, { method: 'DELETE', headers: bearer(ADMIN) })
    expect(await kicked.json()).toEqual({ clientId: 'listed', disconnected: true, node: null })
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x98)
    await c.waitClosed()
    expect((await fetch(`${api}/api/v1/clients/nobody`, { method: 'DELETE', headers: bearer(ADMIN) })).status).toBe(404)
  })

  test('GET /api/v1/stats counts HTTP publishes like MQTT ones', async () => {
    const before = (await (await fetch(`${api}/api/v1/stats`, { headers: bearer(READER) })).json()) as Record<string, number>
    await postJson({ topic: 'count/me', payload: 'x' })
    const after = (await (await fetch(`${api}/api/v1/stats`, { headers: bearer(READER) })).json()) as Record<string, number>
    expect(after.messagesReceived).toBe(before.messagesReceived! + 1)
    expect(after).toHaveProperty('clientsConnected')
    expect(after).toHaveProperty('retained')
  })
})

describe('HTTP API: health, metrics, OpenAPI, errors', () => {
  test('/healthz is always open; /readyz is ready; /metrics needs read (Prometheus text)', async () => {
    expect(await (await fetch(`${api}/healthz`)).json()).toEqual({ status: 'ok' })
    expect((await fetch(`${api}/readyz`)).status).toBe(200)
    expect((await fetch(`${api}/metrics`)).status).toBe(401)
    const res = await fetch(`${api}/metrics`, { headers: bearer(READER) })
    expect(res.headers.get('content-type')).toContain('text/plain')
    const text = await res.text()
    for (const name of ['midge_connections', 'midge_messages_received_total{qos="0"}', 'midge_messages_sent_total{qos="1"}', 'midge_messages_dropped_total', 'midge_bytes_received_total', 'midge_retained_messages', 'midge_subscriptions', 'midge_queued_messages', 'midge_inflight_messages', 'midge_event_loop_lag_seconds']) {
      expect(text).toContain(name)
    }
    expect(text).toMatch(/# TYPE midge_messages_received_total counter/)
  })

  test('http.publicMetrics serves /metrics without credentials', async () => {
    const open = await startBroker({ http: { host: '127.0.0.1', port: 0, publicMetrics: true } })
    const port = open.addresses.find((a) => a.type === 'http')!.port
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200)
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/stats`)).status).toBe(401)
    await open.close()
  })

  test('/openapi.json describes every route, with request schemas from the zod schemas', async () => {
    const doc = (await (await fetch(`${api}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { properties?: Record<string, unknown> } }> } }>> }
    expect(doc.openapi).toBe('3.1.0')
    for (const path of ['/api/v1/publish', '/api/v1/retained', '/api/v1/retained/{topic}', '/api/v1/clients', '/api/v1/clients/{id}', '/api/v1/subscriptions', '/api/v1/stats', '/healthz', '/readyz', '/metrics']) expect(doc.paths).toHaveProperty([path])
    const schema = doc.paths['/api/v1/publish']!.post!.requestBody!.content['application/json']!.schema
    expect(Object.keys(schema.properties ?? {}).sort()).toEqual(['encoding', 'payload', 'properties', 'qos', 'retain', 'topic'])
  })

  test('unknown routes are JSON 404s; the broker survives garbage requests', async () => {
    const res = await fetch(`${api}/nope`)
    expect(res.status).toBe(404)
    expect(await res.json()).toMatchObject({ error: 'not_found' })
    let closed!: () => void
    const gone = new Promise<void>((resolve) => (closed = resolve))
    const socket = await Bun.connect({ hostname: '127.0.0.1', port: Number(new URL(api).port), socket: { data() {}, close: () => closed() } })
    socket.write('GARBAGE / HTTP/9.9\r\n\r\n\x00\xff')
    await gone
    expect((await fetch(`${api}/healthz`)).status).toBe(200)
  })
})
