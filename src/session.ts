/**
 * One client's session state, which outlives its connection when the session is persistent:
 * subscriptions, QoS 1/2 messages in flight and queued, inbound QoS 2 ids awaiting PUBREL, the will.
 */
import type { Timer } from './clock.ts'
import { Deque } from './delivery/deque.ts'
import type { Message } from './message.ts'
import type { ClientInfo } from './plugin.ts'
import type { Packet, QoS } from './protocol/codec.ts'
import type { Subscription } from './topics/trie.ts'

/** A message on its way to one client, with the options of the subscription(s) it matched. */
export interface Delivery {
  message: Message
  qos: QoS
  retain: boolean
  subscriptionIds: number[] | undefined
  /** Position in a persistent session's stream (its key in the session store); 0 when not stored. */
  seq?: number
  /** Once sent at QoS 1/2 (in `Session.inflight`): the acknowledgement it waits for. */
  awaiting?: 'puback' | 'pubrec' | 'pubcomp'
}

/** The connection a session is attached to, as delivery drives it (Client is the one kind). */
export interface Attachment {
  readonly state: 'connecting' | 'connected' | 'closed'
  readonly clientId: string
  readonly info: ClientInfo
  /** When the socket was accepted, by the broker's clock (epoch ms): the CONNECT timeout counts from it, takeovers across nodes order by it. */
  readonly acceptedAt: number
  /** Keep alive in milliseconds; 0 = none (shown by the HTTP API). */
  readonly keepAliveMs: number
  /** Most unacknowledged QoS 1/2 messages the client takes (its Receive Maximum, capped by config). */
  readonly sendWindow: number
  readonly outbound: { readonly bufferedBytes: number }
  /** Writes one PUBLISH; false when it was not sent (expired, or too large for the client). */
  sendPublish(delivery: Delivery, packetId: number, dup: boolean): boolean
  send(packet: Packet): void
  /** Ends the connection from the broker's side (MQTT 5: DISCONNECT with the reason first). */
  disconnect(reasonCode: number, why: string): void
}

export interface Will {
  message: Message
  delaySeconds: number
  /** Message Expiry Interval of the will, counted from when it is published. */
  expirySeconds: number | undefined
}

/** 0xFFFFFFFF: the session does not expire (MQTT 5.0 section 3.1.2.11.2). */
export const NEVER_EXPIRES = 0xffffffff

/** What a session without subscriptions, messages in flight or queued ones reads (its own are made on first write). */
const NO_SUBSCRIPTIONS: ReadonlyMap<string, Subscription> = new Map()
const NO_INFLIGHT: ReadonlyMap<number, Delivery> = new Map()
const NO_QUEUE: { readonly length: number; peek(): Delivery | undefined } = { length: 0, peek: () => undefined }

export class Session {
  client: Attachment | null = null
  /** True while the broker holds this session for its client id: a route that kept it looks the id up again once not. */
  held = false
  /**
   * Subscriptions keyed by the filter as sent, `$share/...` included; messages sent at QoS 1/2 and not yet
   * acknowledged, by packet id [MQTT-2.2.1-4] (the client's ids are a space of their own, section 2.2.1); messages
   * waiting to be sent. Each is made on first need: an idle clean session holds none (memory per connection).
   */
  private subs: Map<string, Subscription> | null = null
  private sent: Map<number, Delivery> | null = null
  private waiting: Deque<Delivery> | null = null
  /** Inbound QoS 2 packet ids received and not yet released: a duplicate is not routed twice [MQTT-4.3.3-10]. */
  awaitingRelease: Set<number> | null = null
  queuedBytes = 0
  will: Will | undefined = undefined
  /** The will delay and the session expiry, while they run (see sessions.ts). */
  willTimer: Timer | undefined = undefined
  expiryTimer: Timer | undefined = undefined
  private lastPacketId = 0
  /** Last `seq` given to a stored delivery. */
  lastSeq = 0

  constructor(
    readonly clientId: string,
    /** Session Expiry Interval in seconds. */
    public expiryInterval: number,
  ) {}

  get subscriptions(): ReadonlyMap<string, Subscription> {
    return this.subs ?? NO_SUBSCRIPTIONS
  }

  setSubscription(key: string, sub: Subscription): void {
    ;(this.subs ??= new Map()).set(key, sub)
  }

  deleteSubscription(key: string): void {
    this.subs?.delete(key)
  }

  clearSubscriptions(): void {
    this.subs = null
  }

  /**
   * The broker let this session go (ended, or moved to another node): its messages go with it. A route that kept
   * the session (ClientMatch.session) may still point at it until that route is next used; this keeps what it pins small.
   */
  discardMessages(): void {
    this.sent = null
    this.waiting = null
    this.queuedBytes = 0
    this.awaitingRelease = null
  }

  get inflight(): ReadonlyMap<number, Delivery> {
    return this.sent ?? NO_INFLIGHT
  }

  setInflight(packetId: number, delivery: Delivery): void {
    ;(this.sent ??= new Map()).set(packetId, delivery)
  }

  deleteInflight(packetId: number): void {
    this.sent?.delete(packetId)
  }

  /** The queue, to read: its length and its oldest delivery. */
  get queue(): { readonly length: number; peek(): Delivery | undefined } {
    return this.waiting ?? NO_QUEUE
  }

  /** Queues a delivery past the bounds (a stored session's, or a retained set); counts its bytes. */
  pushQueued(delivery: Delivery): void {
    ;(this.waiting ??= new Deque()).push(delivery)
    this.queuedBytes += delivery.message.payload.length
  }

  /** A free outbound packet id, or 0 when all 65535 are in use. */
  nextPacketId(): number {
    for (let tries = 0; tries < 65535; tries++) {
      this.lastPacketId = this.lastPacketId === 65535 ? 1 : this.lastPacketId + 1
      if (!this.inflight.has(this.lastPacketId)) return this.lastPacketId
    }
    return 0
  }

  /** Queues a delivery unless that would pass the bounds; returns whether it was queued. */
  enqueue(delivery: Delivery, maxMessages: number, maxBytes: number): boolean {
    const size = delivery.message.payload.length
    if (this.queue.length >= maxMessages || this.queuedBytes + size > maxBytes) return false
    this.pushQueued(delivery)
    return true
  }

  dequeue(): Delivery | undefined {
    const delivery = this.waiting?.shift()
    if (delivery) this.queuedBytes -= delivery.message.payload.length
    return delivery
  }

  /** Whether this session outlives its connection (and so is written to a session store). */
  get persistent(): boolean {
    return this.expiryInterval > 0
  }
}
