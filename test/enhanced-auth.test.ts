/**
 * MQTT 5 enhanced authentication (section 4.12) with the SCRAM-SHA-256 example plugin, driven by a raw client that
 * does the client's side of SCRAM itself: a full exchange at CONNECT, a wrong proof, an unknown method (0x8C),
 * re-authentication while connected, and the protocol errors around AUTH.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import type { IAuthPacket, IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { scram, scramCredentials } from '../examples/plugins/scram.ts'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { RawClient } from './helpers/raw.ts'

const METHOD = 'SCRAM-SHA-256'
const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest()
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest()

/** The client's side of SCRAM-SHA-256 (RFC 5802): its first message, and from the server's first, its final one. */
function scramClient(user: string, password: string) {
  const nonce = randomBytes(18).toString('base64')
  const first = `n=${user},r=${nonce}`
  let expectedServerSignature = ''
  return {
    first: Buffer.from(`n,,${first}`),
    final(serverFirst: string): Buffer {
      const attrs = Object.fromEntries(serverFirst.split(',').map((p) => [p[0], p.slice(2)]))
      const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256')
      const clientKey = hmac(salted, 'Client Key')
      const withoutProof = `c=biws,r=${attrs.r}`
      const authMessage = `${first},${serverFirst},${withoutProof}`
      const signature = hmac(sha256(clientKey), authMessage)
      expectedServerSignature = hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')
      return Buffer.from(`${withoutProof},p=${Buffer.from(clientKey.map((b, i) => b ^ signature[i]!)).toString('base64')}`)
    },
    /** The server proved it knows the credentials too. */
    verifies(serverFinal: Buffer | undefined): boolean {
      return serverFinal?.toString() === `v=${expectedServerSignature}`
    },
  }
}

async function connectWithScram(port: number, user: string, password: string, clientId = `scram-${user}`) {
  const s = scramClient(user, password)
  const c = await RawClient.open(port, 5)
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId, clean: true, keepalive: 0, username: user, properties: { authenticationMethod: METHOD, authenticationData: s.first } })
  const challenge = (await c.next('auth')) as IAuthPacket
  expect(challenge.reasonCode).toBe(0x18)
  expect(challenge.properties?.authenticationMethod).toBe(METHOD)
  c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: s.final(challenge.properties!.authenticationData!.toString()) } })
  return { c, s, connack: (await c.next('connack')) as IConnackPacket }
}

describe('MQTT 5 enhanced authentication: SCRAM-SHA-256', () => {
  let b: TestBroker
  beforeAll(async () => {
    b = await startBroker({ plugins: [scram({ users: { alice: scramCredentials('correct horse', 4096) } })] })
  })
  afterAll(() => b.close())

  test('a full exchange: CONNECT, AUTH 0x18 both ways, CONNACK 0 with the method and the server\'s proof', async () => {
    const { c, s, connack } = await connectWithScram(b.port, 'alice', 'correct horse')
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.authenticationMethod).toBe(METHOD)
    expect(s.verifies(connack.properties?.authenticationData)).toBe(true)
    c.send({ cmd: 'pingreq' })
    await c.next('pingresp')
    c.end()
  })

  test('a wrong password: CONNACK 0x87, and the connection closed', async () => {
    const { c, connack } = await connectWithScram(b.port, 'alice', 'battery staple')
    expect(connack.reasonCode).toBe(0x87)
    await c.waitClosed()
  })

  test('a method no plugin handles: CONNACK 0x8C Bad authentication method', async () => {
    const code = await RawClient.connackCode(b.port, 5, { properties: { authenticationMethod: 'KERBEROS', authenticationData: Buffer.from('x') } })
    expect(code).toBe(0x8c)
  })

  test('re-authentication while connected: AUTH 0x19, then 0x18 both ways, then AUTH 0x00; with a wrong proof, DISCONNECT 0x87', async () => {
    const { c, connack } = await connectWithScram(b.port, 'alice', 'correct horse', 'reauth')
    expect(connack.reasonCode).toBe(0)
    const again = scramClient('alice', 'correct horse')
    c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: METHOD, authenticationData: again.first } })
    const challenge = (await c.next('auth')) as IAuthPacket
    expect(challenge.reasonCode).toBe(0x18)
    c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: again.final(challenge.properties!.authenticationData!.toString()) } })
    const done = (await c.next('auth')) as IAuthPacket
    expect(done.reasonCode).toBe(0)
    expect(again.verifies(done.properties?.authenticationData)).toBe(true)
    const wrong = scramClient('alice', 'nope')
    c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: METHOD, authenticationData: wrong.first } })
    const second = (await c.next('auth')) as IAuthPacket
    c.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: wrong.final(second.properties!.authenticationData!.toString()) } })
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x87)
    await c.waitClosed()
  })

  test('AUTH from a client that connected without a method, or re-authenticating with another one: DISCONNECT 0x82', async () => {
    const plain = await RawClient.connected(b.port, 5)
    plain.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: METHOD, authenticationData: Buffer.from('n,,n=alice,r=x') } })
    expect(((await plain.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x82)
    const { c } = await connectWithScram(b.port, 'alice', 'correct horse', 'other-method')
    c.send({ cmd: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'OTHER', authenticationData: Buffer.from('x') } })
    expect(((await c.next('disconnect')) as IDisconnectPacket).reasonCode).toBe(0x82)
  })
})
