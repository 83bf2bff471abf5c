/**
 * One message's matches from the subscription trie, merged per client (a client with several matching
 * subscriptions gets the message once: highest QoS, every subscription identifier [MQTT-3.3.4-2, -3]),
 * and the share groups it reaches. The broker reuses one collector for every message it routes.
 */
import type { QoS } from '../protocol/codec.ts'
import type { MatchVisitor, ShareGroup, Subscription } from '../topics/trie.ts'

/** Up to this many clients, a repeat is found by scanning the list; past it, by a Map (built then). */
const SCAN_UP_TO = 8

/** A publisher's route cache keeps a topic's matches only up to this many clients (it holds one entry per client). */
const CACHE_UP_TO = 32

export class RouteMatches implements MatchVisitor {
  /** One entry per client, in the order first matched. */
  readonly clients: ClientMatch[] = []
  readonly groups: ShareGroup[] = []
  /** The clients by id, once there are more than SCAN_UP_TO (most messages reach a few and never need it). */
  private readonly byClient = new Map<string, ClientMatch>()
  /** Every entry made so far, in `clients` order: as many as the most clients one message has reached. */
  private readonly pool: ClientMatch[] = []
  private origin: string | undefined = undefined

  reset(origin: string | undefined): void {
    if (this.clients.length > SCAN_UP_TO) this.byClient.clear()
    this.clients.length = 0
    this.groups.length = 0
    this.origin = origin
  }

  subscription(sub: Subscription): void {
    if (sub.noLocal && sub.clientId === this.origin) return // [MQTT-3.8.3-3]
    const seen = this.find(sub.clientId)
    if (!seen) {
      const match = this.nextMatch(sub)
      this.clients.push(match)
      if (this.clients.length > SCAN_UP_TO) {
        if (this.clients.length === SCAN_UP_TO + 1) for (const m of this.clients) this.byClient.set(m.clientId, m)
        else this.byClient.set(sub.clientId, match)
      }
      return
    }
    if (sub.qos > seen.qos) seen.qos = sub.qos
    seen.retainAsPublished ||= sub.retainAsPublished
    if (sub.identifier) (seen.ids ??= []).push(sub.identifier)
  }

  /** Entries are reused from message to message (one object per client matched was the router's main garbage). */
  private nextMatch(sub: Subscription): ClientMatch {
    const ids = sub.identifier ? [sub.identifier] : undefined
    const match = this.pool[this.clients.length]
    if (!match) {
      const fresh = { clientId: sub.clientId, qos: sub.qos, retainAsPublished: sub.retainAsPublished, ids }
      this.pool.push(fresh)
      return fresh
    }
    match.clientId = sub.clientId
    match.qos = sub.qos
    match.retainAsPublished = sub.retainAsPublished
    match.ids = ids
    return match
  }

  private find(clientId: string): ClientMatch | undefined {
    const clients = this.clients
    if (clients.length > SCAN_UP_TO) return this.byClient.get(clientId)
    for (let i = 0; i < clients.length; i++) if (clients[i]!.clientId === clientId) return clients[i]
    return undefined
  }

  group(group: ShareGroup): void {
    this.groups.push(group)
  }
}

/**
 * One publisher's last route: the matches of the topic it last published to, as long as no subscription has
 * changed anywhere since (the trie's version). A publisher mostly sends to the same few topics, so most of its
 * messages skip the trie walk and the merge. Kept only while the topic reaches few clients: a large fan-out is
 * routed through the shared collector each time (its walk costs little next to its deliveries).
 */
export class RouteCache {
  /** Being delivered from: a route nested in that delivery (a listener publishing) must not refill it. */
  busy = false
  private topic: string | null = null
  private version = -1
  readonly clients: ClientMatch[] = []
  readonly groups: ShareGroup[] = []
  /** Entries kept for reuse, as in RouteMatches. */
  private readonly pool: ClientMatch[] = []

  holds(topic: string, version: number): boolean {
    return this.version === version && this.topic === topic
  }

  /** Keeps `matches` for `topic`, or forgets the last route when they reach too many clients to keep. */
  keep(topic: string, version: number, matches: RouteMatches): void {
    this.clients.length = 0
    this.groups.length = 0
    if (matches.clients.length > CACHE_UP_TO) {
      this.topic = null
      return
    }
    for (let i = 0; i < matches.clients.length; i++) {
      const from = matches.clients[i]!
      const entry = (this.pool[i] ??= { clientId: '', qos: 0, retainAsPublished: false, ids: undefined })
      entry.clientId = from.clientId
      entry.qos = from.qos
      entry.retainAsPublished = from.retainAsPublished
      entry.ids = from.ids
      this.clients.push(entry)
    }
    for (const group of matches.groups) this.groups.push(group)
    this.topic = topic
    this.version = version
  }
}

export interface ClientMatch {
  clientId: string
  qos: QoS
  retainAsPublished: boolean
  ids: number[] | undefined
}

/** The QoS a subscriber gets: the lower of the message's and the subscription's [MQTT-3.8.4-8]. */
export function minQoS(a: QoS, b: QoS): QoS {
  return a < b ? a : b
}
