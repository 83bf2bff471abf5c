/**
 * Several Midge nodes as one broker on NATS (JetStream for what must not be lost). What goes where:
 *
 * - `midge.<name>.m0.<topic as subject>` (core NATS, subjects.ts): QoS 0 messages. A node subscribes to the subjects
 *   of the filters its sessions hold (each filter once, while any session holds it: the trie tells), so NATS sends
 *   it only what some subscription there can match. A message matching two of its filters comes twice, one copy
 *   right after the other: the second is dropped by the sender's run and sequence number.
 * - stream `MIDGE_<name>`, subjects `midge.<name>.m1.<topic as subject>` (JetStream): QoS 1/2 messages. The node
 *   that received the PUBLISH acknowledges it only once JetStream has stored it (the broker waits on `flushed()`);
 *   a node reads only the subjects of the filters its sessions hold (stream-interest.ts), and skips its own messages.
 * - KV bucket `midge_<name>_retained`: retained messages, watched by every node (retained.ts).
 * - share groups: a NATS queue group and a durable JetStream consumer per group (groups.ts).
 * - KV bucket `midge_<name>_sessions` and `midge.<name>.connect`: persistent sessions and client-id takeover
 *   across nodes (sessions.ts).
 *
 * Each message travels as one binary frame, its metadata and then its payload (wire.ts). This file
 * holds the connection, the forwarding of messages both ways, and what is waited on before an acknowledgement.
 */
import { connect, credsAuthenticator, type NatsConnection, type Subscription as NatsSubscription } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
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
import { ClusterApi, type LocalAnswers } from './api.ts'
import { ShareGroups } from './groups.ts'
import { RetainedKv } from './retained.ts'
import { ClusterSessions, type StreamPosition } from './sessions.ts'
import { StreamInterest } from './stream-interest.ts'
import { filterSubjects, topicSubject } from './subjects.ts'
import { Batch, batchHeader, eachFrame, encodeFrame, frameMessage, sentBy } from './wire.ts'
import { setTimeout as sleep } from 'node:timers/promises'

/** A batch is sent at once past this many bytes (NATS's default maximum message is 1 MB). */
const BATCH_BYTES = 256 * 1024

/** Every node's $SYS figures (sys.ts): read by every node, whatever its clients subscribe to. */
const NODE_FIGURES = '$SYS/nodes/#'

/** Longest a SUBACK waits for the node's interest to be in place on NATS. */
const INTEREST_WAIT_MS = 5000

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
  /** The cluster-wide answers of the HTTP API (api.ts). */
  readonly api: ClusterApi
  private readonly pending = new Set<Promise<unknown>>()
  private readonly subscriptions: NatsSubscription[] = []
  /** QoS 1/2: the stream's subjects this node reads. */
  private readonly streamInterest: StreamInterest
  private forwarded = 0
  private received = 0
  /** The subject roots of QoS 0 messages (`<prefix>.m0`) and of QoS 1/2 ones, the stream's (`<prefix>.m1`). */
  private readonly m0: string
  private readonly m1: string
  /** The NATS subscriptions for each filter this node has interest in. */
  private readonly interest = new Map<string, NatsSubscription[]>()
  /** This run of the node (random per start: QoS 0 batches are told apart by run and sequence), and its batches sent so far. */
  private readonly run = randomBytes(4).readUInt32LE(0)
  private sentBatches = 0
  /** This node's name as frames carry it (own frames from the stream are skipped by it). */
  private readonly nodeBytes: Buffer
  private warnedBadFrame = false
  /** QoS 0 frames of this tick, by subject: sent as one NATS message per subject at the end of the tick. */
  private readonly batches = new Map<string, Batch>()
  private batchScheduled = false
  /** The sequence of the last QoS 0 batch taken from each node's run, to drop the second copy of one. */
  private readonly lastFrom = new Map<number, number>()
  ownSeq = 0
  /** A filter or share group was gained since flushed() last looked. */
  private interestGained = false

  private constructor(
    private readonly broker: ClusterHost,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    jsm: JetStreamManager,
    stream: string,
    private readonly node: string,
    private readonly prefix: string,
    private readonly logger: Logger,
    kvs: { retained: KV; sessions: KV },
    answers: LocalAnswers,
  ) {
    this.nodeBytes = Buffer.from(node)
    this.m0 = `${prefix}.m0`
    this.m1 = `${prefix}.m1`
    this.streamInterest = new StreamInterest(js, jsm, stream, this.m1, (data) => this.receive(data), logger)
    const track = (write: Promise<unknown>) => this.track(write)
    this.groups = new ShareGroups(nc, js, stream, prefix, (message, group, filter) => broker.router.deliverShared(message, group, filter), logger)
    this.sessions = new ClusterSessions(broker.sessions, nc, js, kvs.sessions, stream, node, prefix, this, track, logger)
    this.retained = new RetainedKv(kvs.retained, track, node, (message) => broker.retain(message), logger)
    this.api = new ClusterApi(nc, prefix, node, answers, logger)
  }

  static async connect(broker: ClusterHost, config: ClusterConfig, logger: Logger, answers: LocalAnswers): Promise<NatsFabric> {
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
    const subjects = [`midge.${name}.m1.>`]
    try {
      const info = await jsm.streams.info(stream)
      // A stream made by an earlier Midge (one subject for every message): every node of this version reads by topic.
      if (info.config.subjects?.join() !== subjects.join()) await jsm.streams.update(stream, { ...info.config, subjects })
    } catch (error) {
      if (!String((error as Error).message).includes('not found')) throw error
      // Kept for a day: long enough for a node restart to catch up, bounded so the stream cannot grow for ever.
      await jsm.streams.add({ name: stream, subjects, max_age: 24 * 60 * 60 * 1e9, duplicate_window: 2 * 60 * 1e9 })
    }
    const js = jetstream(nc)
    const kvm = new Kvm(js)
    const kvs = { retained: await kvm.create(`midge_${name}_retained`, { history: 1 }), sessions: await kvm.create(`midge_${name}_sessions`, { history: 1 }) }
    const fabric = new NatsFabric(broker, nc, js, jsm, stream, node, `midge.${name}`, logger, kvs, answers)
    fabric.listen()
    await fabric.retained.watch()
    // Interest: every filter held now, then each as the trie gains or loses it; and always every node's $SYS figures,
    // which each node keeps (retained) to publish the cluster's totals.
    fabric.setInterest(NODE_FIGURES, true)
    for (const filter of broker.subscriptions.filters()) fabric.setInterest(filter, true)
    broker.subscriptions.onInterest = (filter, present) => filter !== NODE_FIGURES && fabric.setInterest(filter, present)
    broker.router.sharedByFabric = true
    broker.nodeId = node
    // Share groups of sessions that were already here (loaded from a session store).
    for (const session of broker.sessions.values()) for (const sub of session.subscriptions.values()) if (sub.group !== undefined) fabric.groups.join(sub.group, sub.filter)
    logger.info('cluster.joined', { node, servers, name })
    return fabric
  }

  private listen(): void {
    this.subscriptions.push(
      this.nc.subscribe(`${this.prefix}.connect`, {
        callback: (error, msg) => {
          if (!error) this.sessions.onAnnouncement(msg.string())
        },
      }),
    )
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type === 'disconnect') {
          this.connected = false
          this.logger.warn('cluster.disconnected', { node: this.node })
        } else if (status.type === 'reconnect') {
          this.connected = true
          this.logger.info('cluster.reconnected', { node: this.node })
          // The server may have restarted and lost our ephemeral consumers: read on with new ones.
          this.streamInterest.restart()
        }
      }
    })()
  }

  /** Reads a filter's subjects from NATS (or stops), so the messages that filter matches come here, and only those. */
  private setInterest(filter: string, present: boolean): void {
    this.streamInterest.setInterest(filter, present)
    if (present) this.interestGained = true
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

  /** What NATS brought: a QoS 0 batch (not this node's own, nor the second copy of one), or a frame from the stream. */
  private receive(data: Uint8Array): void {
    const batch = batchHeader(data)
    if (batch && (batch.run === this.run || this.repeated(batch.run, batch.seq))) return
    if (!eachFrame(data, this.receiveFrame)) this.badFrame()
  }

  /** A message from another node: route it here as if it had been published here. */
  private readonly receiveFrame = (data: Uint8Array): void => {
    if (sentBy(data, this.nodeBytes)) return
    const message = frameMessage(data)
    if (!message) return this.badFrame()
    this.received++
    publish(this.broker, message, null) // checked and authorised on the node it came from
  }

  /** A message that is no frame of this version (a node of another version on the cluster): logged once, dropped. */
  private badFrame(): void {
    if (this.warnedBadFrame) return
    this.warnedBadFrame = true
    this.logger.warn('cluster.bad_frame', { node: this.node, reason: 'a message that is not a Midge frame of this version was dropped (are all nodes the same version?)' })
  }

  /**
   * Whether a QoS 0 batch is the second copy of the last one from that node's run: it matched two of this node's
   * filters, and NATS sends a copy per subscription, one right after the other (in order per sender).
   */
  private repeated(run: number, seq: number): boolean {
    const last = this.lastFrom.get(run)
    if (last !== undefined && seq <= last) return true
    this.lastFrom.set(run, seq)
    return false
  }

  /** A message routed on this node: on to the other nodes. QoS 1/2 go through JetStream and are waited on. */
  forward(message: Readonly<Message>): void {
    // Each node's own figures and its view of the totals stay on it; $SYS/nodes/<node>/... go to every node.
    if (message.topic.startsWith('$SYS/broker/') || message.topic.startsWith('$SYS/cluster/')) return
    this.forwarded++
    if (message.qos === 0) {
      this.batch(topicSubject(this.m0, message.topic), message)
      return
    }
    this.track(this.js.publish(topicSubject(this.m1, message.topic), encodeFrame(this.node, message)).then((ack) => (this.ownSeq = Math.max(this.ownSeq, ack.seq))))
  }

  /** Adds a QoS 0 message to its subject's batch, sent at the end of the tick (or at once when large). */
  private batch(subject: string, message: Readonly<Message>): void {
    let batch = this.batches.get(subject)
    if (!batch) this.batches.set(subject, (batch = new Batch(message.payload.length + message.topic.length + 64)))
    batch.add(this.node, message)
    if (batch.bytes >= BATCH_BYTES) return this.sendBatch(subject, batch)
    if (this.batchScheduled) return
    this.batchScheduled = true
    queueMicrotask(() => this.sendBatches())
  }

  private sendBatches(): void {
    this.batchScheduled = false
    for (const [subject, batch] of this.batches) this.sendBatch(subject, batch)
  }

  private sendBatch(subject: string, batch: Batch): void {
    this.batches.delete(subject)
    try {
      this.nc.publish(subject, batch.finish(this.run, ++this.sentBatches))
    } catch (error) {
      // NATS closed or refusing (QoS 0 is at most once): said once per state, like the rest of the cluster's errors.
      if (this.connected) this.logger.warn('cluster.publish_failed', { error: (error as Error).message, messages: batch.count })
    }
  }

  /**
   * Resolves once what this node has asked of NATS so far is in place: its share-group consumers, its writes, and
   * (a round trip to the server) its subscriptions and publishes. What "nothing more arrives" waits on in a test.
   */
  async settled(): Promise<void> {
    await this.groups.settled()
    await this.streamInterest.settled()
    await this.flushed()
    await this.nc.flush()
  }

  /** A member of a share group is on this node: take part in the group's delivery (groups.ts). */
  joinGroup(group: string, filter: string): void {
    this.groups.join(group, filter)
    this.interestGained = true
  }

  // StreamPosition (sessions.ts), from the subjects this node reads.

  positionFor(filters: string[]): Promise<number> {
    return this.streamInterest.positionFor(filters)
  }

  routedFor(filters: string[]): number {
    return this.streamInterest.routedFor(filters)
  }

  head(): Promise<number> {
    return this.streamInterest.head()
  }

  startFrom(seq: number): void {
    this.streamInterest.startFrom(seq)
  }

  /**
   * Resolves when what was forwarded or stored so far is in JetStream, and (while NATS is there) the subscriptions
   * and readers of filters gained since the last call are in place on the server; null when nothing is pending. The
   * broker waits on it before PUBACK and before SUBACK, so a message published anywhere after SUBACK is not missed.
   */
  flushed(): Promise<void> | null {
    const waits: Array<Promise<unknown>> = [...this.pending]
    if (this.interestGained) {
      this.interestGained = false
      // Capped: NATS going away just now must not hold a SUBACK for as long as it is gone.
      const inPlace = Promise.all([this.streamInterest.settled(), this.groups.settled(), this.nc.flush()]).catch(() => undefined)
      if (this.connected) waits.push(Promise.race([inPlace, sleep(INTEREST_WAIT_MS)]))
    }
    if (waits.length === 0) return null
    return Promise.all(waits).then(() => undefined)
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise.finally(() => this.pending.delete(tracked))
    this.pending.add(tracked)
    tracked.catch((error: Error) => this.logger.error('cluster.publish_failed', { error: error.message }))
  }

  metrics(): Record<string, number> {
    return { forwarded: this.forwarded, received: this.received, fromStream: this.streamInterest.delivered, connected: this.connected ? 1 : 0 }
  }

  async close(): Promise<void> {
    this.streamInterest.close()
    this.retained.close()
    this.api.close()
    this.groups.leaveAll()
    this.broker.subscriptions.onInterest = null
    for (const subs of this.interest.values()) for (const s of subs) s.unsubscribe()
    this.interest.clear()
    for (const s of this.subscriptions) s.unsubscribe()
    await Promise.allSettled([...this.pending])
    await this.nc.drain().catch(() => this.nc.close())
  }
}
