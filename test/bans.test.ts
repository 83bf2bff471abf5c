/**
 * Bans: automatic for failed logins and flapping, by hand through the HTTP admin API. A banned client id or
 * username gets CONNACK 0x8A (3.1.1: 5), a banned address is closed before anything is read, each ban is logged once.
 */
import { describe, expect, test } from 'bun:test'
import type { IDisconnectPacket } from 'mqtt-packet'
import { auth } from '../plugins/auth.ts'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { RawClient } from './helpers/raw.ts'

const ADMIN = 'admin-token-0123456789abcdef'

/** CONNECT as `clientId` (with a user name and password when given): the CONNACK code, or 'closed'. */
const connectCode = (port: number, version: 4 | 5, clientId: string, username?: string, password?: string) =>
  RawClient.connackCode(port, version, { clientId, username, password: password === undefined ? undefined : Buffer.from(password) })

const withAuth = () =>
  auth({
    users: { alice: { password: 'right' } },
    allowPlainTextPasswords: true,
    acl: [{ user: '*', publish: ['#'], subscribe: ['#'] }],
  })

describe('automatic bans', () => {
  test('more than N failed logins in the window ban the address and the client id: the address is then closed before anything is read; one log line per ban', async () => {
    const b = await startBroker({ plugins: [withAuth()], bans: { authFailures: { max: 3, windowSeconds: 60, banSeconds: 60 } } })
    for (let i = 0; i < 3; i++) expect(await connectCode(b.port, 5, 'guesser', 'alice', `wrong-${i}`)).toBe(0x86)
    // The fourth failure passes the maximum: the address and the client id are banned.
    expect(await connectCode(b.port, 5, 'guesser', 'alice', 'wrong-3')).toBe(0x86)
    expect(await connectCode(b.port, 5, 'someone-else', 'alice', 'right')).toBe('closed') // the address is banned
    expect(b.logs.filter((l) => l.event === 'ban.added').map((l) => [l.kind, l.value])).toEqual([['address', '127.0.0.1'], ['clientId', 'guesser']])
    // Refusals are not logged one by one.
    for (let i = 0; i < 5; i++) await connectCode(b.port, 4, 'someone-else', 'alice', 'right')
    expect(b.logs.filter((l) => l.event === 'ban.added')).toHaveLength(2)
    await b.close()
  })

  test('a client id that connects and goes more than N times in the window is refused for a while (flapping), others are not', async () => {
    const clock = new ManualClock()
    const b = await startBroker({ bans: { flapping: { max: 5, windowSeconds: 60, banSeconds: 30 } } }, { clock })
    for (let i = 0; i < 6; i++) expect(await connectCode(b.port, 5, 'flapper', undefined)).toBe(0)
    await until(() => b.logs.some((l) => l.event === 'ban.added'), 5000, 'the flapping ban')
    expect(await connectCode(b.port, 5, 'flapper')).toBe(0x8a)
    expect(await connectCode(b.port, 4, 'flapper')).toBe(5) // 3.1.1: not authorized
    expect(await connectCode(b.port, 5, 'steady')).toBe(0)
    // The ban lasts banSeconds.
    clock.advance(29_000)
    expect(await connectCode(b.port, 5, 'flapper')).toBe(0x8a)
    clock.advance(1_000)
    expect(await connectCode(b.port, 5, 'flapper')).toBe(0)
    await b.close()
  })
})

test('address flapping, when turned on: an address whose connections come and go too often is closed unread for a while', async () => {
  const b = await startBroker({ log: { level: 'warn' }, bans: { flapping: { max: 0 }, addressFlapping: { max: 4, windowSeconds: 60, banSeconds: 60 } } }) // warn: no connect line reads the address first
  for (let i = 0; i < 5; i++) expect(await connectCode(b.port, 5, `device-${i}`)).toBe(0) // a different client id each time
  await until(() => b.logs.some((l) => l.event === 'ban.added'), 5000, 'the address ban')
  expect(b.logs.find((l) => l.event === 'ban.added')).toMatchObject({ kind: 'address', value: '127.0.0.1' })
  expect(await connectCode(b.port, 5, 'device-new')).toBe('closed')
  await b.close()
})

describe('bans by hand: the HTTP admin API', () => {
  async function start(): Promise<{ b: TestBroker; api: string }> {
    const b = await startBroker({ plugins: [withAuth()], http: { host: '127.0.0.1', port: 0, tokens: [{ name: 'admin', token: ADMIN, scopes: ['read', 'publish', 'admin'] }], anonymousScopes: ['read'] } })
    return { b, api: `http://127.0.0.1:${b.addresses.find((a) => a.type === 'http')!.port}/api/v1/bans` }
  }
  const asAdmin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }

  test('add a ban on a username: its connected client gets DISCONNECT 0x98, new CONNECTs 0x8A; list it; remove it', async () => {
    const { b, api } = await start()
    const alice = await RawClient.connected(b.port, 5, { username: 'alice', password: Buffer.from('right'), clientId: 'alice-phone' })
    const added = await fetch(api, { method: 'POST', headers: asAdmin, body: JSON.stringify({ kind: 'username', value: 'alice', seconds: 600, reason: 'lost phone' }) })
    expect(added.status).toBe(201)
    expect(await added.json()).toMatchObject({ kind: 'username', value: 'alice', reason: 'lost phone' })
    expect(((await alice.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x98)
    expect(await connectCode(b.port, 5, 'alice-laptop', 'alice', 'right')).toBe(0x8a)
    const listed = (await (await fetch(api, { headers: asAdmin })).json()) as { bans: Array<{ kind: string; value: string; expiresAt: string | null }> }
    expect(listed.bans.map((x) => [x.kind, x.value])).toEqual([['username', 'alice']])
    expect(Date.parse(listed.bans[0]!.expiresAt!) - Date.now()).toBeGreaterThan(590_000)
    const removed = await fetch(`${api}/username/alice`, { method: 'DELETE', headers: asAdmin })
    expect(await removed.json()).toEqual({ kind: 'username', value: 'alice', removed: true })
    expect(await connectCode(b.port, 5, 'alice-laptop', 'alice', 'right')).toBe(0)
    expect(b.logs.filter((l) => l.event === 'ban.added')).toHaveLength(1)
    expect(b.logs.filter((l) => l.event === 'ban.removed')).toHaveLength(1)
    await b.close()
  })

  test('the API refuses bad requests with a message naming the field, and callers without the admin scope', async () => {
    const { b, api } = await start()
    const bad = await fetch(api, { method: 'POST', headers: asAdmin, body: JSON.stringify({ kind: 'hostname', value: 'x' }) })
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { message: string }).message).toContain('kind: expected "clientId", "username" or "address"')
    const noValue = await fetch(api, { method: 'POST', headers: asAdmin, body: JSON.stringify({ kind: 'address' }) })
    expect(((await noValue.json()) as { message: string }).message).toContain('value:')
    expect((await fetch(`${api}/nickname/x`, { method: 'DELETE', headers: asAdmin })).status).toBe(400)
    expect((await fetch(`${api}/clientId/nobody`, { method: 'DELETE', headers: asAdmin })).status).toBe(404)
    expect((await fetch(api)).status).toBe(401) // anonymous callers may read, not administer: credentials needed
    await b.close()
  })
})
