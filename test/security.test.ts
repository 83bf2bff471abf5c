/** ACL bypass attempts with the auth plugin on: each must be refused. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { ISubackPacket } from 'mqtt-packet'
import { auth } from '../plugins/auth.ts'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({
    plugins: [
      auth({
        users: { eve: { password: await Bun.password.hash('eve-pw') }, admin: { password: await Bun.password.hash('admin-pw') } },
        acl: [
          { user: 'eve', publish: ['public/#'], subscribe: ['public/#'], deny: { subscribe: ['public/secret/#'] } },
          { user: 'admin', publish: ['#'], subscribe: ['#'] },
        ],
      }),
    ],
  })
  // Something eve must never see.
  b.midge.publish({ topic: 'private/payroll', payload: 'salaries', retain: true })
  b.midge.publish({ topic: 'public/secret/key', payload: 'hunter2', retain: true })
})
afterAll(() => b.close())

const eve = () => RawClient.connected(b.port, 5, { username: 'eve', password: Buffer.from('eve-pw') })

describe('ACL bypass attempts are refused', () => {
  test('wildcard subscriptions that would reach a denied topic, and retained replay through them', async () => {
    const c = await eve()
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '#', qos: 0 }, { topic: '+/payroll', qos: 0 }, { topic: 'public/#', qos: 0 }, { topic: 'public/+/key', qos: 0 }] })
    expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([0x87, 0x87, 0x87, 0x87])
    await c.ping()
    expect(c.packets.filter((p) => p.cmd === 'publish')).toEqual([]) // no retained message leaked
    c.end()
  })

  test('shared-subscription filters are checked on their topic filter', async () => {
    const c = await eve()
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/private/#', qos: 0 }, { topic: '$share/g/public/news', qos: 0 }] })
    expect(((await c.next('suback')) as ISubackPacket).granted).toEqual([0x87, 0])
    c.end()
  })

  test('$SYS cannot be written, even by a user allowed to publish everywhere', async () => {
    const admin = await RawClient.connected(b.port, 5, { username: 'admin', password: Buffer.from('admin-pw') })
    admin.send({ cmd: 'publish', topic: '$SYS/broker/version', payload: Buffer.from('pwned'), qos: 1, messageId: 1, retain: true, dup: false })
    expect(((await admin.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    admin.end()
  })

  test('topic-alias tricks: an alias stands for its topic, and that topic is what the ACL checks', async () => {
    const c = await eve()
    // Register alias 1 on an allowed topic, then try to rebind it to a denied one and publish through it.
    c.send({ cmd: 'publish', topic: 'public/a', payload: Buffer.from('ok'), qos: 1, messageId: 1, retain: false, dup: false, properties: { topicAlias: 1 } })
    expect(((await c.next('puback')) as { reasonCode: number }).reasonCode).toBeLessThan(0x80)
    c.send({ cmd: 'publish', topic: 'private/payroll', payload: Buffer.from('x'), qos: 1, messageId: 2, retain: true, dup: false, properties: { topicAlias: 1 } })
    expect(((await c.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    c.send({ cmd: 'publish', topic: '', payload: Buffer.from('again'), qos: 1, messageId: 3, retain: true, dup: false, properties: { topicAlias: 1 } })
    expect(((await c.next('puback')) as { reasonCode: number }).reasonCode).toBe(0x87)
    c.end()
    expect(b.midge.broker.retained.get('private/payroll')!.payload.toString()).toBe('salaries')
  })

  test('missing or wrong credentials never reach a session', async () => {
    for (const [username, password] of [[undefined, undefined], ['eve', 'wrong'], ['nobody', 'x']] as const) {
      const c = await RawClient.open(b.port, 5)
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'intruder', clean: true, keepalive: 0, username, password: password ? Buffer.from(password) : undefined })
      expect(((await c.next('connack')) as { reasonCode: number }).reasonCode).toBeGreaterThanOrEqual(0x80)
      await c.waitClosed()
    }
    expect(b.midge.broker.sessions.has('intruder')).toBe(false)
    expect(JSON.stringify(b.logs)).not.toContain('eve-pw')
  })
})
