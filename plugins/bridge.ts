/**
 * bridge({ name, remote, topics, ... }): joins this broker to another MQTT broker (Mosquitto, EMQX, HiveMQ, AWS IoT,
 * another Midge) over MQTT.js, and forwards messages both ways by topic rules, as Mosquitto's bridge does.
 *
 * - Out: a message routed here whose topic a rule's local filter matches is published on the remote, its topic
 *   moved from the local prefix to the remote one, at the lower of its QoS and the rule's, retain flag as published.
 *   QoS 1/2 go through a durable, bounded outbox (SQLite, outbox.ts): the local publisher is acknowledged once the
 *   message is in it, and it leaves the outbox, oldest first, once the remote acknowledged it. So nothing is lost
 *   while the remote is away or Midge restarts (at least once; QoS 2 may repeat across a reconnect). QoS 0 goes
 *   only while connected.
 * - In: every connection subscribes on the remote to each rule's remote filter; what arrives is published here
 *   under the local prefix, retain as published, and acknowledged to the remote once durable here.
 * - No loops: what came in over this bridge never goes out over it; the remote is asked not to send back what we
 *   publish (MQTT 5 no local; with 3.1.1, Mosquitto's bridge flag, protocol level 0x80 | 4, when the remote takes it).
 * - The state is retained at `$SYS/broker/connection/<name>/state` here (1 up, 0 down) and, with a will, on the
 *   remote; it is logged once per change, never per message.
 */
import mqtt, { type IClientOptions, type IClientPublishOptions, type ISubscriptionMap, type MqttClient } from 'mqtt'
import { hostname } from 'node:os'
import { z } from 'zod'
import { type Logger, type Message, type Plugin, type PluginContext, type PluginPublish, propertiesFromJson, propertiesToJson, topicFilterError, topicMatches, validatePluginOptions } from '../src/index.ts'
import { Outbox } from './outbox.ts'
import { pemText } from './pem.ts'

const FILTER_LIMITS = { maxTopicLevels: 128, maxTopicLength: 65_535 }

const Address = z.string().refine((url) => /^(mqtts?|wss?):\/\/[^/]/.test(url), 'expected an mqtt://, mqtts://, ws:// or wss:// URL')

const Rule = z
  .strictObject({
    /** A topic filter, as in Mosquitto's `topic` line; '' when the prefixes are the whole topics. */
    pattern: z.string(),
    direction: z.enum(['in', 'out', 'both']).default('out'),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
    localPrefix: z.string().default(''),
    remotePrefix: z.string().default(''),
  })
  .superRefine((rule, ctx) => {
    if (rule.pattern === '' && (rule.localPrefix === '' || rule.remotePrefix === '')) ctx.addIssue({ code: 'custom', path: ['pattern'], message: 'an empty pattern needs both prefixes (they are then the topics)' })
    const patternError = rule.pattern === '' ? null : topicFilterError(rule.pattern, FILTER_LIMITS)
    if (patternError) ctx.addIssue({ code: 'custom', path: ['pattern'], message: `"${rule.pattern}": ${patternError}` })
    for (const side of ['localPrefix', 'remotePrefix'] as const) {
      if (rule[side] === '' || patternError) continue
      const filter = rule[side] + rule.pattern
      const error = /[+#]/.test(rule[side]) ? 'a prefix cannot hold wildcards' : topicFilterError(filter, FILTER_LIMITS)
      if (error) ctx.addIssue({ code: 'custom', path: [side], message: `"${filter}": ${error}` })
    }
  })

const Options = z.strictObject({
  /** Names the bridge in logs, metrics, `$SYS` and its outbox file. */
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only'),
  remote: z.strictObject({
    /** One address, or several: tried in order from the first on every reconnect (`order`), or in turn (`rotate`). */
    url: z.union([Address, z.array(Address).min(1)]),
    failover: z.enum(['order', 'rotate']).default('order'),
    clientId: z.string().min(1).optional(),
    username: z.string().optional(),
    password: z.string().optional(),
    /** TLS (mqtts://, wss://): PEM text or a file path for each. */
    ca: z.string().optional(),
    cert: z.string().optional(),
    key: z.string().optional(),
    rejectUnauthorized: z.boolean().default(true),
    protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
    keepaliveSeconds: z.number().int().min(0).max(65_535).default(60),
    /** false (Mosquitto's default): the remote keeps the bridge's session and subscriptions while it is away. */
    cleanSession: z.boolean().default(false),
    /** MQTT 5, when cleanSession is false: how long the remote keeps the session. */
    sessionExpirySeconds: z.number().int().min(0).max(0xffffffff).default(86_400),
    /** 3.1.1: announce a bridge (protocol level 0x84, Mosquitto's `try_private`); falls back to plain 3.1.1 if refused. */
    tryPrivate: z.boolean().default(true),
  }),
  topics: z.array(Rule).min(1),
  reconnect: z
    .strictObject({
      initialDelayMs: z.number().int().min(10).default(1000),
      maxDelayMs: z.number().int().min(10).default(30_000),
    })
    .prefault({}),
  queue: z
    .strictObject({
      /** The outbox file for QoS 1/2 messages waiting for the remote (default ./data/bridge-<name>.db). */
      file: z.string().min(1).optional(),
      maxMessages: z.number().int().min(1).default(100_000),
    })
    .prefault({}),
  /**
   * The connection's state, retained: here at `$SYS/broker/connection/<name>/state`, and on the remote at
   * `remoteTopic` (birth 1, will 0; Mosquitto's default topic; a Midge remote refuses `$SYS` from clients, so name
   * another there, or `false`).
   */
  notifications: z
    .strictObject({
      local: z.boolean().default(true),
      remoteTopic: z.union([z.string().min(1), z.literal(false)]).optional(),
    })
    .prefault({}),
})

export type BridgeOptions = z.input<typeof Options>
type Config = z.output<typeof Options>
type Rule = z.output<typeof Rule>

export interface BridgeStatus {
  connected: number
  /** Messages published on the remote / taken from it. */
  forwardedOut: number
  forwardedIn: number
  /** QoS 1/2 messages waiting in the outbox. */
  queued: number
  /** Messages not forwarded: QoS 0 while disconnected, or the outbox full. */
  dropped: number
}

export interface BridgePlugin extends Plugin {
  status(): BridgeStatus
}

/** A message waiting in the outbox, as stored. */
interface Queued {
  topic: string
  payload: string
  qos: 1 | 2
  retain: boolean
  properties?: Record<string, unknown>
}

/** Moves a topic from one prefix to the other; null when it does not start with `from`. */
function moved(topic: string, from: string, to: string): string | null {
  return topic.startsWith(from) ? to + topic.slice(from.length) : null
}

const pem = (value: string | undefined) => (value === undefined ? undefined : pemText(value))

export function bridge(options: BridgeOptions): BridgePlugin {
  const config: Config = validatePluginOptions('bridge', Options, options)
  const remote = config.remote
  const addresses = Array.isArray(remote.url) ? remote.url : [remote.url]
  const clientId = remote.clientId ?? `${hostname()}.${config.name}`
  const stateTopic = `$SYS/broker/connection/${config.name}/state`
  const remoteStateTopic = config.notifications.remoteTopic === false ? null : (config.notifications.remoteTopic ?? `$SYS/broker/connection/${clientId}/state`)
  const outRules = config.topics.filter((r) => r.direction !== 'in')
  const inRules = config.topics.filter((r) => r.direction !== 'out')
  const outbox = new Outbox(config.queue.file ?? `./data/bridge-${config.name}.db`, config.queue.maxMessages)
  const counters = { forwardedOut: 0, forwardedIn: 0, dropped: 0 }

  let ctx: PluginContext | null = null
  let log: Logger | undefined
  let client: MqttClient | null = null
  /** Resolves when the current connection closes: what was in flight on it will not be acknowledged. */
  let closed: Promise<void> = Promise.resolve()
  let up = false
  let running = false
  let attempt = 0
  let next = 0
  let privateRefused = false
  /** Why the last attempt or connection failed, for the log (TLS, refused CONNACK, network). */
  let lastError: string | undefined
  let retryTimer: ReturnType<typeof setTimeout> | null = null
  let sender: Promise<void> | null = null
  /** Set while this bridge publishes here what came from the remote: onPublish sees it and must not send it back. */
  let incoming = false
  let stateRefused = false
  /** Logged once per overflow, until the outbox has room again. */
  let overflowing = false

  function setState(connected: boolean, detail: Record<string, unknown>): void {
    if (up === connected) return
    up = connected
    if (connected) log?.info('bridge.connected', { bridge: config.name, ...detail })
    else log?.warn('bridge.disconnected', { bridge: config.name, ...detail })
    announce(connected)
    outbox.wake()
  }

  /** The state, retained here; a broker whose limits refuse the topic says so once instead. */
  function announce(connected: boolean): void {
    if (!config.notifications.local || !ctx) return
    try {
      ctx.publish({ topic: stateTopic, payload: connected ? '1' : '0', qos: 1, retain: true })
    } catch (error) {
      if (!stateRefused) log?.warn('bridge.state_not_published', { bridge: config.name, topic: stateTopic, error: (error as Error).message })
      stateRefused = true
    }
  }

  function clientOptions(): IClientOptions {
    const v5 = remote.protocolVersion === 5
    return {
      manualConnect: true, // see connect(): the bridge flag is set on CONNECT before it is written
      clientId,
      username: remote.username,
      password: remote.password,
      protocolVersion: remote.protocolVersion,
      clean: remote.cleanSession,
      keepalive: remote.keepaliveSeconds,
      reconnectPeriod: 0, // reconnection (with backoff and failover) is ours
      connectTimeout: 10_000,
      ca: pem(remote.ca),
      cert: pem(remote.cert),
      key: pem(remote.key),
      rejectUnauthorized: remote.rejectUnauthorized,
      properties: v5 && !remote.cleanSession ? { sessionExpiryInterval: remote.sessionExpirySeconds } : undefined,
      will: remoteStateTopic ? { topic: remoteStateTopic, payload: Buffer.from('0'), qos: 1, retain: true } : undefined,
    }
  }

  function connect(): void {
    if (!running) return
    const url = addresses[next]!
    const mq = mqtt.connect(url, clientOptions())
    client = mq
    if (remote.protocolVersion === 4 && remote.tryPrivate && !privateRefused) {
      // MQTT.js has no option for the bridge flag; mqtt-packet writes it from `bridgeMode` on the CONNECT packet
      // (level 0x84). MQTT.js's one writer of packets is wrapped to add it (checked by test/bridge.test.ts).
      const internal = mq as unknown as { _writePacket(packet: { cmd: string; bridgeMode?: boolean }, cb?: unknown): void }
      const write = internal._writePacket.bind(mq)
      internal._writePacket = (packet, cb) => write(packet.cmd === 'connect' ? { ...packet, bridgeMode: true } : packet, cb)
    }
    mq.connect()
    let onClosed!: () => void
    closed = new Promise<void>((resolve) => (onClosed = resolve))
    // An incoming QoS 1/2 message is acknowledged to the remote once it is durable here (MQTT.js acks after done()).
    mq.handleMessage = (packet, done) => {
      receive(packet.topic, packet.payload as Buffer, packet.qos, packet.retain, packet.properties).then(
        () => done(),
        (error: Error) => done(error),
      )
    }
    mq.on('connect', (connack) => {
      attempt = 0
      lastError = undefined
      setState(true, { url, sessionPresent: connack.sessionPresent })
      if (remoteStateTopic) mq.publish(remoteStateTopic, '1', { qos: 1, retain: true })
      subscribeRemote(mq)
    })
    mq.on('error', (error) => {
      lastError = error.message
      // 3.1.1 CONNACK 1 (unacceptable protocol level): the remote does not take the bridge flag; try without it.
      if (!privateRefused && (error as { code?: number }).code === 1 && remote.protocolVersion === 4 && remote.tryPrivate) {
        privateRefused = true
        log?.info('bridge.private_refused', { bridge: config.name, url, effect: 'connecting as a plain 3.1.1 client' })
      }
    })
    mq.on('close', () => {
      if (client !== mq) return
      client = null
      onClosed()
      mq.removeAllListeners()
      mq.on('error', () => {})
      mq.end(true)
      const wasUp = up
      setState(false, { url, error: lastError })
      // `order`: after a connection that worked, start again from the first address; after a failed attempt, the next.
      next = config.remote.failover === 'order' && wasUp ? 0 : (next + 1) % addresses.length
      schedule()
    })
  }

  /** The next attempt, after a backoff that doubles up to the cap (with jitter); reset by a successful connection. */
  function schedule(): void {
    if (!running) return
    const base = Math.min(config.reconnect.maxDelayMs, config.reconnect.initialDelayMs * 2 ** Math.min(attempt, 20))
    attempt++
    const delay = Math.round(base * (0.75 + Math.random() * 0.25))
    if (attempt === 1 || attempt % 10 === 0) log?.warn('bridge.retrying', { bridge: config.name, url: addresses[next], inMs: delay, attempt, error: lastError })
    retryTimer = setTimeout(() => {
      retryTimer = null
      connect()
    }, delay)
  }

  function subscribeRemote(mq: MqttClient): void {
    if (inRules.length === 0) return
    const map: ISubscriptionMap = {}
    for (const rule of inRules) {
      // MQTT 5: no local (what we publish there is not sent back) and retain as published.
      map[rule.remotePrefix + rule.pattern] = remote.protocolVersion === 5 ? { qos: rule.qos, nl: true, rap: true } : { qos: rule.qos }
    }
    mq.subscribe(map, (error) => {
      if (error) log?.error('bridge.subscribe_failed', { bridge: config.name, error: error.message })
    })
  }

  /** A message from the remote: published here under the local prefix; resolves once durable here. */
  async function receive(topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, properties: Record<string, unknown> | undefined): Promise<void> {
    const rule = inRules.find((r) => topicMatches(r.remotePrefix + r.pattern, topic))
    const local = rule && moved(topic, rule.remotePrefix, rule.localPrefix)
    if (!rule || !local || !ctx) return
    const { topicAlias: _alias, subscriptionIdentifier: _ids, ...kept } = (properties ?? {}) as Record<string, unknown>
    incoming = true
    try {
      ctx.publish({ topic: local, payload, qos: Math.min(qos, rule.qos) as 0 | 1 | 2, retain, properties: Object.keys(kept).length ? (kept as PluginPublish['properties']) : undefined })
    } catch (error) {
      // A topic this broker refuses (over its limits): dropped and counted, and acknowledged so the remote moves on.
      counters.dropped++
      log?.warn('bridge.message_refused', { bridge: config.name, topic: local, error: (error as Error).message })
      return
    } finally {
      incoming = false
    }
    counters.forwardedIn++
    await ctx.flushed()
  }

  /** A message routed here: out to the remote if a rule takes it. */
  function forward(message: Readonly<Message>): void {
    if (incoming) return // it came over this bridge: never back out over it
    for (const rule of outRules) {
      if (!topicMatches(rule.localPrefix + rule.pattern, message.topic)) continue
      const topic = moved(message.topic, rule.localPrefix, rule.remotePrefix)
      if (topic === null) continue
      const qos = Math.min(message.qos, rule.qos) as 0 | 1 | 2
      if (qos === 0) {
        if (up && client) {
          client.publish(topic, message.payload as Buffer, publishOptions(0, message.retain, message.properties))
          counters.forwardedOut++
        } else counters.dropped++
        return
      }
      const item: Queued = { topic, payload: message.payload.toString('base64'), qos, retain: message.retain, properties: message.properties ? propertiesToJson(message.properties) : undefined }
      if (outbox.add(JSON.stringify(item))) overflowing = false
      else {
        counters.dropped++
        if (!overflowing) log?.warn('bridge.queue_full', { bridge: config.name, maxMessages: config.queue.maxMessages, effect: 'new QoS 1/2 messages for the remote are dropped until it drains' })
        overflowing = true
      }
      return
    }
  }

  function publishOptions(qos: 0 | 1 | 2, retain: boolean, properties: Message['properties']): IClientPublishOptions {
    const options: IClientPublishOptions = { qos, retain }
    if (remote.protocolVersion === 5 && properties) {
      const { topicAlias: _alias, subscriptionIdentifier: _ids, ...kept } = properties as Record<string, unknown>
      options.properties = kept as IClientPublishOptions['properties']
    }
    return options
  }

  /** Sends the outbox to the remote, oldest first, while connected; a batch leaves it once the remote acknowledged all of it. */
  async function send(): Promise<void> {
    while (running) {
      const mq = client
      const rows = up && mq ? outbox.take(100) : []
      if (rows.length === 0) {
        await outbox.waitForItems()
        continue
      }
      const acked = Promise.all(
        rows.map((row) => {
          const item = JSON.parse(row.item) as Queued
          const properties = item.properties ? propertiesFromJson(item.properties) : undefined
          return mq!.publishAsync(item.topic, Buffer.from(item.payload, 'base64'), publishOptions(item.qos, item.retain, properties))
        }),
      ).then(
        () => true,
        () => false,
      )
      // The connection may go while these are in flight: then they stay in the outbox and go again on the next one.
      if (await Promise.race([acked, closed.then(() => false)])) {
        outbox.done(rows[rows.length - 1]!.id)
        counters.forwardedOut += rows.length
      } else if (client === mq && up) {
        log?.warn('bridge.publish_refused', { bridge: config.name, messages: rows.length, effect: 'kept in the outbox, sent again in a second' })
        await new Promise((resolve) => setTimeout(resolve, 1000))
      }
    }
  }

  return {
    name: `bridge:${config.name}`,
    start(context) {
      ctx = context
      log = context.logger
      outbox.open()
      outbox.onFault((error) => {
        if (error) log?.error('bridge.outbox_write_failed', { bridge: config.name, outbox: outbox.file, error: error.message, effect: 'QoS 1/2 publishes are not acknowledged until writes succeed again' })
        else log?.info('bridge.outbox_write_recovered', { bridge: config.name, outbox: outbox.file })
      })
      running = true
      announce(false)
      log.info('bridge.starting', { bridge: config.name, remote: addresses, clientId, topics: config.topics.length, queued: outbox.size })
      sender = send()
      connect()
    },
    async stop() {
      running = false
      if (retryTimer) clearTimeout(retryTimer)
      const mq = client
      client = null
      if (mq && up) {
        // A clean goodbye (DISCONNECT: the remote drops the will), with the state said first; not waited on for ever.
        if (remoteStateTopic) mq.publish(remoteStateTopic, '0', { qos: 1, retain: true })
        await Promise.race([mq.endAsync().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 2000))])
      }
      mq?.end(true)
      setState(false, { reason: 'stopping' })
      outbox.wake()
      await sender
      outbox.close()
    },
    flushed: () => outbox.flushed(),
    onPublish: forward,
    metrics() {
      return { ...this.status() }
    },
    status() {
      return { connected: up ? 1 : 0, ...counters, queued: outbox.size }
    },
  }
}
