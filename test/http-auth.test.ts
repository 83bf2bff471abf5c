/**
 * The httpAuth plugin against a real local HTTP endpoint that answers, refuses, hangs, fails, returns garbage or is
 * not there; clients are raw MQTT 5 connections, so the reason codes are what a client sees.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test'
import type { IPubackPacket, ISubackPacket } from 'mqtt-packet'
import { auth } from '../plugins/auth.ts'
import { httpAuth, type HttpAuthOptions } from '../plugins/http-auth.ts'
import { freePort } from '../bench/client.ts'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { RawClient } from './helpers/raw.ts'

type Mode = 'answer' | 'slow' | 'garbage' | 'error' | 'forbidden'
let mode: Mode = 'answer'
/** What the endpoint answers in `answer` mode, from the request. */
let answer: (body: Record<string, unknown>) => unknown = () => ({ result: 'allow' })
const requests: Array<Record<string, unknown>> = []
let endpoint: ReturnType<typeof Bun.serve>

beforeAll(() => {
  endpoint = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const body = (await req.json()) as Record<string, unknown>
      requests.push(body)
      if (mode === 'slow') await Bun.sleep(500)
      if (mode === 'garbage') return new Response('<html>oops</html>', { status: 200 })
      if (mode === 'error') return new Response('boom', { status: 500 })
      if (mode === 'forbidden') return new Response('', { status: 403 })
      return Response.json(answer(body))
    },
  })
})
afterAll(() => endpoint.stop(true))

const brokers: TestBroker[] = []
afterEach(async () => {
  mode = 'answer'
  answer = () => ({ result: 'allow' })
  requests.length = 0
  for (const b of brokers.splice(0)) await b.close()
})

async function broker(options: Partial<HttpAuthOptions> = {}, after: ReturnType<typeof auth>[] = []): Promise<TestBroker> {
  const b = await startBroker({ plugins: [httpAuth({ url: `http://127.0.0.1:${endpoint.port}/mqtt`, timeoutMs: 200, ...options }), ...after] })
  brokers.push(b)
  return b
}

const login = (username: string, password = 'pw', clientId = `c-${username}`) => ({ clientId, username, password: Buffer.from(password) })

describe('httpAuth', () => {
  test('the endpoint decides on CONNECT: allow, deny with its reason code, ignore (the next plugin decides); it gets who asks, never over the log', async () => {
    const b = await broker({}, [auth({ users: {}, allowAnonymous: false })])
    answer = (body) => (body.username === 'alice' ? { result: 'allow' } : body.username === 'bob' ? { result: 'deny', reasonCode: 0x86, reason: 'bad password' } : { result: 'ignore' })
    expect(await RawClient.connackCode(b.port, 5, login('alice', 's3cret-alice'))).toBe(0)
    expect(await RawClient.connackCode(b.port, 5, login('bob'))).toBe(0x86)
    expect(await RawClient.connackCode(b.port, 5, login('carol'))).toBe(0x86) // ignored here; the auth plugin has no carol
    expect(requests[0]).toMatchObject({ action: 'connect', clientId: 'c-alice', username: 'alice', password: 's3cret-alice', protocolVersion: 5, address: '127.0.0.1' })
    expect(JSON.stringify(b.logs)).not.toContain('s3cret-alice')
  })

  test('an ACL in the answer is what the client may do while connected: checked by the broker, without asking the endpoint again', async () => {
    const b = await broker({ on: ['connect', 'publish', 'subscribe'] })
    answer = () => ({ result: 'allow', acl: { publish: ['devices/%c/#'], subscribe: ['commands/%c'] } })
    const c = await RawClient.connected(b.port, 5, login('dev', 'pw', 'dev-7'))
    c.send({ cmd: 'publish', topic: 'devices/dev-7/temp', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x10) // allowed (no subscribers)
    c.send({ cmd: 'publish', topic: 'devices/other/temp', payload: Buffer.from('1'), qos: 1, messageId: 2, retain: false, dup: false })
    expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x87)
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'commands/dev-7', qos: 1 }, { topic: 'commands/#', qos: 1 }] })
    expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([1, 0x87])
    expect(requests.map((r) => r.action)).toEqual(['connect'])
    c.end()
  })

  test('publish and subscribe decisions asked of the endpoint are kept for cacheSeconds, per client and topic', async () => {
    const b = await broker({ on: ['connect', 'publish'] })
    answer = (body) => (body.action === 'publish' ? { result: body.topic === 'ok/x' ? 'allow' : 'deny' } : { result: 'allow' })
    const c = await RawClient.connected(b.port, 5, login('p'))
    for (let id = 1; id <= 3; id++) {
      c.send({ cmd: 'publish', topic: 'ok/x', payload: Buffer.from('1'), qos: 1, messageId: id, retain: false, dup: false })
      expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x10)
    }
    c.send({ cmd: 'publish', topic: 'no/x', payload: Buffer.from('1'), qos: 1, messageId: 4, retain: false, dup: false })
    expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x87)
    expect(requests.filter((r) => r.action === 'publish').map((r) => r.topic)).toEqual(['ok/x', 'no/x'])
    c.end()
  })

  test('an endpoint that is slow, returns 500 or garbage, or is down: refused (fail closed), said once when it starts and once when it ends', async () => {
    const b = await broker()
    for (const failing of ['slow', 'error', 'garbage'] as const) {
      mode = failing
      expect(await RawClient.connackCode(b.port, 5, login('x'))).toBe(0x87)
    }
    mode = 'forbidden'
    expect(await RawClient.connackCode(b.port, 5, login('x'))).toBe(0x87) // 403: an answer (deny), not a failure
    mode = 'answer'
    expect(await RawClient.connackCode(b.port, 5, login('x'))).toBe(0)
    expect(b.logs.filter((l) => l.event === 'http_auth.unreachable')).toHaveLength(1)
    expect(b.logs.filter((l) => l.event === 'http_auth.recovered')).toHaveLength(1)
    const down = await startBroker({ plugins: [httpAuth({ url: `http://127.0.0.1:${freePort()}/mqtt`, timeoutMs: 200 })] })
    brokers.push(down)
    expect(await RawClient.connackCode(down.port, 5, login('x'))).toBe(0x87)
  })

  test('onFailure: allow lets clients in while the endpoint cannot answer', async () => {
    const b = await broker({ onFailure: 'allow' })
    mode = 'error'
    expect(await RawClient.connackCode(b.port, 5, login('x'))).toBe(0)
  })

  test('bad options stop start-up naming the field', () => {
    expect(() => httpAuth({ url: 'ftp://x' })).toThrow(/url: expected an http:\/\/ or https:\/\/ URL/)
    expect(() => httpAuth({ url: 'http://x', on: ['login' as 'connect'] })).toThrow(/on\[0\]/)
  })
})
