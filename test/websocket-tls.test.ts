import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, rmSync } from 'node:fs'
import type { IClientOptions, MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import net from 'node:net'
import { auth } from '../plugins/auth.ts'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { makeCerts, type Certs } from './helpers/certs.ts'
import { connect, openUrl as open, subscribe } from './helpers/mqttjs.ts'

let certs: Certs
beforeAll(() => {
  certs = makeCerts()
})
afterAll(() => rmSync(certs.dir, { recursive: true, force: true }))

function nextMessage(client: MqttClient): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve) => client.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })))
}

describe('MQTT over WebSocket', () => {
  let b: TestBroker
  let ws: number
  let http: number
  beforeAll(async () => {
    b = await startBroker({
      listeners: [{ type: 'websocket', host: '127.0.0.1', port: 0, path: '/mqtt' }],
      http: { host: '127.0.0.1', port: 0, anonymousScopes: ['read'] },
      limits: { maxOutboundBufferBytes: 256 * 1024 },
    })
    brokerOf.current = b
    ws = b.addresses.find((a) => a.type === 'websocket')!.port
    http = b.addresses.find((a) => a.type === 'http')!.port
  })
  afterAll(() => b.close())

  test('MQTT.js over ws:// (its own listener, and the HTTP port at /mqtt) talks to TCP clients, 3.1.1 and 5.0', async () => {
    const tcp = await connect(b.port)
    await subscribe(tcp.client, 'ws/#')
    for (const [port, version] of [[ws, 4], [http, 5]] as const) {
      const client = await open(`ws://127.0.0.1:${port}/mqtt`, { protocolVersion: version })
      await client.publishAsync(`ws/${port}`, `over websocket ${version}`, { qos: 1 })
      expect((await tcp.next()).payload).toBe(`over websocket ${version}`)
      await client.subscribeAsync('from/tcp', { qos: 1 })
      const got = nextMessage(client)
      await tcp.client.publishAsync('from/tcp', 'to the browser side', { qos: 1 })
      expect((await got).payload).toBe('to the browser side')
      await client.endAsync()
    }
    await tcp.end()
  })

  test('packets spanning frames and several packets in one frame go through the same parser', async () => {
    const tcp = await connect(b.port)
    await subscribe(tcp.client, 'frames/#')
    const socket = new WebSocket(`ws://127.0.0.1:${ws}/mqtt`, 'mqtt')
    socket.binaryType = 'arraybuffer'
    const packets: string[] = []
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p) => packets.push(p.cmd))
    socket.onmessage = (e) => parser.parse(Buffer.from(e.data as ArrayBuffer))
    await new Promise((resolve) => (socket.onopen = resolve))
    const bytes = Buffer.concat([
      mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'frames', clean: true, keepalive: 0 }),
      mqttPacket.generate({ cmd: 'publish', topic: 'frames/a', payload: Buffer.from('one'), qos: 0, retain: false, dup: false }),
      mqttPacket.generate({ cmd: 'publish', topic: 'frames/b', payload: Buffer.from('two'), qos: 0, retain: false, dup: false }),
    ])
    socket.send(bytes.subarray(0, 5)) // CONNECT split across frames
    socket.send(bytes.subarray(5)) // the rest of CONNECT and two PUBLISH packets in one frame
    expect((await tcp.next()).payload).toBe('one')
    expect((await tcp.next()).payload).toBe('two')
    await until(() => packets.includes('connack'))
    socket.close()
    await tcp.end()
  })

  test('a stalled WebSocket subscriber: its buffer stays bounded, excess QoS 0 is dropped and counted, TCP clients go on', async () => {
    const slow = await stalledWebSocketSubscriber(ws, 'wsflood')
    const fast = await connect(b.port)
    await subscribe(fast.client, 'wsflood')
    const dropsBefore = b.midge.stats.messagesDropped
    const payload = Buffer.alloc(16 * 1024, 1)
    for (let i = 0; i < 1000; i++) {
      b.midge.publish({ topic: 'wsflood', payload })
      if (i % 50 === 0) await Bun.sleep(1)
    }
    await until(() => fast.messages.length === 1000, 10000, 'the TCP subscriber gets everything')
    const client = [...b.midge.broker.clients].find((c) => c.clientId === 'ws-slow')!
    expect(client.outbound.bufferedBytes).toBeLessThanOrEqual(b.midge.config.limits.maxOutboundBufferBytes + payload.length + 64)
    expect(b.midge.stats.messagesDropped - dropsBefore).toBeGreaterThan(0)
    slow.destroy()
    await fast.end()
  })

  test('the "mqttv3.1" subprotocol is accepted too', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${ws}/mqtt`, 'mqttv3.1')
    await new Promise((resolve) => (socket.onopen = resolve))
    expect(socket.protocol).toBe('mqttv3.1')
    socket.close()
  })

  test('the "mqtt" subprotocol is required; text frames close the connection', async () => {
    const res = await fetch(`http://127.0.0.1:${ws}/mqtt`, { headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } })
    expect(res.status).toBe(400)
    const socket = new WebSocket(`ws://127.0.0.1:${ws}/mqtt`, 'mqtt')
    await new Promise((resolve) => (socket.onopen = resolve))
    const closed = new Promise<number>((resolve) => (socket.onclose = (e) => resolve(e.code)))
    socket.send('CONNECT as text')
    expect(await closed).toBe(1003)
  })
})

/** A WebSocket client on a raw socket that completes the handshake, subscribes, then stops reading. */
async function stalledWebSocketSubscriber(port: number, topic: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  const upgraded = new Promise<void>((resolve) => socket.once('data', () => resolve()))
  socket.write(`GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`)
  await upgraded
  const mqttBytes = Buffer.concat([
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'ws-slow', clean: true, keepalive: 0 }),
    mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] }),
  ])
  // One masked binary frame (client frames must be masked, RFC 6455 section 5.3).
  const mask = Buffer.from([1, 2, 3, 4])
  const header = mqttBytes.length < 126 ? Buffer.from([0x82, 0x80 | mqttBytes.length]) : Buffer.from([0x82, 0x80 | 126, mqttBytes.length >> 8, mqttBytes.length & 0xff])
  socket.write(Buffer.concat([header, mask, Buffer.from(mqttBytes.map((byte, i) => byte ^ mask[i % 4]!))]))
  await until(() => [...brokerOf.current!.midge.broker.sessions.get('ws-slow')?.subscriptions.keys() ?? []].includes(topic), 5000, 'ws subscriber ready')
  socket.pause()
  return socket
}
const brokerOf: { current: TestBroker | null } = { current: null }

describe('TLS', () => {
  let b: TestBroker
  let mqtts: number
  let mtls: number
  let https: number
  let wss: number
  beforeAll(async () => {
    const tls = { cert: certs.serverCert, key: certs.serverKey }
    const mutual = { ...tls, ca: certs.ca, requestCert: true, certificateAsUsername: true }
    b = await startBroker({
      listeners: [
        { type: 'tcp', host: '127.0.0.1', port: 0, tls },
        { type: 'tcp', host: '127.0.0.1', port: 0, tls: mutual },
        { type: 'websocket', host: '127.0.0.1', port: 0, path: '/mqtt', tls },
      ],
      http: { host: '127.0.0.1', port: 0, tls, anonymousScopes: ['read'] },
      plugins: [auth({ allowAnonymous: true, acl: [{ user: 'alice', publish: ['alice/#'], subscribe: ['#'] }, { anonymous: true, subscribe: ['#'], publish: ['#'] }] })],
    })
    const of = (type: string) => b.addresses.filter((a) => a.type === type).map((a) => a.port)
    ;[, mqtts, mtls] = of('tcp') as [number, number, number]
    wss = of('websocket')[0]!
    https = of('http')[0]!
  })
  afterAll(() => b.close())

  test('MQTT.js over mqtts:// and wss:// with the test CA; HTTPS for the API', async () => {
    const ca = readFileSync(certs.ca)
    const plain = await connect(b.port)
    await subscribe(plain.client, 'tls/#')
    const secure = await open(`mqtts://127.0.0.1:${mqtts}`, { ca, servername: 'localhost' })
    await secure.publishAsync('tls/mqtts', 'encrypted', { qos: 1 })
    expect((await plain.next()).payload).toBe('encrypted')
    await secure.endAsync()
    const web = await open(`wss://127.0.0.1:${wss}/mqtt`, { ca, wsOptions: { ca } } as IClientOptions)
    await web.publishAsync('tls/wss', 'encrypted ws', { qos: 1 })
    expect((await plain.next()).payload).toBe('encrypted ws')
    await web.endAsync()
    const res = await fetch(`https://127.0.0.1:${https}/healthz`, { tls: { ca: readFileSync(certs.ca, 'utf8') } } as RequestInit)
    expect(res.status).toBe(200)
    await plain.end()
  })

  test('mutual TLS: the certificate CN is the username for ACLs; an untrusted certificate is refused', async () => {
    const ca = readFileSync(certs.ca)
    const alice = await open(`mqtts://127.0.0.1:${mtls}`, { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey), servername: 'localhost', protocolVersion: 5 })
    await alice.publishAsync('alice/ok', 'mine', { qos: 1 })
    await expect(alice.publishAsync('bob/x', 'not mine', { qos: 1 })).rejects.toThrow()
    await alice.endAsync()
    const connected = b.logs.filter((l) => l.event === 'client.connected' && l.username === 'alice')
    expect(connected.length).toBeGreaterThanOrEqual(1)
    await expect(open(`mqtts://127.0.0.1:${mtls}`, { ca, cert: readFileSync(certs.untrustedCert), key: readFileSync(certs.untrustedKey), servername: 'localhost', connectTimeout: 2000 })).rejects.toThrow()
    await expect(open(`mqtts://127.0.0.1:${mtls}`, { ca, servername: 'localhost', connectTimeout: 2000 })).rejects.toThrow()
  })
})
