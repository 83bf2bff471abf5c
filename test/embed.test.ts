import { describe, expect, test } from 'bun:test'
import { ConfigError, createBroker, defineConfig, MqttError, resolveConfig } from '../src/index.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

describe('embedding API', () => {
  test('createBroker → listen → publish → events → close', async () => {
    const midge = createBroker(defineConfig({ listeners: [{ type: 'tcp', port: 0 }], log: { level: 'silent' }, sys: { intervalSeconds: 0 } }))
    const [address] = await midge.listen()
    const events: string[] = []
    midge.on('clientConnected', (c) => events.push(`connected ${c.clientId}`))
    midge.on('subscribe', (client, sub) => events.push(`subscribe ${client.clientId} ${sub.filter}`))
    midge.on('message', (m) => events.push(`message ${m.topic}`))
    midge.on('clientDisconnected', (c) => events.push(`disconnected ${c.clientId}`))
    const c = await connect(address!.port, { clientId: 'embedded' })
    await subscribe(c.client, 'in/process')
    expect(midge.publish({ topic: 'in/process', payload: 'from the host program' })).toBe(1)
    expect((await c.next()).payload).toBe('from the host program')
    await c.end()
    await midge.close()
    expect(events).toEqual(['connected embedded', 'subscribe embedded in/process', 'message in/process', 'disconnected embedded'])
  })

  test('a listener may copy or serialise the messages it is given, (message, deliver)', async () => {
    // A client's QoS 0 message with a long topic, forwarded as received: what listeners get is a plain object, as
    // from any other source (codec.test.ts checks it of a message whose topic is still in bytes).
    const midge = createBroker(defineConfig({ listeners: [{ type: 'tcp', port: 0 }], log: { level: 'silent' }, sys: { intervalSeconds: 0 } }))
    const [address] = await midge.listen()
    const topic = 'sensors/a-device-name-long-enough-to-stay-in-bytes/temperature'
    const sub = await connect(address!.port)
    await subscribe(sub.client, 'sensors/#')
    const pub = await connect(address!.port)
    const copies: Array<{ event: string; topic: unknown; json: unknown }> = []
    const keep = (event: string) => (m: object) => copies.push({ event, topic: ({ ...m } as { topic?: unknown }).topic, json: JSON.parse(JSON.stringify(m)).topic })
    midge.on('message', keep('message'))
    midge.on('deliver', (_client, m) => keep('deliver')(m))
    pub.client.publish(topic, '21.5')
    expect((await sub.next()).topic).toBe(topic)
    await Promise.all([sub.end(), pub.end()])
    await midge.close()
    expect(copies.sort((a, b) => a.event.localeCompare(b.event))).toEqual([{ event: 'deliver', topic, json: topic }, { event: 'message', topic, json: topic }])
  })

  test('publish() refuses an invalid topic with MqttError', () => {
    const midge = createBroker({ log: { level: 'silent' } })
    expect(() => midge.publish({ topic: 'a/+', payload: 'x' })).toThrow(MqttError)
    void midge.close()
  })

  test('createBroker validates its config like the CLI does', () => {
    expect(() => createBroker({ limits: { maxPacketSize: -1 } })).toThrow(ConfigError)
  })
})

describe('config schema', () => {
  test('every limit has a default', () => {
    const c = resolveConfig({})
    expect(c.listeners).toEqual([{ type: 'tcp', host: '127.0.0.1', port: 1883, reusePort: false }])
    expect(c.log.level).toBe('info')
    expect(c.sys.intervalSeconds).toBe(10)
    expect(c.limits).toEqual({
      maxPacketSize: 1048576,
      connectTimeoutMs: 10000,
      maxKeepAliveSeconds: 65535,
      receiveMaximum: 64,
      maxInflight: 64,
      topicAliasMaximum: 32,
      maxQueuedMessages: 1000,
      maxQueuedBytes: 16777216,
      maxOutboundBufferBytes: 1048576,
      drainTimeoutMs: 30000,
      maxSessionExpirySeconds: 4294967295,
      maxTopicLevels: 128,
      maxTopicLength: 65535,
      maxConnections: 100000,
      maxConnectionsPerIp: 0,
      connectRatePerIp: 0,
      maxSubscriptionsPerClient: 10000,
      maxMessageExpirySeconds: 0,
      maxRetainedPerClient: 0,
      maxPayloadBytes: 0,
      rate: { messagesPerSecond: 0, bytesPerSecond: 0, action: 'pause' },
    })
  })

  test('errors name each bad field with what was expected and what was given', () => {
    let message = ''
    try {
      resolveConfig({ listeners: [{ type: 'udp' }, { type: 'tcp', port: 70000 }], log: { level: 'loud' } })
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toContain('listeners[0].type: expected type "tcp" or "websocket", got "udp"')
    expect(message).toContain('listeners[1].port: expected a whole number from 0 to 65535, got 70000')
    expect(message).toContain('log.level: expected one of debug, info, warn, error, silent, got "loud"')
  })
})
