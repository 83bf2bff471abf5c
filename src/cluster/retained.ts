/**
 * Retained messages cluster-wide: one KV key per topic, written by the node that took the message, loaded by a node
 * at start and watched after it. A node receives from NATS only the messages its subscriptions match, so the watch,
 * not routing, is how a retained message set on another node reaches this node's index. Every node applies the
 * bucket's changes in the bucket's order, so all converge on its last value; a node skips the echo of its own write
 * only when it has written that topic again since (else a quick second write would be undone for a moment).
 */
import { KvWatchInclude, type KV } from '@nats-io/kv'
import type { Logger } from '../logger.ts'
import { type Message, type PublicMessage, propertiesFromJson, propertiesToJson } from '../message.ts'
import { kvKey } from './wire.ts'

/** A retained message as the bucket holds it; `cleared` for a topic whose retained message was removed. */
interface Stored {
  topic: string
  qos: 0 | 1 | 2
  expiresAt: number
  properties?: Record<string, unknown>
  payload: string
  cleared?: boolean
  /** The writer, and its count of writes (to tell the echo of its own write from a newer one). */
  node?: string
  write?: number
}

export class RetainedKv {
  /** This node's writes, by topic: the count of its last one, until its echo comes back. */
  private readonly ownWrites = new Map<string, number>()
  private writes = 0
  /** Changes seen before the load finished: applied after it, in order. */
  private early: Message[] | null = []
  private stopWatch: (() => void) | null = null

  constructor(
    private readonly kv: KV,
    /** Tracks a write until it is in JetStream (the broker waits on it before acknowledging). */
    private readonly track: (write: Promise<unknown>) => void,
    private readonly node: string,
    /** Sets (or clears, with an empty payload) this node's retained message for a topic, as from another node. */
    private readonly apply: (message: Message) => void,
    private readonly logger: Logger,
  ) {}

  /** Starts watching the bucket (before the load, so that no change falls between the two). */
  async watch(): Promise<void> {
    const changes = await this.kv.watch({ include: KvWatchInclude.UpdatesOnly })
    this.stopWatch = () => changes.stop()
    void (async () => {
      try {
        for await (const entry of changes) {
          if (entry.operation !== 'PUT' || entry.value.length === 0) continue
          const message = this.change(entry.json<Stored>())
          if (!message) continue
          if (this.early) this.early.push(message)
          else this.apply(message)
        }
      } catch (error) {
        this.logger.error('cluster.retained_watch_failed', { error: (error as Error).message, effect: 'retained messages set on other nodes reach this node at its next start' })
      }
    })()
  }

  /** A change from the bucket as a message to apply here; null for the echo of a write this node has since redone. */
  private change(stored: Stored): Message | null {
    if (stored.node === this.node && stored.write !== undefined) {
      const last = this.ownWrites.get(stored.topic)
      if (last !== undefined && stored.write < last) return null
      if (last === stored.write) this.ownWrites.delete(stored.topic)
    }
    const payload = stored.cleared ? Buffer.alloc(0) : Buffer.from(stored.payload, 'base64')
    return { topic: stored.topic, payload, qos: stored.qos, retain: true, properties: propertiesFromJson(stored.properties), expiresAt: stored.expiresAt, origin: undefined, owned: true, remote: true }
  }

  async load(): Promise<PublicMessage[]> {
    const out: PublicMessage[] = []
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key)
      if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue
      const stored = entry.json<Stored>()
      if (stored.cleared) continue
      out.push({ topic: stored.topic, payload: Buffer.from(stored.payload, 'base64'), qos: stored.qos, retain: true, properties: propertiesFromJson(stored.properties), expiresAt: stored.expiresAt, origin: undefined })
    }
    // The broker sets what this returns into its index; changes seen meanwhile are newer, and go in after it.
    setTimeout(() => {
      const early = this.early ?? []
      this.early = null
      for (const message of early) this.apply(message)
    }, 0)
    return out
  }

  store(topic: string, message: Readonly<PublicMessage> | null): void {
    const write = ++this.writes
    this.ownWrites.set(topic, write)
    const stored: Stored = message
      ? { topic, qos: message.qos, expiresAt: message.expiresAt, properties: message.properties && propertiesToJson(message.properties), payload: message.payload.toString('base64'), node: this.node, write }
      : { topic, qos: 0, expiresAt: 0, payload: '', cleared: true, node: this.node, write }
    this.track(this.kv.put(kvKey(topic), JSON.stringify(stored)))
  }

  close(): void {
    this.stopWatch?.()
  }
}
