/**
 * The jwt plugin with tokens this test signs (HS256, RS256, and ES256 from a JWKS served locally): what a client
 * sees for a good token, an expired one, a wrong signature, `alg: none`, a wrong audience, ACL claims, and a token
 * that expires while the client is connected.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose'
import type { IDisconnectPacket, IPubackPacket, ISubackPacket } from 'mqtt-packet'
import { jwt } from '../plugins/jwt.ts'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { RawClient } from './helpers/raw.ts'

const SECRET = 'a-test-secret-of-at-least-32-characters!'
const secretKey = new TextEncoder().encode(SECRET)
const now = () => Math.floor(Date.now() / 1000)

function token(claims: Record<string, unknown>, options: { key?: Uint8Array | CryptoKey; alg?: string; kid?: string } = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? 'HS256', ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuedAt()
    .setExpirationTime((claims.exp as number | undefined) ?? now() + 3600)
    .sign(options.key ?? secretKey)
}

const login = (username: string, password: string) => ({ clientId: `c-${username}`, username, password: Buffer.from(password) })

describe('jwt plugin', () => {
  let b: TestBroker
  beforeAll(async () => {
    b = await startBroker({ plugins: [jwt({ secret: SECRET, audience: 'mqtt' })] })
  })
  afterAll(() => b.close())

  test('a good token connects; the username must be its sub', async () => {
    expect(await RawClient.connackCode(b.port, 5, login('alice', await token({ sub: 'alice', aud: 'mqtt' })))).toBe(0)
    expect(await RawClient.connackCode(b.port, 5, login('mallory', await token({ sub: 'alice', aud: 'mqtt' })))).toBe(0x86)
  })

  test('refused with 0x86 (3.1.1: 4): expired, wrong signature, alg none, wrong audience, no token, not a token; the token never in the log', async () => {
    const expired = await token({ sub: 'a', aud: 'mqtt', exp: now() - 60 })
    const forged = await token({ sub: 'a', aud: 'mqtt' }, { key: new TextEncoder().encode('another-secret-of-at-least-32-characters') })
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'a', aud: 'mqtt', exp: now() + 60 })}.`
    const otherAudience = await token({ sub: 'a', aud: 'not-mqtt' })
    for (const password of [expired, forged, unsigned, otherAudience, 'not.a.token', '']) {
      expect(await RawClient.connackCode(b.port, 5, login('a', password))).toBe(0x86)
    }
    expect(await RawClient.connackCode(b.port, 4, login('a', expired))).toBe(4)
    const reasons = b.logs.filter((l) => l.event === 'jwt.refused').map((l) => l.reason)
    expect(reasons).toEqual(expect.arrayContaining(['the token has expired', "the token's signature does not verify", "the token's aud claim is not accepted", 'a token is required as the password']))
    expect(JSON.stringify(b.logs)).not.toContain(forged)
  })

  test('ACL claims are what the client may do, %u and %c replaced', async () => {
    const c = await RawClient.connected(b.port, 5, login('dev1', await token({ sub: 'dev1', aud: 'mqtt', acl: { publish: ['telemetry/%u/#'], subscribe: ['commands/%c'] } })))
    c.send({ cmd: 'publish', topic: 'telemetry/dev1/t', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false })
    expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x10)
    c.send({ cmd: 'publish', topic: 'telemetry/dev2/t', payload: Buffer.from('1'), qos: 1, messageId: 2, retain: false, dup: false })
    expect(((await c.next('puback')) as IPubackPacket).reasonCode).toBe(0x87)
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'commands/c-dev1', qos: 1 }, { topic: 'commands/+', qos: 1 }] })
    expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([1, 0x87])
    c.end()
  })

  test('when the token expires while connected: MQTT 5 gets DISCONNECT 0xA0 (Maximum connect time), 3.1.1 is closed', async () => {
    const clock = new ManualClock()
    const timed = await startBroker({ plugins: [jwt({ secret: SECRET })] }, { clock })
    try {
      const exp = now() + 60
      const v5 = await RawClient.connected(timed.port, 5, login('t5', await token({ sub: 't5', exp })))
      const v4 = await RawClient.connected(timed.port, 4, login('t4', await token({ sub: 't4', exp })))
      clock.advance(exp * 1000 - clock.now() - 1000) // a second before: still connected
      v5.send({ cmd: 'pingreq' })
      await v5.next('pingresp')
      clock.advance(2000)
      expect(((await v5.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0xa0)
      await v5.waitClosed()
      await v4.waitClosed()
    } finally {
      await timed.close()
    }
  })

  test('RS256 with a PEM public key, and ES256 through a JWKS with key rotation', async () => {
    const rsa = await generateKeyPair('RS256')
    const withPem = await startBroker({ plugins: [jwt({ publicKey: await exportSPKI(rsa.publicKey), algorithms: ['RS256'] })] })
    const first = await generateKeyPair('ES256')
    const second = await generateKeyPair('ES256')
    let keys = [{ ...(await exportJWK(first.publicKey)), kid: 'k1', alg: 'ES256' }]
    const jwks = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => Response.json({ keys }) })
    const withJwks = await startBroker({ plugins: [jwt({ jwksUrl: `http://127.0.0.1:${jwks.port}/jwks.json`, algorithms: ['ES256'], jwksCooldownSeconds: 0 })] })
    try {
      expect(await RawClient.connackCode(withPem.port, 5, login('r', await token({ sub: 'r' }, { key: rsa.privateKey, alg: 'RS256' })))).toBe(0)
      // An HS256 token made with the public key as the secret (the classic confusion attack) is refused.
      const confused = await token({ sub: 'r' }, { key: new TextEncoder().encode(await exportSPKI(rsa.publicKey)), alg: 'HS256' })
      expect(await RawClient.connackCode(withPem.port, 5, login('r', confused))).toBe(0x86)
      expect(await RawClient.connackCode(withJwks.port, 5, login('e', await token({ sub: 'e' }, { key: first.privateKey, alg: 'ES256', kid: 'k1' })))).toBe(0)
      keys = [...keys, { ...(await exportJWK(second.publicKey)), kid: 'k2', alg: 'ES256' }] // the issuer rotates
      expect(await RawClient.connackCode(withJwks.port, 5, login('e', await token({ sub: 'e' }, { key: second.privateKey, alg: 'ES256', kid: 'k2' })))).toBe(0)
    } finally {
      await withPem.close()
      await withJwks.close()
      jwks.stop(true)
    }
  })

  test('bad options stop start-up naming the field', () => {
    expect(() => jwt({})).toThrow(/secret: expected exactly one of secret, publicKey or jwksUrl/)
    expect(() => jwt({ secret: 'short' })).toThrow(/secret: expected a secret of at least 32 characters/)
    expect(() => jwt({ secret: SECRET, algorithms: ['none' as 'HS256'] })).toThrow(/algorithms\[0\]/)
  })
})
