/**
 * Routing: who gets a message. Walks the subscription trie for the topic (or reuses a publisher's cached matches),
 * picks one member of each share group, and hands each session its delivery; the deliverer decides when and how
 * each one is written.
 */
import type { Deliverer } from './delivery/deliverer.ts'
import { type Matches, minQoS, RouteCache, RouteMatches } from './delivery/matches.ts'
import type { Events } from './events.ts'
import { type Message, publicMessage } from './message.ts'
import type { Delivery } from './session.ts'
import type { Sessions } from './sessions.ts'
import type { ShareGroup, Subscription, SubscriptionTrie } from './topics/trie.ts'

/** Topics whose routes are kept for every publisher, while no subscription changes (bounds the memory it takes). */
const SHARED_ROUTES = 1024
/** Lookups per sample of the shared routes' hit rate, and the mask of routes not looked up while it is low (2^n - 1). */
const SHARED_SAMPLE = 1024
const SHARED_ASIDE = 31

/** What the reused QoS 0 Delivery points at between deliveries. */
const NO_MESSAGE: Message = { topic: '', payload: Buffer.alloc(0), qos: 0, retain: false, properties: undefined, expiresAt: 0, origin: undefined }

export class Router {
  /** Set by the cluster: share groups are served through it (deliverShared), not by local routing alone. */
  sharedByFabric = false
  private readonly matches = new RouteMatches()
  private routing = false
  /**
   * Routes of recent topics for every publisher, valid for `sharedVersion` of the subscriptions: a topic routed
   * once is not walked again by the next publisher to it (devices publishing over many topics miss their own
   * one-topic cache). Filled up to SHARED_ROUTES topics, emptied when a subscription changes.
   */
  private readonly shared = new Map<string, RouteCache>()
  private sharedVersion = -1
  /**
   * Where topics do not repeat (a fleet of devices over more topics than it keeps), a lookup only costs: while fewer
   * than half of a sample of lookups hit, only one route in SHARED_ASIDE + 1 is looked up (as strings.ts does).
   */
  private sharedAside = 0
  private sharedTick = 0
  private sharedLookups = 0
  private sharedHits = 0
  /** The Delivery every QoS 0 delivery of a routed message reuses (null while in use: a nested route makes its own). */
  private qos0Delivery: Delivery | null = { message: NO_MESSAGE, qos: 0, retain: false, subscriptionIds: undefined }

  constructor(
    private readonly subscriptions: SubscriptionTrie,
    private readonly sessions: Sessions,
    private readonly deliverer: Deliverer,
    private readonly events: Events,
  ) {}

  /**
   * Delivers a message to every matching subscription; returns how many sessions it reached. A publishing
   * client passes its RouteCache: a message to the topic it last routed, with no subscription changed since,
   * is delivered to the same matches without walking the trie again.
   */
  route(message: Message, cache?: RouteCache): number {
    const version = this.subscriptions.version
    if (cache && !cache.busy && cache.holdsTopicOf(message, version)) return this.deliverKept(message, cache)
    const sharing = (++this.sharedTick & this.sharedAside) === 0
    const known = sharing ? this.sharedRoute(message.topic, version) : undefined
    if (known && !known.busy) return this.deliverKept(message, known)
    // One collector reused for every message (a new one only if a listener publishes while we route).
    const matches = this.routing ? new RouteMatches() : this.matches
    this.routing = true
    matches.reset(message.origin)
    try {
      const decidedAt = this.subscriptions.match(message.topic, matches)
      if (cache && !cache.busy) cache.keep(message.topic, version, matches, decidedAt)
      if (sharing && !matches.noLocalSeen) this.share(message.topic, version, matches)
      return this.deliverMatches(message, matches)
    } finally {
      if (matches === this.matches) this.routing = false
    }
  }

  /** Delivers along a kept route, marked busy meanwhile: a route nested in this delivery (a listener publishing) must not refill it. */
  private deliverKept(message: Message, route: RouteCache): number {
    route.busy = true
    try {
      return this.deliverMatches(message, route)
    } finally {
      route.busy = false
    }
  }

  /** The route kept for `topic` for every publisher, if any is valid at this version of the subscriptions. */
  private sharedRoute(topic: string, version: number): RouteCache | undefined {
    if (this.sharedVersion !== version) {
      if (this.shared.size > 0) this.shared.clear()
      this.sharedVersion = version
      return undefined
    }
    let known = this.shared.get(topic)
    // An entry for a topic that reaches too many clients to keep holds nothing (see RouteCache.keep).
    if (known && !known.holds(topic, version)) known = undefined
    if (known) this.sharedHits++
    if (++this.sharedLookups === SHARED_SAMPLE) {
      this.sharedAside = this.sharedHits * 2 < SHARED_SAMPLE ? SHARED_ASIDE : 0
      this.sharedLookups = 0
      this.sharedHits = 0
    }
    return known
  }

  /** Keeps a route for every publisher (not one that depends on who published: No Local). */
  private share(topic: string, version: number, matches: RouteMatches): void {
    let entry = this.shared.get(topic)
    if (!entry) {
      if (this.shared.size >= SHARED_ROUTES) return
      entry = new RouteCache()
      this.shared.set(topic, entry)
    }
    if (!entry.busy) entry.keep(topic, version, matches)
  }

  /** A message the cluster chose this node for, for one share group: delivered to one of its members here. */
  deliverShared(message: Message, group: string, filter: string): boolean {
    const shareGroup = this.subscriptions.group(filter, group)
    return shareGroup !== undefined && this.deliverToGroup(message, shareGroup)
  }

  private deliverMatches(message: Message, matches: Matches): number {
    let reached = 0
    for (let i = 0; i < matches.clientCount; i++) {
      const match = matches.clients[i]!
      let session = match.session
      if (session === undefined || !session.held) {
        session = this.sessions.get(match.clientId)
        if (!session) continue
        match.session = session
      }
      reached++
      const qos = minQoS(message.qos, match.qos) // [MQTT-3.8.4-8]
      const retain = match.retainAsPublished && message.retain // [MQTT-3.3.1-12, -13]
      const reuse = qos === 0 ? this.qos0Delivery : null
      if (reuse) {
        // A QoS 0 delivery is written at once or dropped, never kept: one object serves them all. It is taken
        // while in use, so a route nested in this delivery (a listener publishing) makes its own.
        this.qos0Delivery = null
        reuse.message = message
        reuse.retain = retain
        reuse.subscriptionIds = match.ids
        this.deliverer.deliver(session, reuse)
        reuse.message = NO_MESSAGE // pins no payload meanwhile
        this.qos0Delivery = reuse
      } else {
        this.deliverer.deliver(session, { message, qos, retain, subscriptionIds: match.ids })
      }
    }
    // In a cluster, shared groups span nodes: the fabric picks the node, then deliverShared() the member.
    if (!this.sharedByFabric) for (let i = 0; i < matches.groupCount; i++) if (this.deliverToGroup(message, matches.groups[i]!)) reached++
    if (this.events.listeners.message.length > 0) this.events.emit('message', publicMessage(message))
    return reached
  }

  /** Delivers to one member of a share group; false when it has none. */
  private deliverToGroup(message: Message, group: ShareGroup): boolean {
    const sub = this.pickMember(group)
    const session = sub && this.sessions.get(sub.clientId)
    if (!sub || !session) return false
    this.deliverer.deliver(session, {
      message,
      qos: minQoS(message.qos, sub.qos),
      retain: sub.retainAsPublished && message.retain,
      subscriptionIds: sub.identifier ? [sub.identifier] : undefined,
    })
    return true
  }

  /** Round-robin over the group's connected members; an offline persistent member is chosen only when none is connected. */
  private pickMember(group: ShareGroup): Subscription | undefined {
    const n = group.members.length
    for (let i = 0; i < n; i++) {
      const at = (group.next + i) % n
      const sub = group.members[at]!
      if (this.sessions.get(sub.clientId)?.client) {
        group.next = (at + 1) % n
        return sub
      }
    }
    const sub = group.members[group.next % n]
    group.next = (group.next + 1) % n
    return sub
  }
}
