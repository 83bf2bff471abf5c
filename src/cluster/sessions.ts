/**
 * Persistent sessions cluster-wide. KV holds each persistent session's subscriptions and the stream sequence up to
 * which it was served; a node that gets the client later fetches it and replays the stream from there into the
 * session's queue. A client that connects anywhere is announced, so a node holding an older live connection with
 * that client id closes it (a client id is unique cluster-wide, [MQTT-3.1.4-3]).
 */
import { DeliverPolicy, type JetStreamClient } from '@nats-io/jetstream'
import type { KV } from '@nats-io/kv'
import type { NatsConnection } from '@nats-io/transport-node'
import type { Logger } from '../logger.ts'
import type { StoredDelivery, StoredSession } from '../plugin.ts'
import { Reason } from '../protocol/reason.ts'
import type { Sessions } from '../sessions.ts'
import { filterMatches, type Subscription } from '../topics/trie.ts'
import { own } from '../message.ts'
import { frameMessage, kvKey } from './wire.ts'

/** Where this node stands in the stream of QoS 1/2 messages (stream-interest.ts). */
export interface StreamPosition {
  /** A sequence up to which every message matching these filters has been routed here. */
  positionFor(filters: string[]): Promise<number>
  /** The highest sequence routed here from these filters (a replay into a session that takes them goes that far). */
  routedFor(filters: string[]): number
  /** The stream's last sequence now. */
  head(): Promise<number>
  /** Filters this node starts reading in this turn are read from `seq` (a session taken over was replayed up to it). */
  startFrom(seq: number): void
  /** The highest sequence of this node's own publishes, once JetStream acknowledged them. */
  readonly ownSeq: number
  /** Resolves when this node's publishes in flight are in JetStream. */
  flushed(): Promise<void> | null
}

export class ClusterSessions {
  /** Client ids whose session this node wrote to KV. */
  private readonly saved = new Set<string>()
  /** Each client's last write to KV, so that its writes land in the order they were asked for. */
  private readonly writing = new Map<string, Promise<unknown>>()

  constructor(
    private readonly sessions: Pick<Sessions, 'get' | 'forget'>,
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly stream: string,
    private readonly node: string,
    private readonly prefix: string,
    private readonly position: StreamPosition,
    private readonly track: (write: Promise<unknown>) => void,
    private readonly logger: Logger,
  ) {}

  /** Records a persistent session (on connect, on (un)subscribe, on disconnect). */
  save(clientId: string): void {
    const session = this.sessions.get(clientId)
    if (!session?.persistent) return
    const subscriptions = [...session.subscriptions.values()]
    const { expiryInterval } = session
    this.saved.add(clientId)
    // The stream position is asked of NATS (how far this node's reading of these filters has got); the entry is written after.
    const filters = subscriptions.filter((s) => s.group === undefined).map((s) => s.filter)
    const previous = this.writing.get(clientId) ?? Promise.resolve()
    const write = previous
      .catch(() => undefined)
      .then(() => this.position.positionFor(filters))
      .then((seq) => this.kv.put(kvKey(clientId), JSON.stringify({ expiryInterval, subscriptions, seq, node: this.node })))
    this.writing.set(clientId, write)
    void write.finally(() => this.writing.get(clientId) === write && this.writing.delete(clientId)).catch(() => undefined)
    this.track(write)
  }

  /** A session ended here: remove it from KV, if it was ever written there. */
  drop(clientId: string): void {
    if (!this.saved.delete(clientId)) return
    const previous = this.writing.get(clientId) ?? Promise.resolve()
    this.track(previous.catch(() => undefined).then(() => this.kv.delete(kvKey(clientId))))
  }

  /** The session of a client last seen on another node, with every QoS 1/2 message it has not been served since. */
  async fetch(clientId: string): Promise<StoredSession | null> {
    const entry = await this.kv.get(kvKey(clientId))
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return null
    const stored = entry.json<{ expiryInterval: number; subscriptions: Subscription[]; seq: number; node: string }>()
    const plain = stored.subscriptions.filter((s) => s.group === undefined)
    const deliveries = await this.replay(stored.seq, plain)
    this.logger.info('cluster.session_fetched', { clientId, from: stored.node, replayed: deliveries.length })
    return { clientId, expiryInterval: stored.expiryInterval, expiresAt: 0, subscriptions: stored.subscriptions, deliveries, awaitingRelease: [] }
  }

  /** Tells the other nodes a client connected here, and when (epoch ms: a connection accepted before it elsewhere is taken over). */
  announceConnect(clientId: string): void {
    // When the connection was accepted (epoch ms, the broker's clock): each node compares its own live connection's
    // acceptance with the other's, the same measure on both sides.
    const at = this.sessions.get(clientId)?.client?.acceptedAt ?? Date.now()
    this.nc.publish(`${this.prefix}.connect`, JSON.stringify({ clientId, node: this.node, at }))
  }

  /** Another node announced a connection: an older live one here is taken over, and the copy of the session dropped. */
  onAnnouncement(text: string): void {
    const { clientId, node, at } = JSON.parse(text) as { clientId: string; node: string; at: number }
    if (node === this.node) return
    // Only a connection older than the announced one is taken over: an announcement that arrives late must not
    // close the newer connection it raced with (node clocks are assumed close, as NTP keeps them). Times are in ms;
    // within the same ms the node ids decide, the same way on both nodes, so exactly one of the two stays.
    const live = this.sessions.get(clientId)?.client
    if (live && (live.acceptedAt < at || (live.acceptedAt === at && this.node < node))) live.disconnect(Reason.SessionTakenOver, `session taken over on node ${node}`) // [MQTT-3.1.4-3]
    // The session now lives on that node (it fetched it, with what was queued): drop the copy here.
    this.sessions.forget(clientId)
    this.saved.delete(clientId)
  }

  /**
   * QoS 1/2 messages after `fromSeq` that match the subscriptions, up to where this node reads on by itself: the
   * stream's head now, or further if this node has routed beyond it from these filters meanwhile. The filters this
   * node starts reading when it adopts the session are read from just after that point (startFrom), so nothing
   * falls between the replay and the live reading; what this node already reads may come twice (at least once).
   */
  private async replay(fromSeq: number, subscriptions: Subscription[]): Promise<StoredDelivery[]> {
    const out: StoredDelivery[] = []
    await this.position.flushed() // this node's own publishes in flight get their sequence numbers first
    const filters = subscriptions.map((s) => s.filter)
    const head = Math.max(await this.position.head(), this.position.ownSeq)
    const target = () => Math.max(head, this.position.routedFor(filters))
    if (subscriptions.length === 0 || target() <= fromSeq) {
      this.position.startFrom(target() + 1)
      return out
    }
    const consumer = await this.js.consumers.get(this.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: fromSeq + 1 })
    const messages = await consumer.consume()
    for await (const m of messages) {
      const message = frameMessage(m.data)
      if (message) {
        message.remote = undefined
        own(message) // kept in the session's queue: its own copy, not a view of the consumer's message
        let qos = -1
        let retainAsPublished = false
        const ids: number[] = []
        for (const sub of subscriptions) {
          if (!filterMatches(sub.filter, message.topic) || (sub.noLocal && sub.clientId === message.origin)) continue
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
    this.position.startFrom(target() + 1)
    return out
  }
}
