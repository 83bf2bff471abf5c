/**
 * Several Midge nodes as one broker on NATS (JetStream for what must not be lost). What goes where:
 *
 * - `midge.<name>.m0.<topic as subject>` (core NATS, subjects.ts): QoS 0 messages. A node subscribes to the subjects
 *   of the filters its sessions hold (each filter once, while any session holds it: the trie tells), so NATS sends
 *   it only what some subscription there can match. A message matching two of its filters comes twice, one copy
 *   right after the other: the second is dropped by the sender's run and sequence number.
 * - stream `MIDGE_<name>`, subject `midge.<name>.m1` (JetStream): QoS 1/2 messages. The node that received
 *   the PUBLISH acknowledges it only once JetStream has stored it (the broker waits on `flushed()`); every node
 *   reads the stream with an ordered consumer from the moment it starts, and skips its own messages.
 * - KV bucket `midge_<name>_retained`: retained messages (retained.ts).
 * - share groups: a NATS queue group and a durable JetStream consumer per group (groups.ts).
 * - KV bucket `midge_<name>_sessions` and `midge.<name>.connect`: persistent sessions and client-id takeover
 *   across nodes (sessions.ts).
 *
 * Each message travels as one binary frame, its metadata and then its payload (wire.ts). This file
 * holds the connection, the forwarding of messages both ways, and what is waited on before an acknowledgement.
 */
import { connect, credsAuthenticator, type NatsConnection, type Subscription as NatsSubscription } from '@nats-io/transport-node'
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream'
import { type KV, Kvm } from '@nats-io/kv'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import type { ClusterConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import type { Message } from '../message.ts'
import { publish, type PublishTarget } from '../publish.ts'
import type { Router } from '../routing.ts'
import type { Sessions } from '../sessions.ts'
import type { SubscriptionTrie } from '../topics/trie.ts'
import { ShareGroups } from './groups.ts'
import { RetainedKv } from './retained.ts'
import { ClusterSessions, type StreamPosition } from './sessions.ts'
import { filterSubjects, topicSubject } from './subjects.ts'
import { decodeFrame, encodeFrame, messageOf } from './wire.ts'

/** What the cluster needs of the broker: publishing (as the broker), its sessions, the share-group router, its name. */
export interface ClusterHost extends PublishTarget {
  readonly sessions: Pick<Sessions, 'get' | 'forget' | 'values'>
  /** Which filters this node has subscriptions on (the cluster subscribes to them on NATS). */
  readonly subscriptions: Pick<SubscriptionTrie, 'onInterest' | 'filters'>
  readonly router: Pick<Router, 'deliverShared' | 'sharedByFabric'>
  nodeId: string | null
}

export class NatsFabric implements StreamPosition {
  connected = true
  readonly groups: ShareGroups
  readonly sessions: ClusterSessions
  readonly retained: RetainedKv
  private readonly pending = new Set<Promise<unknown>>()
  private readonly subscriptions: NatsSubscription[] = []
  private stopConsumer: (() => void) | null = null
  private closed = false
  private forwarded = 0
  private received = 0
  /** The QoS 0 subject root: `<prefix>.m0`. */
  private readonly m0: string
  /** The NATS subscriptions for each filter this node has interest in. */
  private readonly interest = new Map<string, NatsSubscription[]>()
  /** This run of the node (QoS 0 copies are told apart by run and sequence), and its QoS 0 messages sent so far. */
  private readonly run = randomBytes(4).readUInt32LE(0)
  private sentQoS0 = 0
  private warnedBadFrame = false
  /** The last QoS 0 message taken from each node (by its run), to drop the second copy of one. */
  private readonly lastFrom = new Map<string, { run: number; seq: number }>()
  appliedSeq = 0
  ownSeq = 0

  private constructor(
    private readonly broker: ClusterHost,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    stream: string,
    private readonly node: string,
    private readonly prefix: string,
    private readonly logger: Logger,
    kvs: { retained: KV; sessions: KV },
  ) {
    this.m0 = `${prefix}.m0`
    const track = (write: Promise<unknown>) => this.track(write)
    this.groups = new ShareGroups(nc, js, stream, prefix, (message, group, filter) => broker.router.deliverShared(message, group, filter), logger)
    this.sessions = new ClusterSessions(broker.sessions, nc, js, kvs.sessions, stream, node, prefix, this, track, logger)
    this.retained = new RetainedKv(kvs.retained, track)
  }

  static async connect(broker: ClusterHost, config: ClusterConfig, logger: Logger): Promise<NatsFabric> {
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
    const kvs = { retained: await kvm.create(`midge_${name}_retained`, { history: 1 }), sessions: await kvm.create(`midge_${name}_sessions`, { history: 1 }) }
    const fabric = new NatsFabric(broker, nc, js, stream, node, `midge.${name}`, logger, kvs)
    // The live consumer starts after the stream's last message: that is where this node stands now.
    fabric.appliedSeq = (await jsm.streams.info(stream)).state.last_seq
    await fabric.listen(stream)
    // Interest: every filter held now, then each as the trie gains or loses it.
    for (const filter of broker.subscriptions.filters()) fabric.setInterest(filter, true)
    broker.subscriptions.onInterest = (filter, present) => fabric.setInterest(filter, present)
    broker.router.sharedByFabric = true
    broker.nodeId = node
    // Share groups of sessions that were already here (loaded from a session store).
    for (const session of broker.sessions.values()) for (const sub of session.subscriptions.values()) if (sub.group !== undefined) fabric.groups.join(sub.group, sub.filter)
    logger.info('cluster.joined', { node, servers, name })
    return fabric
  }

  private async listen(stream: string): Promise<void> {
    this.subscriptions.push(
      this.nc.subscribe(`${this.prefix}.connect`, {
        callback: (error, msg) => {
          if (!error) this.sessions.onAnnouncement(msg.string())
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
            this.receive(m.data)
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

  /** Subscribes to a filter's subjects on NATS (or stops), so QoS 0 messages that filter matches come here. */
  private setInterest(filter: string, present: boolean): void {
    const held = this.interest.get(filter)
    if (!present) {
      for (const sub of held ?? []) sub.unsubscribe()
      this.interest.delete(filter)
      return
    }
    if (held) return
    const subs = filterSubjects(this.m0, filter).map((subject) =>
      this.nc.subscribe(subject, {
        callback: (error, msg) => {
          if (!error) this.receive(msg.data)
        },
      }),
    )
    this.interest.set(filter, subs)
  }

  /** A message from another node: route it here as if it had been published here. */
  private receive(data: Uint8Array): void {
    const frame = decodeFrame(data)
    if (!frame) return this.badFrame()
    const meta = frame.meta
    if (meta.node === this.node) return
    if (meta.seq !== undefined && this.repeated(meta.node, meta.run!, meta.seq)) return
    this.received++
    publish(this.broker, messageOf(meta, frame.payload), null) // checked and authorised on the node it came from
  }

  /** A message that is no frame of this version (a node of another version on the cluster): logged once, dropped. */
  private badFrame(): void {
    if (this.warnedBadFrame) return
    this.warnedBadFrame = true
    this.logger.warn('cluster.bad_frame', { node: this.node, reason: 'a message that is not a Midge frame of this version was dropped (are all nodes the same version?)' })
  }

  /**
   * Whether a QoS 0 message is the second copy of the last one from that node: it matched two of this node's filters,
   * and NATS sends a copy per subscription, one right after the other (in order per sender).
   */
  private repeated(node: string, run: number, seq: number): boolean {
    const last = this.lastFrom.get(node)
    if (last && last.run === run) {
      if (seq <= last.seq) return true
      last.seq = seq
      return false
    }
    this.lastFrom.set(node, { run, seq })
    return false
  }

  /** A message routed on this node: on to the other nodes. QoS 1/2 go through JetStream and are waited on. */
  forward(message: Readonly<Message>): void {
    // Each node's own figures and its view of the totals stay on it; $SYS/nodes/<node>/... go to every node.
    if (message.topic.startsWith('$SYS/broker/') || message.topic.startsWith('$SYS/cluster/')) return
    this.forwarded++
    if (message.qos === 0) {
      this.nc.publish(topicSubject(this.m0, message.topic), encodeFrame(this.node, message, this.run, ++this.sentQoS0))
      return
    }
    this.track(this.js.publish(`${this.prefix}.m1`, encodeFrame(this.node, message)).then((ack) => (this.ownSeq = Math.max(this.ownSeq, ack.seq))))
  }

  /**
   * Resolves once what this node has asked of NATS so far is in place: its share-group consumers, its writes, and
   * (a round trip to the server) its subscriptions and publishes. What "nothing more arrives" waits on in a test.
   */
  async settled(): Promise<void> {
    await this.groups.settled()
    await this.flushed()
    await this.nc.flush()
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
    this.groups.leaveAll()
    this.broker.subscriptions.onInterest = null
    for (const subs of this.interest.values()) for (const s of subs) s.unsubscribe()
    this.interest.clear()
    for (const s of this.subscriptions) s.unsubscribe()
    await Promise.allSettled([...this.pending])
    await this.nc.drain().catch(() => this.nc.close())
  }
}
