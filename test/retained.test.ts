import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

describe('retained messages', () => {
  test('[MQTT-3.3.1-5, -8] a retained message is stored and sent to new subscribers with RETAIN set', async () => {
    const pub = await connect(b.port)
    await pub.client.publishAsync('ret/a', 'kept', { qos: 1, retain: true })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'ret/+', { qos: 1 })
    const m = await sub.next()
    expect(m.topic).toBe('ret/a')
    expect(m.payload).toBe('kept')
    expect(m.packet.retain).toBe(true)
    expect(m.packet.qos).toBe(1)
    await sub.end()
    await pub.end()
  })

  test('[MQTT-3.3.1-9] 3.1.1: a retained message forwarded to an existing subscription has RETAIN clear', async () => {
    const sub = await connect(b.port)
    await subscribe(sub.client, 'ret/live')
    b.midge.publish({ topic: 'ret/live', payload: 'now', retain: true })
    expect((await sub.next()).packet.retain).toBe(false)
    await sub.end()
  })

  test('[MQTT-3.3.1-10] a new retained message replaces the old one', async () => {
    b.midge.publish({ topic: 'ret/replace', payload: 'old', retain: true })
    b.midge.publish({ topic: 'ret/replace', payload: 'new', retain: true })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'ret/replace')
    expect((await sub.next()).payload).toBe('new')
    expect(await sub.quiet()).toEqual([])
    await sub.end()
  })

  test('[MQTT-3.3.1-6] zero-length retained publish clears the retained message', async () => {
    const pub = await connect(b.port)
    await pub.client.publishAsync('ret/clear', 'soon gone', { retain: true, qos: 1 })
    await pub.client.publishAsync('ret/clear', '', { retain: true, qos: 1 })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'ret/clear')
    expect(await sub.quiet()).toEqual([])
    await sub.end()
    await pub.end()
  })

  test('a # subscriber gets every retained message under its filter, and none under $ topics', async () => {
    for (let i = 0; i < 50; i++) b.midge.publish({ topic: `many/${i % 5}/${i}`, payload: String(i), retain: true })
    b.midge.publish({ topic: '$hidden/x', payload: 'no', retain: true })
    const sub = await connect(b.port)
    await subscribe(sub.client, 'many/#')
    const got = new Set<string>()
    while (got.size < 50) got.add((await sub.next()).payload)
    const all = await connect(b.port)
    await subscribe(all.client, '#')
    await all.quiet() // a SUBSCRIBE writes its whole retained set before the next packet (the PINGREQ) is handled
    const seen = all.messages.map((m) => m.topic)
    expect(seen.some((t) => t.startsWith('$'))).toBe(false)
    expect(seen.filter((t) => t.startsWith('many/')).length).toBe(50)
    await sub.end()
    await all.end()
  })

  test('MQTT 5 retain handling: 0 sends always, 1 only for a new subscription, 2 never; retain-as-published keeps RETAIN', async () => {
    b.midge.publish({ topic: 'rh/x', payload: 'r', retain: true })
    const c = await connect(b.port, { protocolVersion: 5 })
    await c.client.subscribeAsync('rh/x', { qos: 0, rh: 1 })
    expect((await c.next()).payload).toBe('r')
    await c.client.subscribeAsync('rh/x', { qos: 0, rh: 1 }) // exists now: nothing
    expect(await c.quiet()).toEqual([])
    await c.client.subscribeAsync('rh/x', { qos: 0, rh: 0 }) // always
    expect((await c.next()).packet.retain).toBe(true)
    await c.client.subscribeAsync('rh/+', { qos: 0, rh: 2 }) // never
    expect(await c.quiet()).toEqual([])
    await c.client.subscribeAsync('rap/x', { qos: 0, rap: true })
    b.midge.publish({ topic: 'rap/x', payload: 'p', retain: true })
    expect((await c.next()).packet.retain).toBe(true) // [MQTT-3.3.1-13]
    await c.end()
  })

  test('retained messages with a message expiry are not sent once expired', async () => {
    const clock = new ManualClock()
    const b = await startBroker({}, { clock })
    b.midge.publish({ topic: 'ret/expiring', payload: 'brief', retain: true, properties: { messageExpiryInterval: 1 } })
    const early = await connect(b.port, { protocolVersion: 5 })
    await subscribe(early.client, 'ret/expiring')
    const m = await early.next()
    expect(m.packet.properties?.messageExpiryInterval).toBe(1)
    clock.advance(1000) // [MQTT-3.3.2-5] expired: not sent any more
    const late = await connect(b.port, { protocolVersion: 5 })
    await subscribe(late.client, 'ret/expiring')
    expect(await late.quiet()).toEqual([])
    expect(b.midge.broker.retained.get('ret/expiring')).toBeUndefined()
    await early.end()
    await late.end()
    await b.close()
  })
})
