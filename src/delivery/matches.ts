/**
 * One message's matches from the subscription trie, merged per client (a client with several matching
 * subscriptions gets the message once: highest QoS, every subscription identifier [MQTT-3.3.4-2, -3]),
 * and the share groups it reaches. The broker reuses one collector for every message it routes.
 */
import type { QoS } from '../protocol/codec.ts'
import type { Session } from '../session.ts'
import { type MatchVisitor, sameLevelsInBytes, sameLevelsUpTo, type ShareGroup, type Subscription } from '../topics/trie.ts'
import { type Message, LazyTopicMessage } from '../message.ts'

/** Up to this many clients, a repeat is found by scanning the list; past it, by a Map (built then). */
const SCAN_UP_TO = 8

/** A publisher's route cache keeps a topic's matches only up to this many clients (it holds one entry per client). */
const CACHE_UP_TO = 32

/**
 * A route's matches as the router reads them: the first `clientCount` entries of `clients` and the first `groupCount`
 * of `groups`. The lists are kept and overwritten from route to route rather than truncated: setting an array's
 * length to 0 cost more than the rest of a route that missed the cache.
 */
export interface Matches {
  readonly clients: readonly ClientMatch[]
  readonly clientCount: number
  readonly groups: readonly ShareGroup[]
  readonly groupCount: number
}

export class RouteMatches implements MatchVisitor, Matches {
  /** One entry per client, in the order first matched; entries past `clientCount` are kept for reuse. */
  readonly clients: ClientMatch[] = []
  clientCount = 0
  readonly groups: ShareGroup[] = []
  groupCount = 0
  /** The clients by id, once there are more than SCAN_UP_TO (most messages reach a few and never need it). */
  private readonly byClient = new Map<string, ClientMatch>()
  private origin: string | undefined = undefined
  /** A No Local subscription matched: these matches depend on who published, and are not shared between publishers. */
  noLocalSeen = false

  reset(origin: string | undefined): void {
    this.noLocalSeen = false
    if (this.clientCount > SCAN_UP_TO) this.byClient.clear()
    this.clientCount = 0
    // A group is a live part of the trie: drop the references rather than pin one that is removed meanwhile.
    for (let i = 0; i < this.groupCount; i++) this.groups[i] = undefined!
    this.groupCount = 0
    this.origin = origin
  }

  subscription(sub: Subscription): void {
    if (sub.noLocal) {
      this.noLocalSeen = true
      if (sub.clientId === this.origin) return // [MQTT-3.8.3-3]
    }
    const seen = this.find(sub.clientId)
    if (!seen) {
      const match = this.nextMatch(sub)
      this.clientCount++
      if (this.clientCount > SCAN_UP_TO) {
        if (this.clientCount === SCAN_UP_TO + 1) for (let i = 0; i < this.clientCount; i++) this.byClient.set(this.clients[i]!.clientId, this.clients[i]!)
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
    const match = this.clients[this.clientCount]
    if (!match) {
      const fresh = { clientId: sub.clientId, qos: sub.qos, retainAsPublished: sub.retainAsPublished, ids, session: undefined }
      this.clients.push(fresh)
      return fresh
    }
    // The same client in the same place as last time (one subscriber of many topics) keeps the session found then.
    if (match.clientId !== sub.clientId) match.session = undefined
    match.clientId = sub.clientId
    match.qos = sub.qos
    match.retainAsPublished = sub.retainAsPublished
    match.ids = ids
    return match
  }

  private find(clientId: string): ClientMatch | undefined {
    const clients = this.clients
    if (this.clientCount > SCAN_UP_TO) return this.byClient.get(clientId)
    for (let i = 0; i < this.clientCount; i++) if (clients[i]!.clientId === clientId) return clients[i]
    return undefined
  }

  group(group: ShareGroup): void {
    this.groups[this.groupCount++] = group
  }
}

/**
 * One publisher's last route: the matches of the topic it last published to, as long as no subscription has
 * changed anywhere since (the trie's version). A publisher mostly sends to the same few topics, so most of its
 * messages skip the trie walk and the merge. Kept only while the topic reaches few clients: a large fan-out is
 * routed through the shared collector each time (its walk costs little next to its deliveries).
 *
 * The route holds for every topic the trie cannot tell apart from the one routed: the same levels up to where the
 * walk decided (SubscriptionTrie.match). A device publishing over many topics under a prefix that subscribers
 * take whole (`fleet/#`) is routed by one entry.
 */
export class RouteCache implements Matches {
  /** Being delivered from: a route nested in that delivery (a listener publishing) must not refill it. */
  busy = false
  /** The topic routed; null when nothing is kept. */
  private topic: string | null = null
  /** Where in `topic` the route was decided (SubscriptionTrie.match): a topic with the same levels up to here holds; -1, only `topic`. */
  private decidedAt = -1
  private version = -1
  /** Copies of the matches (entries past `clientCount` kept for reuse). */
  readonly clients: ClientMatch[] = []
  clientCount = 0
  readonly groups: ShareGroup[] = []
  groupCount = 0

  holds(topic: string, version: number): boolean {
    if (this.version !== version) return false
    const kept = this.topic
    if (kept === topic) return true
    return this.decidedAt >= 0 && sameLevelsUpTo(kept!, this.decidedAt, topic)
  }

  /** holds() for a message's topic, compared in its bytes while it has no string yet (LazyTopicMessage). */
  holdsTopicOf(message: Message, version: number): boolean {
    if (!(message instanceof LazyTopicMessage) || message.topicBytes === null) return this.holds(message.topic, version)
    return this.version === version && this.topic !== null && sameLevelsInBytes(this.topic, this.decidedAt, message.topicBytes, message.topicAt, message.topicLength)
  }

  /**
   * Keeps `matches` for `topic`, or forgets the last route when they reach too many clients to keep. `decidedAt`
   * is what the trie's match returned: where in the topic the matches were decided, -1 for the whole topic.
   */
  keep(topic: string, version: number, matches: Matches, decidedAt = -1): void {
    if (matches.clientCount > CACHE_UP_TO) {
      this.topic = null
      this.decidedAt = -1
      return
    }
    for (let i = 0; i < matches.clientCount; i++) {
      const from = matches.clients[i]!
      const entry = (this.clients[i] ??= { clientId: '', qos: 0, retainAsPublished: false, ids: undefined, session: undefined })
      entry.clientId = from.clientId
      entry.qos = from.qos
      entry.retainAsPublished = from.retainAsPublished
      entry.ids = from.ids
      entry.session = from.session
    }
    this.clientCount = matches.clientCount
    for (let i = 0; i < matches.groupCount; i++) this.groups[i] = matches.groups[i]!
    for (let i = matches.groupCount; i < this.groupCount; i++) this.groups[i] = undefined!
    this.groupCount = matches.groupCount
    this.topic = topic
    this.decidedAt = decidedAt
    this.version = version
  }
}

export interface ClientMatch {
  clientId: string
  qos: QoS
  retainAsPublished: boolean
  ids: number[] | undefined
  /**
   * The client's session as last found (undefined until then): kept with the route, so that a message on a kept
   * route reaches its sessions without a lookup by client id. The router checks `held` before it uses one.
   */
  session: Session | undefined
}

/** The QoS a subscriber gets: the lower of the message's and the subscription's [MQTT-3.8.4-8]. */
export function minQoS(a: QoS, b: QoS): QoS {
  return a < b ? a : b
}
