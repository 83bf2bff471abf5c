/**
 * Keeps the retained messages: the in-memory index (the truth every lookup reads), its write-behind mirror in the
 * retained store plugin, and their expiry. Sends a new subscription the retained messages it matches.
 */
import type { Clock } from './clock.ts'
import type { Limits } from './limits.ts'
import type { Deliverer } from './delivery/deliverer.ts'
import { minQoS } from './delivery/matches.ts'
import { type Message, isExpired, own, publicFields } from './message.ts'
import type { PluginHost } from './plugin.ts'
import type { Session } from './session.ts'
import type { RetainedStore } from './topics/retained.ts'
import type { Subscription } from './topics/trie.ts'

export class Retainer {
  /**
   * Retained messages that expire, by topic, with when (epoch ms). One nobody subscribes to would otherwise stay
   * in memory and in the store for ever: purgeExpired() clears them.
   */
  private readonly expiring = new Map<string, number>()
  private nextPurge = 0
  /** Retained messages held per client that published them (for `limits.maxRetainedPerClient`). */
  private readonly perClient = new Map<string, number>()

  constructor(
    readonly index: RetainedStore,
    private readonly plugins: PluginHost,
    private readonly limits: Limits,
    private readonly clock: Clock,
    private readonly deliverer: Deliverer,
    private readonly dropped: (clientId: string, message: Message, reason: string) => void,
  ) {}

  /** Loads the retained messages the retained store plugin kept (before listeners open). */
  async load(): Promise<number> {
    const store = this.plugins.retainedStore
    if (!store) return 0
    const now = this.clock.now()
    let loaded = 0
    for (const message of await store.load()) {
      if (isExpired(message, now)) {
        store.set(message.topic, null)
        continue
      }
      this.index.set(message.topic, { ...message, owned: true })
      if (message.expiresAt > 0) this.expiring.set(message.topic, message.expiresAt)
      this.count(message.origin, 1)
      loaded++
    }
    return loaded
  }

  /** Stores or clears (empty payload [MQTT-3.3.1-6, -7]) the retained message for the topic. */
  retain(message: Message): void {
    const kept = message.payload.length === 0 ? null : own({ ...publicFields(message), retain: true, owned: message.owned })
    if (this.perClient.size > 0 || kept?.origin !== undefined) {
      this.count(this.index.get(message.topic)?.origin, -1)
      this.count(kept?.origin, 1)
    }
    this.index.set(message.topic, kept)
    if (kept && kept.expiresAt > 0) this.expiring.set(message.topic, kept.expiresAt)
    else if (this.expiring.size > 0) this.expiring.delete(message.topic)
    // Write-behind mirror (memory stays the truth); $SYS is the broker's own and is not kept across restarts.
    // A message from another node was stored by that node already.
    if (!message.topic.startsWith('$SYS/') && !message.remote) this.plugins.retainedStore?.set(message.topic, kept)
  }

  /** Sends the retained messages matching a new subscription, each with RETAIN set (MQTT 5.0 section 3.3.1.3; 3.1.1 [MQTT-3.3.1-8]). */
  sendTo(session: Session, sub: Subscription): void {
    const now = this.clock.now()
    const subscriptionIds = sub.identifier ? [sub.identifier] : undefined
    // Queued rather than written at once, so a large retained set is paced by the socket, not dropped; but the
    // queue may hold no more than one retained set beyond its bound, however often a client subscribes again.
    const cap = this.limits.maxQueuedMessages + this.index.size
    for (const message of this.index.match(sub.filter)) {
      if (isExpired(message, now)) {
        this.clear(message.topic)
        continue
      }
      if (session.queue.length >= cap) {
        this.dropped(session.clientId, message, 'session queue full (retained)')
        continue
      }
      session.pushQueued({ message, qos: minQoS(message.qos, sub.qos), retain: true, subscriptionIds })
    }
    this.deliverer.pump(session)
  }

  /** Clears the retained messages whose expiry has passed, from memory and the retained store (at most once a second). */
  purgeExpired(now: number): void {
    if (this.expiring.size === 0 || now < this.nextPurge) return
    this.nextPurge = now + 1000
    for (const [topic, expiresAt] of this.expiring) {
      if (expiresAt > now) continue
      this.expiring.delete(topic)
      if (this.index.get(topic)?.expiresAt === expiresAt) this.clear(topic) // else replaced since
    }
  }

  /**
   * Whether `origin` may keep one more retained message at `topic` under a quota of `max` (0: none): replacing one
   * of its own, or clearing, always may.
   */
  mayKeep(origin: string, topic: string, max: number): boolean {
    if (max === 0 || (this.perClient.get(origin) ?? 0) < max) return true
    return this.index.get(topic)?.origin === origin
  }

  private count(origin: string | undefined, by: 1 | -1): void {
    if (origin === undefined) return
    const n = (this.perClient.get(origin) ?? 0) + by
    if (n > 0) this.perClient.set(origin, n)
    else this.perClient.delete(origin)
  }

  /** An expired retained message leaves memory and the retained store. */
  private clear(topic: string): void {
    this.count(this.index.get(topic)?.origin, -1)
    this.index.set(topic, null)
    this.expiring.delete(topic)
    if (!topic.startsWith('$SYS/')) this.plugins.retainedStore?.set(topic, null)
  }
}
