import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { ISubackPacket } from 'mqtt-packet'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'
import { filterMatches } from '../src/topics/trie.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

describe('topics and subscriptions', () => {
  test('(section 4.7.1) + matches one level, # matches any number including the parent', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, ['w/+/t', 'h/#'])
    const pub = await connect(b.port)
    for (const topic of ['w/a/t', 'w/a/b/t', 'w/t', 'h', 'h/x', 'h/x/y', 'hx']) pub.client.publish(topic, topic)
    pub.client.publish('end', 'end')
    await subscribe(sub.client, 'end')
    pub.client.publish('end', 'end')
    const got: string[] = []
    for (;;) {
      const m = await sub.next()
      if (m.topic === 'end') break
      got.push(m.topic)
    }
    expect(got.sort()).toEqual(['h', 'h/x', 'h/x/y', 'w/a/t'])
    await sub.end()
    await pub.end()
  })

  // Topics of up to 32 bytes are read through the broker's intern table; a longer one (under the long first level),
  // or one the table does not hold, is routed in its bytes, never made a string (message.ts LazyTopicMessage).
  for (const [kind, first] of [['short topics', ''], ['topics routed in their bytes', 'a-first-level-of-more-than-32-bytes/']] as const) {
    test(`(section 4.7) a publisher going over many topics reaches exactly the matching subscribers, as subscriptions come and go (${kind})`, async () => {
      // The broker keeps a publisher's route for the levels of the topic that decided it (all of fleet/0/... goes to
      // fleet/# alone while nothing else is under fleet/0): every topic here tests where such a route stops holding,
      // and the last has the first's levels up to where its route was decided, so the route kept before a
      // subscription changes is asked for after it.
      const filters = ['fleet/#', 'fleet/+/device-7/temperature', 'fleet/0/device-7/#', 'fleet/0', 'fleet/1/+', '+/0/#', 'other/0/xy', 'fleet/0/device-1/humidity'].map((f) => first + f)
      const subs = await Promise.all(filters.map(async (filter) => {
        const c = await connect(b.port)
        await subscribe(c.client, filter)
        return c
      }))
      const pub = await connect(b.port)
      const topics = ['fleet/0/device-1/temperature', 'fleet/0/device-2/temperature', 'fleet/0/device-7/temperature', 'fleet/0/device-7', 'fleet/0', 'fleet/0/device-1/humidity', 'fleet/0/device-10/humidity', 'fleet/0/device-1/humidity2', 'fleet/0/device-1/humidity', 'fleet/01/device-7/temperature', 'fleet/1/device-7/temperature', 'fleet/1/x', 'fleet/1', 'fleet/1/x/y', 'fleet/0/device-7/temperature/raw', 'fleet', 'other/0/x', 'other/0/xy', 'other/0/x/y', 'fleet/0/', 'fleet/0/device-2/temperature', 'fleet/0/device-1/temperature/x'].map((t) => first + t)
      const send = async () => {
        for (const topic of topics) pub.client.publish(topic, topic)
        await pub.ping() // all of them routed
      }
      await send()
      const late = await connect(b.port) // a subscription made midway reaches the messages after it
      await subscribe(late.client, first + 'fleet/0/device-1/#')
      await send()
      await subs[1]!.client.unsubscribeAsync(filters[1]!) // and one that goes reaches none after it
      await send()
      for (const c of [...subs, late]) await c.quiet(pub)
      const reached = (filter: string) => topics.filter((topic) => filterMatches(filter, topic))
      filters.forEach((filter, i) => expect(subs[i]!.messages.map((m) => m.topic)).toEqual([...reached(filter), ...reached(filter), ...(i === 1 ? [] : reached(filter))]))
      expect(late.messages.map((m) => m.topic)).toEqual([...reached(first + 'fleet/0/device-1/#'), ...reached(first + 'fleet/0/device-1/#')])
      for (const c of [...subs, late, pub]) await c.end()
    })
  }

  test('[MQTT-4.7.2-1] # and + at the first level do not match $ topics', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, ['#', '+/x'])
    const direct = await connect(b.port)
    await subscribe(direct.client, '$private/x')
    b.midge.publish({ topic: '$private/x', payload: 'secret' })
    b.midge.publish({ topic: 'public/x', payload: 'open' })
    expect((await direct.next()).payload).toBe('secret')
    const m = await sub.next()
    expect(m.topic).toBe('public/x')
    expect(await sub.quiet()).toEqual([])
    await sub.end()
    await direct.end()
  })

  test('[MQTT-3.3.4-2] overlapping subscriptions deliver once, at the highest QoS', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, 'o/+', { qos: 0 })
    await subscribe(sub.client, 'o/#', { qos: 2 })
    await subscribe(sub.client, 'o/x', { qos: 1 })
    b.midge.publish({ topic: 'o/x', payload: 'p', qos: 2 })
    const m = await sub.next()
    expect(m.packet.qos).toBe(2)
    expect(await sub.quiet()).toEqual([])
    await sub.end()
  })

  test('[MQTT-3.3.4-2] overlapping subscriptions deliver once per client, with many clients matching', async () => {
    // More clients than the router merges by scanning (8): the later ones are merged through its index.
    const subs = await Promise.all(Array.from({ length: 20 }, () => connect(b.port)))
    for (const [i, sub] of subs.entries()) await subscribe(sub.client, i % 2 ? ['many/+', 'many/#'] : ['many/#', 'many/x', 'many/+'], { qos: 1 })
    b.midge.publish({ topic: 'many/x', payload: 'p', qos: 1 })
    b.midge.publish({ topic: 'many/y', payload: 'q', qos: 1 })
    for (const sub of subs) {
      expect((await sub.next()).payload).toBe('p')
      expect((await sub.next()).payload).toBe('q')
    }
    for (const sub of subs) expect(await sub.quiet()).toEqual([])
    await Promise.all(subs.map((s) => s.end()))
  })

  test('[MQTT-3.3.4-3] MQTT 5: every matching subscription identifier is sent', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await sub.client.subscribeAsync('ids/+', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await sub.client.subscribeAsync('ids/#', { qos: 0, properties: { subscriptionIdentifier: 9 } })
    b.midge.publish({ topic: 'ids/a', payload: 'p', qos: 1 })
    const m = await sub.next()
    const ids = m.packet.properties?.subscriptionIdentifier
    expect(([] as number[]).concat(ids ?? []).sort()).toEqual([7, 9])
    expect(m.packet.qos).toBe(1)
    await sub.end()
  })

  test('[MQTT-3.8.4-3] subscribing again to the same filter replaces the subscription', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, 'r/x', { qos: 0 })
    await subscribe(sub.client, 'r/x', { qos: 1 })
    b.midge.publish({ topic: 'r/x', payload: 'p', qos: 1 })
    expect((await sub.next()).packet.qos).toBe(1)
    expect(await sub.quiet()).toEqual([])
    await sub.end()
  })

  test('a publisher sending to one topic while subscriptions change reaches exactly those in place (route cache)', async () => {
    // Midge keeps each publisher's last route; every subscribe, resubscribe and unsubscribe must invalidate it.
    const pub = await connect(b.port, { protocolVersion: 5 })
    const send = (payload: string, qos: 0 | 1 = 1) => pub.client.publishAsync('rc/t', payload, { qos })
    const a = await connect(b.port)
    await subscribe(a.client, 'rc/t')
    await send('m1')
    expect((await a.next()).payload).toBe('m1')

    const c = await connect(b.port)
    await subscribe(c.client, 'rc/+')
    await send('m2')
    expect((await a.next()).payload).toBe('m2')
    expect((await c.next()).payload).toBe('m2')

    await a.client.unsubscribeAsync('rc/t')
    await send('m3')
    expect((await c.next()).payload).toBe('m3')

    await subscribe(c.client, 'rc/+', { qos: 1 }) // [MQTT-3.8.4-3] replaces the QoS 0 subscription
    await send('m4')
    const m4 = await c.next()
    expect([m4.payload, m4.packet.qos]).toEqual(['m4', 1])

    // The publisher's own No Local subscription, then a share group that grows after routing started.
    await subscribe(pub.client, 'rc/t', { qos: 0, nl: true })
    const [s1, s2] = [await connect(b.port), await connect(b.port)]
    await subscribe(s1.client, '$share/g/rc/t')
    await send('m5')
    expect((await s1.next()).payload).toBe('m5')
    await subscribe(s2.client, '$share/g/rc/t')
    for (const n of [6, 7, 8, 9]) await send(`m${n}`)
    for (const client of [c, s1, s2, a, pub]) await client.ping() // each has everything routed to it
    expect(s1.messages.length + s2.messages.length).toBe(5)
    expect(s2.messages.length).toBeGreaterThan(0)
    expect(c.messages.map((m) => m.payload)).toEqual(['m2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9'])
    expect(a.messages.map((m) => m.payload)).toEqual(['m1', 'm2']) // none after its UNSUBACK
    expect(pub.messages).toEqual([])
    // A second publisher has its own route: the No Local subscription is for the first one only.
    const other = await connect(b.port)
    await other.client.publishAsync('rc/t', 'from other', { qos: 1 })
    expect((await pub.next()).payload).toBe('from other')
    for (const client of [pub, a, c, s1, s2, other]) await client.end()
  })

  test('[MQTT-3.8.4-6] invalid filters get 0x80 (3.1.1) / 0x8F (5.0) in their SUBACK slot, valid ones are granted', async () => {
    const filters = ['ok/+', 'bad/#/x', 'a+b', 'ok/#', '$share/g', '']
    for (const version of [4, 5] as const) {
      const c = await RawClient.connected(b.port, version)
      c.send({ cmd: 'subscribe', messageId: 3, subscriptions: filters.map((topic) => ({ topic, qos: 1 as const })) })
      const ack = (await c.next('suback')) as ISubackPacket
      const bad = version === 4 ? 0x80 : 0x8f
      expect(ack.granted).toEqual([1, bad, bad, 1, bad, bad])
      c.end()
    }
  })

  test('UNSUBSCRIBE stops delivery; MQTT 5 UNSUBACK says which filters existed', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'u/x')
    await sub.client.unsubscribeAsync('u/x')
    b.midge.publish({ topic: 'u/x', payload: 'p' })
    expect(await sub.quiet()).toEqual([])
    const raw = await RawClient.connected(b.port, 5)
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/y', qos: 0 }] })
    await raw.next('suback')
    raw.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['u/y', 'nope'] })
    const unsuback = (await raw.next('unsuback')) as { granted: number[] }
    expect(unsuback.granted).toEqual([0x00, 0x11])
    raw.end()
    await sub.end()
  })

  test('[MQTT-3.3.2-2] a PUBLISH to a topic with wildcards closes the connection (MQTT 5: 0x90)', async () => {
    const c = await RawClient.connected(b.port, 5)
    // A valid topic first: the broker skips checking a topic equal to the last valid one, and only that one.
    c.send({ cmd: 'publish', topic: 'bad/x', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    await c.next('puback')
    c.send({ cmd: 'publish', topic: 'bad/+', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    expect(((await c.next('disconnect')) as { reasonCode: number }).reasonCode).toBe(0x90)
    await c.waitClosed()
  })

  test('[MQTT-3.3.2-2] a + or # anywhere in a topic name of any length is refused (MQTT 5: 0x90), read for the first time or again', async () => {
    // Lengths on each side of how the broker reads a topic: up to 32 bytes looked up in its table, up to 256 scanned
    // as read, longer ones checked on the string; and one that is not ASCII.
    const shapes = [(n: number) => 'w'.repeat(n), (n: number) => 'é'.repeat(n / 2)]
    for (const length of [3, 30, 32, 33, 200, 256, 257, 400]) {
      for (const shape of shapes) {
        for (const mark of ['+', '#']) {
          for (const at of [0, Math.floor(length / 2), length - 1]) {
            const valid = shape(length).padEnd(length, 'w')
            const topic = valid.slice(0, at) + mark + valid.slice(at + 1)
            for (let again = 0; again < 2; again++) {
              const c = await RawClient.connected(b.port, 5)
              c.send({ cmd: 'publish', topic: valid, payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
              await c.next('puback')
              c.send({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 2, retain: false, dup: false })
              const disconnect = (await c.next('disconnect')) as { reasonCode: number }
              expect(`${topic}: ${disconnect.reasonCode}`).toBe(`${topic}: ${0x90}`)
              await c.waitClosed()
            }
          }
        }
      }
    }
  })

  test('a PUBLISH to a topic containing U+0000 closes the connection', async () => {
    const c = await RawClient.connected(b.port, 4)
    c.send({ cmd: 'publish', topic: 'nul\u0000here', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
    await c.waitClosed()
  })

  test('clients cannot publish into $SYS', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, '$SYS/#')
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'publish', topic: '$SYS/broker/version', payload: Buffer.from('fake'), qos: 1, messageId: 1, retain: false, dup: false })
    const ack = (await c.next('puback')) as { reasonCode: number; properties?: { reasonString?: string } }
    expect(ack.reasonCode).toBe(0x87)
    expect(ack.properties?.reasonString).toContain('$SYS')
    expect(await sub.quiet()).toEqual([])
    c.end()
    await sub.end()
  })

  test('clients cannot publish into $SYS at QoS 0 either, whatever the topic\'s length; other $ topics are theirs', async () => {
    // QoS 0 PUBLISHes are forwarded as received, and a topic of more than 32 bytes is routed in its bytes: the
    // $SYS rule reads those too.
    const sys = await connect(b.port)
    await subscribe(sys.client, '$SYS/#')
    const own = await connect(b.port)
    await subscribe(own.client, '$own/#')
    const pub = await connect(b.port)
    const long = 'a-level-long-enough-to-stay-in-bytes'
    for (const topic of ['$SYS', '$SYS/x', `$SYS/${long}`, `$SYS/${long}/2`]) pub.client.publish(topic, 'fake')
    for (const topic of ['$own/x', `$own/${long}`, `$SYSTEM/${long}`]) pub.client.publish(topic, 'mine')
    await own.quiet(pub)
    await sys.quiet(pub)
    expect(own.messages.map((m) => m.topic)).toEqual(['$own/x', `$own/${long}`])
    expect(sys.messages.filter((m) => m.payload.toString() === 'fake').map((m) => m.topic)).toEqual([])
    for (const c of [sys, own, pub]) await c.end()
  })
})
