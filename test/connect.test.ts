import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { IConnackPacket, IDisconnectPacket } from 'mqtt-packet'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { ManualClock } from './helpers/clock.ts'
import { connect } from './helpers/mqttjs.ts'
import { RawClient } from './helpers/raw.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker({ limits: { connectTimeoutMs: 300 } })
})
afterAll(() => b.close())

describe('CONNECT', () => {
  for (const version of [3, 4, 5] as const) {
    test(`protocol level ${version} connects and gets CONNACK success`, async () => {
      const c = await RawClient.open(b.port, version)
      c.send({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clientId: `v${version}`, clean: true, keepalive: 30 })
      const connack = (await c.next('connack')) as IConnackPacket
      expect(connack.reasonCode ?? connack.returnCode).toBe(0)
      c.end()
    })
  }

  test('MQTT.js 3.1.1 and 5.0 clients connect', async () => {
    const a = await connect(b.port, { protocolVersion: 4 })
    const c = await connect(b.port, { protocolVersion: 5 })
    expect(a.client.connected && c.client.connected).toBe(true)
    await a.end()
    await c.end()
  })

  test('[MQTT-3.1.3-8] 3.1.1: empty client id with clean session false is refused with return code 2', async () => {
    const c = await RawClient.open(b.port, 4)
    // Written by hand: mqtt-packet will not encode this CONNECT.
    c.sendBytes(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 0, 0, 0]))
    const connack = (await c.next('connack')) as IConnackPacket
    expect(connack.returnCode).toBe(2)
    await c.waitClosed()
  })

  test('[MQTT-3.1.3-7] 3.1.1: empty client id with clean session is accepted', async () => {
    const c = await RawClient.open(b.port, 4)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: '', clean: true, keepalive: 0 })
    expect(((await c.next('connack')) as IConnackPacket).returnCode).toBe(0)
    c.end()
  })

  test('[MQTT-3.2.2-16] MQTT 5: empty client id gets an Assigned Client Identifier', async () => {
    const c = await RawClient.open(b.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: '', clean: true, keepalive: 0 })
    const connack = (await c.next('connack')) as IConnackPacket
    expect(connack.reasonCode).toBe(0)
    expect(connack.properties?.assignedClientIdentifier).toMatch(/^midge-/)
    expect(connack.properties?.receiveMaximum).toBe(64)
    expect(connack.properties?.topicAliasMaximum).toBe(32)
    c.end()
  })

  test('[MQTT-3.1.0-1] a packet before CONNECT closes the connection', async () => {
    const c = await RawClient.open(b.port, 4)
    c.send({ cmd: 'pingreq' })
    await c.waitClosed()
  })

  test('[MQTT-3.1.0-2] a second CONNECT closes the connection (MQTT 5: DISCONNECT 0x82)', async () => {
    const c = await RawClient.connected(b.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'again', clean: true, keepalive: 0 })
    const d = (await c.next('disconnect')) as IDisconnectPacket
    expect(d.reasonCode).toBe(0x82)
    await c.waitClosed()
  })

  test('a socket that never sends CONNECT is closed after the connect timeout', async () => {
    const c = await RawClient.open(b.port, 4)
    const opened = Date.now()
    await c.waitClosed(3000)
    expect(Date.now() - opened).toBeGreaterThanOrEqual(250)
  })

  test('[MQTT-3.1.2-2] an unsupported protocol level gets CONNACK 0x01 and is closed', async () => {
    const c = await RawClient.open(b.port, 4)
    c.sendBytes(Buffer.from([0x10, 0x0d, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x00, 0x00, 0x01, 0x61]))
    expect(((await c.next('connack')) as IConnackPacket).returnCode).toBe(1)
    await c.waitClosed()
  })

  test('[MQTT-3.1.4-3] a new connection with the same client id takes over (MQTT 5: DISCONNECT 0x8E)', async () => {
    const first = await RawClient.connected(b.port, 5, { clientId: 'twin' })
    const second = await RawClient.connected(b.port, 5, { clientId: 'twin' })
    const d = (await first.next('disconnect')) as IDisconnectPacket
    expect(d.reasonCode).toBe(0x8e)
    await first.waitClosed()
    second.send({ cmd: 'pingreq' })
    await second.next('pingresp')
    second.end()
  })

  test('[MQTT-3.1.4-3] 3.1.1 takeover closes the old connection', async () => {
    const first = await connect(b.port, { clientId: 'twin4' })
    const closed = new Promise<void>((resolve) => first.client.once('close', () => resolve()))
    const second = await connect(b.port, { clientId: 'twin4' })
    await closed
    expect(second.client.connected).toBe(true)
    await second.end()
    first.client.end(true)
  })

  test('the connect and disconnect are logged as one line each, with the reason', async () => {
    const c = await connect(b.port, { clientId: 'logged' })
    await c.end()
    await until(() => b.logs.some((l) => l.event === 'client.disconnected' && l.clientId === 'logged'))
    const connected = b.logs.filter((l) => l.event === 'client.connected' && l.clientId === 'logged')
    const gone = b.logs.filter((l) => l.event === 'client.disconnected' && l.clientId === 'logged')
    expect(connected.length).toBe(1)
    expect(gone[0]!.reason).toBe('client disconnected')
  })
})

describe('keep alive', () => {
  test('[MQTT-3.1.2-22] a client silent for 1.5x its keep alive is disconnected (MQTT 5: 0x8D)', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const c = await RawClient.connected(own.port, 5, { keepalive: 1 })
    clock.advance(1250) // the sweep has looked: not yet 1.5 times the keep alive
    expect(own.midge.broker.connectedCount).toBe(1)
    clock.advance(500)
    const d = (await c.next('disconnect')) as IDisconnectPacket
    expect(d.reasonCode).toBe(0x8d)
    await c.waitClosed()
    await own.close()
  })

  test('[MQTT-3.1.2-22] PINGREQ keeps the connection alive and is answered with PINGRESP [MQTT-3.12.4-1]', async () => {
    const clock = new ManualClock()
    const own = await startBroker({}, { clock })
    const c = await RawClient.connected(own.port, 4, { keepalive: 1 })
    for (let i = 0; i < 4; i++) {
      clock.advance(1000) // four seconds in all: past 1.5 times the keep alive but for the pings
      c.send({ cmd: 'pingreq' })
      await c.next('pingresp')
    }
    expect(own.midge.broker.connectedCount).toBe(1)
    expect(c.closed).toBe(false)
    c.end()
    await own.close()
  })

  test('[MQTT-3.2.2-21] MQTT 5: keep alive above the maximum is lowered with Server Keep Alive', async () => {
    const capped = await startBroker({ limits: { maxKeepAliveSeconds: 10 } })
    const c = await RawClient.open(capped.port, 5)
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clientId: 'ka', clean: true, keepalive: 600 })
    const connack = (await c.next('connack')) as IConnackPacket
    expect(connack.properties?.serverKeepAlive).toBe(10)
    c.end()
    // 3.1.1 cannot be told: refused, as Mosquitto's max_keepalive does.
    const old = await RawClient.open(capped.port, 4)
    old.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ka4', clean: true, keepalive: 600 })
    expect(((await old.next('connack')) as IConnackPacket).returnCode).toBe(2)
    await capped.close()
  })
})
