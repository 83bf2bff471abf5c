/**
 * Several Midge nodes as one broker on NATS (JetStream for what must not be lost). What goes where:
 *
 * - `midge.<name>.m0` (core NATS): QoS 0 messages, to every node. Own messages are not echoed back.
 * - stream `MIDGE_<name>`, subject `midge.<name>.m1` (JetStream): QoS 1/2 messages. The node that received
 *   the PUBLISH acknowledges it only once JetStream has stored it (the broker waits on `flushed()`); every node
 *   reads the stream with an ordered consumer from the moment it starts, and skips its own messages.
 * - KV bucket `midge_<name>_retained`: retained messages, one key per topic; loaded by a node at start.
 * - share groups: each node with a member of `$share/{group}/{filter}` joins the group's NATS queue group on the
 *   QoS 0 subject and pulls from the group's durable JetStream consumer for QoS 1/2: one node gets each message
 *   and gives it to one of its members (acknowledging the JetStream message only once delivered).
 * - KV bucket `midge_<name>_sessions`: each persistent session's subscriptions and the stream sequence it was
 *   served up to; a node that gets the client later replays the stream from there into the session's queue.
 * - `midge.<name>.connect` (core NATS): a client connected on some node; any other node holding a live
 *   connection with that client id closes it (DISCONNECT 0x8E), so a client id is unique cluster-wide.
 *
 * Each message carries its metadata in a `Midge-Meta` header (JSON) and its payload as the body.
 */
import { connect, credsAuthenticator, headers, type NatsConnection, type Subscription as NatsSubscription } from '@nats-io/transport-node'
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { readFileSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import type { Broker } from '../broker.ts'
import type { ClusterConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { Message, MessageProperties } from '../message.ts'
import type { StoredDelivery, StoredSession } from '../plugin.ts'
import { publish } from '../publish.ts'
import type { Subscription } from '../topics/trie.ts'
import { Reason } from '../protocol/reason.ts'
import { filterMatches as topicMatches } from '../topics/trie.ts'

interface Meta {
  node: string
  topic: string
  qos: 0 | 1 | 2
  retain: boolean
  origin?: string
  expiresAt: number
  properties?: Record<string, unknown>
}

export class NatsFabric {
  connected = true
  private readonly pending = new Set<Promise<unknown>>()
  private readonly subscriptions: NatsSubscription[] = []
  private stopConsumer: (() => void) | null = null
  private closed = false
  /** The share groups with members on this node (queue subscription and JetStream consumer), by queue name. */
  private readonly groups = new Map<string, { stop: Array<() => void> }>()
  private forwarded = 0
  private received = 0
  /** Client ids whose session this node wrote to KV. */
  private readonly savedSessions = new Set<string>()
  /** The highest stream sequence this node has routed (or skipped as its own). */
  appliedSeq = 0
  /** The highest stream sequence of this node's own QoS 1/2 publishes, once JetStream acknowledged them. */
  private ownSeq = 0

  private constructor(
    private readonly broker: Broker,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly sessionsKv: KV,
    private readonly stream: string,
    private readonly node: string,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {}

  static async connect(broker: Broker, config: ClusterConfig, logger: Logger): Promise<NatsFabric> {
    const { servers, credentials, name } = config.nats
    const node = config.nodeId ?? `node-${randomBytes(4).toString('hex')}`
    const nc = await connect({
      servers,
      name: `midge ${node}`,
      // Echo on: a node must be able to be the one its own message is queued to (shared subscriptions);
      // broadcast copies of its own messages are skipped by node id.
      maxReconnectAttempts: -1,
      authenticator: credentials ? credsAuthenticator(readFileSync(credentials)) : undefined,
    })
    const jsm = await jetstreamManager(nc)
    const stream = `MIDGE_${name}`
    const subject = `midge.${name}.m1`
    try {
      await jsm.streams.info(stream)
    } catch {
      // Kept for a day: long enough for a node restart to catch up, bounded so the stream cannot grow for ever.
      await jsm.streams.add({ name: stream, subjects: [subject], max_age: 24 * 60 * 60 * 1e9, duplicate_window: 2 * 60 * 1e9 })
    }
    const js = jetstream(nc)
    const kvm = new Kvm(js)
    const kv = await kvm.create(`midge_${name}_retained`, { history: 1 })
    const sessionsKv = await kvm.create(`midge_${name}_sessions`, { history: 1 })
    const fabric = new NatsFabric(broker, nc, js, kv, sessionsKv, stream, node, `midge.${name}`, logger)
    // The live consumer starts after the stream's last message: that is where this node stands now.
    fabric.appliedSeq = (await jsm.streams.info(stream)).state.last_seq
    await fabric.listen(stream)
    broker.router.sharedByFabric = true
    broker.nodeId = node
    // Share groups of sessions that were already here (loaded from a session store).
    for (const session of broker.sessions.values()) for (const sub of session.subscriptions.values()) if (sub.group !== undefined) fabric.ensureGroup(sub.group, sub.filter)
    logger.info('cluster.joined', { node, servers, name })
    return fabric
  }

  private async listen(stream: string): Promise<void> {
    this.subscriptions.push(
      this.nc.subscribe(`${this.prefix}.m0`, {
        callback: (error, msg) => {
          if (!error) this.receive(msg.headers?.get('Midge-Meta'), msg.data)
        },
      }),
      this.nc.subscribe(`${this.prefix}.connect`, {
        callback: (error, msg) => {
          if (error) return
          const { clientId, node, at } = msg.json<{ clientId: string; node: string; at: number }>()
          if (node === this.node) return
          // Only a connection older than the announced one is taken over: an announcement that arrives late
          // must not close the newer connection it raced with (node clocks are assumed close, as NTP keeps them).
          const live = this.broker.sessions.get(clientId)?.client
          if (live && live.connectedAt < at) live.disconnect(Reason.SessionTakenOver, `session taken over on node ${node}`) // [MQTT-3.1.4-3]
          // The session now lives on that node (it fetched it, with what was queued): drop the copy here.
          this.broker.sessions.forget(clientId)
          this.savedSessions.delete(clientId)
        },
      }),
    )
    // Reads the stream from where this node stands; if the consumer ends (NATS restarted, consumer lost), it is
    // made again from the next sequence, so nothing stored meanwhile is skipped.
    void (async () => {
      while (!this.closed) {
        try {
          const consumer = await this.js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.appliedSeq + 1 })
          const messages = await consumer.consume()
          this.stopConsumer = () => messages.stop()
          for await (const m of messages) {
            this.receive(m.headers?.get('Midge-Meta'), m.data)
            this.appliedSeq = Math.max(this.appliedSeq, m.seq)
          }
        } catch (error) {
          if (!this.closed) this.logger.warn('cluster.consumer_restart', { error: (error as Error).message })
        }
        if (!this.closed) await Bun.sleep(200)
      }
    })()
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false
          this.logger.warn('cluster.disconnected', { node: this.node })
        } else if (status.type === 'reconnect') {
          this.connected = true
          this.logger.info('cluster.reconnected', { node: this.node })
          // The server may have restarted and lost our ephemeral consumer: read on with a new one.
          this.stopConsumer?.()
        }
      }
    })()
  }

  /**
   * A share group with a member here takes part in the group's cluster-wide delivery: QoS 0 through a NATS queue
   * group on the QoS 0 subject (one node per message, at most once), QoS 1/2 through a durable JetStream consumer
   * of the group that every such node pulls from (one node per message, acknowledged only once delivered to a
   * member here, so a node that dies or has no member left lets JetStream give the message to another: at least once).
   */
  ensureGroup(group: string, filter: string): void {
    const queue = Buffer.from(`${group}\n${filter}`).toString('base64url')
    if (this.groups.has(queue)) return
    const sub = this.nc.subscribe(`${this.prefix}.m0`, {
      queue,
      callback: (error, msg) => {
        if (!error) this.receiveShared(queue, group, filter, msg.headers?.get('Midge-Meta'), msg.data)
      },
    })
    const entry = { stop: [() => sub.unsubscribe()] }
    this.groups.set(queue, entry)
    void this.consumeGroup(queue, group, filter, entry).catch((error: Error) => this.logger.error('cluster.share_consumer_failed', { group, filter, error: error.message }))
  }

  private async consumeGroup(queue: string, group: string, filter: string, entry: { stop: Array<() => void> }): Promise<void> {
    const durable = `share_${createHash('sha256').update(queue).digest('hex').slice(0, 24)}`
    const jsm = await jetstreamManager(this.nc)
    try {
      await jsm.consumers.info(this.stream, durable)
    } catch {
      await jsm.consumers.add(this.stream, { durable_name: durable, filter_subject: `${this.prefix}.m1`, deliver_policy: DeliverPolicy.New, ack_policy: AckPolicy.Explicit, ack_wait: 10 * 1e9, inactive_threshold: 60 * 1e9 }) // gone a minute after the last member leaves
    }
    const consumer = await this.js.consumers.get(this.stream, durable)
    const messages = await consumer.consume()
    entry.stop.push(() => messages.stop())
    for await (const m of messages) {
      const metaText = m.headers?.get('Midge-Meta')
      const meta = metaText ? (JSON.parse(metaText) as Meta) : null
      if (!meta || !topicMatches(filter, meta.topic)) {
        m.ack() // not for this group
        continue
      }
      if (this.broker.router.deliverShared(this.toMessage(meta, m.data), group, filter)) m.ack()
      else {
        m.nak() // another node of the group takes it
        this.leaveGroup(queue)
      }
    }
  }

  private receiveShared(queue: string, group: string, filter: string, metaText: string | undefined, data: Uint8Array): void {
    if (!metaText) return
    const meta = JSON.parse(metaText) as Meta
    if (!topicMatches(filter, meta.topic)) return
    if (!this.broker.router.deliverShared(this.toMessage(meta, data), group, filter)) this.leaveGroup(queue)
  }

  /** No member here any more: leave the group, so NATS and JetStream pick a node that has one. */
  private leaveGroup(queue: string): void {
    for (const stop of this.groups.get(queue)?.stop ?? []) stop()
    this.groups.delete(queue)
  }

  private toMessage(meta: Meta, data: Uint8Array): Message {
    return {
      topic: meta.topic,
      payload: Buffer.from(data),
      qos: meta.qos,
      retain: meta.retain,
      properties: decodeProperties(meta.properties),
      expiresAt: meta.expiresAt,
      origin: meta.origin,
      owned: true,
      remote: true,
    }
  }

  /** A message from another node: route it here as if it had been published here. */
  private receive(metaText: string | undefined, data: Uint8Array): void {
    if (!metaText) return
    const meta = JSON.parse(metaText) as Meta
    if (meta.node === this.node) return
    this.received++
    publish(this.broker, this.toMessage(meta, data), null) // checked and authorised on the node it came from
  }

  /** A message routed on this node: on to the other nodes. QoS 1/2 go through JetStream and are waited on. */
  forward(message: Readonly<Message>): void {
    // Each node's own figures and its view of the totals stay on it; $SYS/nodes/<node>/... go to every node.
    if (message.topic.startsWith('$SYS/broker/') || message.topic.startsWith('$SYS/cluster/')) return
    const meta: Meta = { node: this.node, topic: message.topic, qos: message.qos, retain: message.retain, origin: message.origin, expiresAt: message.expiresAt, properties: encodeProperties(message.properties) }
    const h = headers()
    h.set('Midge-Meta', JSON.stringify(meta))
    this.forwarded++
    if (message.qos === 0) {
      this.nc.publish(`${this.prefix}.m0`, message.payload, { headers: h })
      return
    }
    this.track(this.js.publish(`${this.prefix}.m1`, message.payload, { headers: h }).then((ack) => (this.ownSeq = Math.max(this.ownSeq, ack.seq))))
  }

  // Sessions shared across nodes: KV holds each persistent session's subscriptions and the stream sequence up to
  // which it was served; a node that gets the client later replays the stream from there.

  private sessionKey(clientId: string): string {
    return Buffer.from(clientId).toString('base64url')
  }

  /** Records a persistent session (on connect, on (un)subscribe, on disconnect). */
  saveSession(clientId: string): void {
    const session = this.broker.sessions.get(clientId)
    if (!session?.persistent) return
    const entry = { expiryInterval: session.expiryInterval, subscriptions: [...session.subscriptions.values()], seq: this.appliedSeq, node: this.node }
    this.savedSessions.add(clientId)
    this.track(this.sessionsKv.put(this.sessionKey(clientId), JSON.stringify(entry)))
  }

  /** A session ended here: remove it from KV, if it was ever written there. */
  dropSession(clientId: string): void {
    if (!this.savedSessions.delete(clientId)) return
    this.track(this.sessionsKv.delete(this.sessionKey(clientId)))
  }

  /** The session of a client last seen on another node, with every QoS 1/2 message it has not been served since. */
  async fetchSession(clientId: string): Promise<StoredSession | null> {
    const entry = await this.sessionsKv.get(this.sessionKey(clientId))
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return null
    const stored = entry.json<{ expiryInterval: number; subscriptions: Subscription[]; seq: number }>()
    const deliveries = await this.replay(stored.seq, stored.subscriptions.filter((s) => s.group === undefined))
    this.logger.info('cluster.session_fetched', { clientId, from: entry.json<{ node: string }>().node, replayed: deliveries.length })
    return { clientId, expiryInterval: stored.expiryInterval, expiresAt: 0, subscriptions: stored.subscriptions, deliveries, awaitingRelease: [] }
  }

  /** QoS 1/2 messages after `fromSeq` that match the subscriptions, up to what this node has routed itself. */
  private async replay(fromSeq: number, subscriptions: Subscription[]): Promise<StoredDelivery[]> {
    const out: StoredDelivery[] = []
    await this.flushed() // this node's own publishes in flight get their sequence numbers first
    const target = () => Math.max(this.appliedSeq, this.ownSeq)
    if (subscriptions.length === 0 || target() <= fromSeq) return out
    const consumer = await this.js.consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq + 1 })
    const messages = await consumer.consume()
    for await (const m of messages) {
      const metaText = m.headers?.get('Midge-Meta')
      if (metaText) {
        const message = this.toMessage(JSON.parse(metaText) as Meta, m.data)
        message.remote = undefined
        let qos = -1
        let retainAsPublished = false
        const ids: number[] = []
        for (const sub of subscriptions) {
          if (!topicMatches(sub.filter, message.topic) || (sub.noLocal && sub.clientId === message.origin)) continue
          qos = Math.max(qos, sub.qos)
          retainAsPublished ||= sub.retainAsPublished
          if (sub.identifier) ids.push(sub.identifier)
        }
        if (qos >= 0) {
          const q = Math.min(qos, message.qos) as 0 | 1 | 2
          out.push({ seq: out.length + 1, packetId: 0, state: 'queued', qos: q, retain: retainAsPublished && message.retain, subscriptionIds: ids.length ? ids : undefined, message })
        }
      }
      if (m.seq >= target()) break
    }
    messages.stop()
    return out
  }

  announceConnect(clientId: string): void {
    this.nc.publish(`${this.prefix}.connect`, JSON.stringify({ clientId, node: this.node, at: performance.timeOrigin + performance.now() }))
  }

  async loadRetained(): Promise<Message[]> {
    const out: Message[] = []
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key)
      if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue
      const stored = entry.json<Meta & { payload: string }>()
      out.push({ topic: stored.topic, payload: Buffer.from(stored.payload, 'base64'), qos: stored.qos, retain: true, properties: decodeProperties(stored.properties), expiresAt: stored.expiresAt, origin: undefined })
    }
    return out
  }

  storeRetained(topic: string, message: Message | null): void {
    const key = Buffer.from(topic).toString('base64url')
    if (!message) {
      this.track(this.kv.delete(key))
      return
    }
    const stored = { topic, qos: message.qos, expiresAt: message.expiresAt, properties: encodeProperties(message.properties), payload: message.payload.toString('base64') }
    this.track(this.kv.put(key, JSON.stringify(stored)))
  }

  /** Resolves when what was forwarded or stored so far is in JetStream; null when nothing is pending. */
  flushed(): Promise<void> | null {
    if (this.pending.size === 0) return null
    return Promise.all([...this.pending]).then(() => undefined)
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise.finally(() => this.pending.delete(tracked))
    this.pending.add(tracked)
    tracked.catch((error: Error) => this.logger.error('cluster.publish_failed', { error: error.message }))
  }

  metrics(): Record<string, number> {
    return { forwarded: this.forwarded, received: this.received, connected: this.connected ? 1 : 0 }
  }

  async close(): Promise<void> {
    this.closed = true
    this.stopConsumer?.()
    for (const queue of [...this.groups.keys()]) this.leaveGroup(queue)
    for (const s of this.subscriptions) s.unsubscribe()
    await Promise.allSettled([...this.pending])
    await this.nc.drain().catch(() => this.nc.close())
  }
}

function encodeProperties(p: MessageProperties | undefined): Record<string, unknown> | undefined {
  if (!p) return undefined
  const { correlationData, ...rest } = p
  return correlationData ? { ...rest, correlationData: correlationData.toString('base64') } : rest
}

function decodeProperties(p: Record<string, unknown> | undefined): MessageProperties | undefined {
  if (!p) return undefined
  const { correlationData, ...rest } = p as MessageProperties & { correlationData?: string }
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}
