/**
 * The broker core: sessions, the subscription trie, retained messages and the routing of every message.
 * It knows nothing of sockets beyond `transport/types.ts`: transports hand it connections through `accept`.
 */
import { randomBytes } from 'node:crypto'
import { Admission, REFUSED } from './admission.ts'
import { Bans } from './bans.ts'
import { Client } from './client.ts'
import type { Limits, ResolvedConfig } from './config.ts'
import type { BrokerContext, BrokerStats } from './context.ts'
import { dispatch } from './handlers/index.ts'
import type { Logger } from './logger.ts'
import { type ClientInfo, PluginHost, type StoredSession } from './plugin.ts'
import { publish } from './publish.ts'
import { type Message, isExpired, own } from './message.ts'
import type { QoS } from './protocol/codec.ts'
import { Reason } from './protocol/reason.ts'
import { type Delivery, NEVER_EXPIRES, Session } from './session.ts'
import { MemoryRetainedStore, type RetainedStore } from './topics/retained.ts'
import { type ShareGroup, type Subscription, SubscriptionTrie, subscriptionKey } from './topics/trie.ts'
import type { Acceptor, Connection, ConnectionHandler } from './transport/types.ts'
import { Deliverer } from './delivery/deliverer.ts'
import { type ClientMatch, minQoS, RouteCache, RouteMatches } from './delivery/matches.ts'

/** Events an embedding program can listen to with `broker.on(...)`. Listeners run after routing. */
export interface BrokerEvents {
  clientConnected: (client: ClientInfo & { sessionPresent: boolean }) => void
  clientDisconnected: (client: ClientInfo & { reason: string }) => void
  /** Every message routed, from clients, wills and `publish()`. */
  message: (message: Readonly<Message>) => void
  subscribe: (clientId: string, filter: string, qos: QoS) => void
  unsubscribe: (clientId: string, filter: string) => void
  /** A message written to a client's connection. */
  deliver: (clientId: string, message: Readonly<Message>) => void
  /** A session ended (expired, or replaced by a clean start). */
  sessionEnded: (clientId: string) => void
  /** A message not delivered to a client (outbound buffer or offline queue full, too large, expired). */
  drop: (clientId: string, message: Readonly<Message>, reason: string) => void
}

type Listeners = { [E in keyof BrokerEvents]: BrokerEvents[E][] }

/** How often keep alive, CONNECT timeouts and blocked sockets are checked. */
const SWEEP_INTERVAL_MS = 250
/** What the reused QoS 0 Delivery points at between deliveries. */
const NO_MESSAGE: Message = { topic: '', payload: Buffer.alloc(0), qos: 0, retain: false, properties: undefined, expiresAt: 0, origin: undefined }

/** setTimeout cannot wait longer than this. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

export type { BrokerStats } from './context.ts'

export class Broker implements Acceptor, BrokerContext {
  readonly stats: BrokerStats = { messagesReceived: 0, messagesSent: 0, receivedByQoS: [0, 0, 0], sentByQoS: [0, 0, 0], messagesDropped: 0, bytesReceived: 0, bytesSent: 0 }
  readonly startedAt = Date.now()
  readonly limits: Limits
  readonly sessions = new Map<string, Session>()
  readonly clients = new Set<Client>()
  readonly subscriptions = new SubscriptionTrie()
  closing = false
  /** This node's name in a cluster (null when not clustered). */
  nodeId: string | null = null
  /** Set by the cluster: share groups are served through it, not by local routing alone. */
  sharedByFabric = false
  /** When and how each session gets what is routed to it (windows, queues, the session store's record). */
  readonly deliverer: Deliverer
  private readonly admission: Admission
  /** Client ids, usernames and addresses refused for a while (see bans.ts). */
  readonly bans: Bans
  private readonly matches = new RouteMatches()
  private routing = false
  /** The Delivery every QoS 0 delivery of a routed message reuses (null while in use: a nested route makes its own). */
  private qos0Delivery: Delivery | null = { message: NO_MESSAGE, qos: 0, retain: false, subscriptionIds: undefined }
  private readonly listeners: Listeners = { clientConnected: [], clientDisconnected: [], message: [], subscribe: [], unsubscribe: [], deliver: [], drop: [], sessionEnded: [] }
  private readonly sweepTimer: ReturnType<typeof setInterval>
  /**
   * Retained messages that expire, by topic, with when (epoch ms). One nobody subscribes to would otherwise stay
   * in memory and in the store for ever: the sweep clears them.
   */
  private readonly expiringRetained = new Map<string, number>()
  private nextRetainedPurge = 0

  constructor(
    readonly config: ResolvedConfig,
    readonly logger: Logger,
    readonly plugins: PluginHost = new PluginHost([]),
    readonly retained: RetainedStore = new MemoryRetainedStore(),
  ) {
    this.limits = config.limits
    plugins.onError = (hook, error) => this.pluginError(hook, error)
    this.admission = new Admission(config.limits)
    this.bans = new Bans(config.bans, logger)
    this.deliverer = new Deliverer(config.limits, plugins, this)
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS)
    this.sweepTimer.unref()
  }

  on<E extends keyof BrokerEvents>(event: E, listener: BrokerEvents[E]): () => void {
    const list = this.listeners[event] as BrokerEvents[E][]
    list.push(listener)
    return () => {
      const at = list.indexOf(listener)
      if (at !== -1) list.splice(at, 1)
    }
  }

  /** Calls the listeners; a throwing or rejecting listener is logged and the others still run. */
  private emit<E extends keyof BrokerEvents>(event: E, ...args: Parameters<BrokerEvents[E]>): void {
    for (const listener of this.listeners[event] as ((...a: Parameters<BrokerEvents[E]>) => unknown)[]) {
      try {
        const result = listener(...args)
        if (result instanceof Promise) result.catch((error: unknown) => this.logger.error('broker.listener_error', { event, error }))
      } catch (error) {
        this.logger.error('broker.listener_error', { event, error })
      }
    }
  }

  /** A plugin decision hook threw or rejected: logged, and the decision is a deny (fail closed). */
  pluginError(hook: string, error: unknown): void {
    this.logger.error('plugin.error', { hook, error: error instanceof Error ? error.message : String(error) })
  }

  /** Loads the retained messages the retained store plugin kept (before listeners open). */
  async loadRetained(): Promise<number> {
    const store = this.plugins.retainedStore
    if (!store) return 0
    const now = Date.now()
    let loaded = 0
    for (const message of await store.load()) {
      if (isExpired(message, now)) {
        store.set(message.topic, null)
        continue
      }
      this.retained.set(message.topic, { ...message, owned: true })
      if (message.expiresAt > 0) this.expiringRetained.set(message.topic, message.expiresAt)
      loaded++
    }
    return loaded
  }

  /** Restores the persistent sessions the session store kept: subscriptions, queued and in-flight messages. */
  async loadSessions(): Promise<number> {
    const store = this.plugins.sessionStore
    if (!store) return 0
    const now = Date.now()
    let loaded = 0
    for (const stored of await store.load()) {
      if (stored.expiresAt !== 0 && stored.expiresAt <= now) {
        store.deleteSession(stored.clientId)
        continue
      }
      const session = this.adoptSession(stored)
      // A session that was connected when the broker stopped starts its expiry now.
      const expiresAt = stored.expiresAt || (session.expiryInterval === NEVER_EXPIRES ? 0 : now + session.expiryInterval * 1000)
      this.scheduleExpiry(session, expiresAt)
      loaded++
    }
    return loaded
  }

  /** Makes a stored session (from a store at start-up, or from another node) a live session of this broker. */
  adoptSession(stored: StoredSession): Session {
    const session = new Session(stored.clientId, stored.expiryInterval)
    for (const sub of stored.subscriptions) {
      this.subscriptions.add(sub)
      session.subscriptions.set(subscriptionKey(sub), sub)
    }
    for (const d of stored.deliveries) {
      const awaiting = d.state === 'queued' ? undefined : d.state
      const delivery: Delivery = { message: { ...d.message, owned: true }, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds, seq: d.seq, awaiting }
      session.lastSeq = Math.max(session.lastSeq, d.seq)
      if (d.state === 'queued') {
        session.queue.push(delivery)
        session.queuedBytes += d.message.payload.length
      } else {
        session.inflight.set(d.packetId, delivery)
      }
    }
    for (const id of stored.awaitingRelease) session.awaitingRelease.add(id)
    this.sessions.set(session.clientId, session)
    return session
  }

  /** Drops a session that now lives on another node: no will, no store writes (that node has it). */
  forgetSession(clientId: string): void {
    const session = this.sessions.get(clientId)
    if (!session || session.client) return
    session.clearTimers()
    session.will = undefined
    for (const sub of session.subscriptions.values()) this.subscriptions.remove(sub)
    this.sessions.delete(clientId)
  }

  // Connections.

  accept(conn: Connection): ConnectionHandler {
    if (this.bans.checksAddresses && this.bans.find('address', conn.remoteAddress, Date.now())) {
      conn.end() // a banned address is not read at all (the ban was logged when made)
      return REFUSED
    }
    if (this.admission.enabled) {
      const now = Date.now()
      const refused = this.admission.admit(conn.remoteAddress, now)
      if (refused) {
        if (this.admission.shouldLog(conn.remoteAddress, now)) this.logger.warn('client.rejected', { address: conn.remoteAddress, reason: refused })
        conn.end()
        return REFUSED
      }
    }
    const client = new Client(this, conn, dispatch)
    if (this.bans.countsAddresses) void client.remoteAddress // read while the socket is open: it is counted when it goes
    this.clients.add(client)
    return client
  }

  hasSession(clientId: string): boolean {
    return this.sessions.has(clientId)
  }

  newClientId(): string {
    return `midge-${randomBytes(8).toString('hex')}`
  }

  /** Finds or creates the session for a connecting client, taking over a live connection with the same id. */
  openSession(client: Client, clientId: string, cleanStart: boolean, expiryInterval: number): { session: Session; present: boolean } {
    let session = this.sessions.get(clientId)
    const live = session?.client
    if (live) {
      // The session goes on with the new connection, opened before any will delay elapsed: the will is not
      // published (MQTT 5.0 section 3.1.2.5; Mosquitto does the same). A session that ends with the old
      // connection, or is replaced by a clean start, publishes it as the old connection closes [MQTT-3.1.4-3].
      if (!cleanStart && session!.persistent) session!.will = undefined
      live.disconnect(Reason.SessionTakenOver, 'session taken over') // [MQTT-3.1.4-3]
    }
    session = this.sessions.get(clientId)
    if (session) {
      session.clearTimers()
      session.will = undefined // a new connection before the will delay cancels the will [MQTT-3.1.3-9]
      if (cleanStart) {
        this.endSession(session) // [MQTT-3.1.2-4]
        session = undefined
      }
    }
    const present = session !== undefined
    session ??= new Session(clientId, expiryInterval)
    session.expiryInterval = expiryInterval
    session.client = client
    client.session = session
    this.sessions.set(clientId, session)
    this.storeSession(session, 0)
    return { session, present }
  }

  /** Writes a session's expiry to the session store (or removes it once it is no longer persistent). */
  private storeSession(session: Session, expiresAt: number): void {
    const store = this.plugins.sessionStore
    if (!store) return
    if (session.persistent) store.saveSession(session.clientId, session.expiryInterval, expiresAt)
    else store.deleteSession(session.clientId)
  }

  /** MQTT 5 DISCONNECT may change the session expiry interval. */
  setSessionExpiry(session: Session, expiryInterval: number): void {
    session.expiryInterval = Math.min(expiryInterval, this.config.limits.maxSessionExpirySeconds)
    this.storeSession(session, 0)
  }

  /** CONNACK has been sent: resend what the client had not acknowledged, then what was queued. */
  connected(client: Client, sessionPresent: boolean): void {
    this.deliverer.resend(client.session!, client)
    if (this.logger.isInfo) this.logger.info('client.connected', { ...client.info, sessionPresent, keepAlive: client.keepAliveMs / 1000 })
    if (this.listeners.clientConnected.length > 0) this.emit('clientConnected', { ...client.info, sessionPresent })
  }

  /** The connection is gone (any cause). Publishes or schedules the will and starts session expiry. */
  clientClosed(client: Client, wasConnected: boolean): void {
    if (this.clients.delete(client) && this.admission.enabled) this.admission.released(client.remoteAddress)
    const session = client.session
    client.session = null
    if (session && session.client === client) this.detach(session)
    if (!wasConnected) return
    if (!this.closing) this.bans.disconnected(client.clientId, client, Date.now())
    if (this.logger.isInfo) this.logger.info('client.disconnected', { ...client.info, reason: client.closeReason })
    if (this.listeners.clientDisconnected.length > 0) this.emit('clientDisconnected', { ...client.info, reason: client.closeReason })
  }

  private detach(session: Session): void {
    session.client = null
    const will = session.will
    if (will && !this.closing) {
      // [MQTT-3.1.2-8] published after the will delay, or when the session ends if that is sooner.
      if (will.delaySeconds === 0 || session.expiryInterval === 0) this.publishWill(session)
      else session.willTimer = longTimeout(() => this.publishWill(session), will.delaySeconds * 1000)
    }
    if (session.expiryInterval === 0) return this.endSession(session)
    this.scheduleExpiry(session, session.expiryInterval === NEVER_EXPIRES ? 0 : Date.now() + session.expiryInterval * 1000)
  }

  /** Ends the session at `expiresAt` (epoch ms; 0 = never) and records that in the session store. */
  private scheduleExpiry(session: Session, expiresAt: number): void {
    if (expiresAt !== 0) session.expiryTimer = longTimeout(() => this.endSession(session), Math.max(0, expiresAt - Date.now()))
    if (!this.closing) this.storeSession(session, expiresAt)
  }

  private publishWill(session: Session): void {
    const will = session.will
    // On the broker's own shutdown no will is sent: the clients did not fail, the server went away.
    if (!will || this.closing) return
    session.will = undefined
    clearTimeout(session.willTimer)
    const message: Message = { ...will.message, expiresAt: will.expirySeconds === undefined ? 0 : Date.now() + will.expirySeconds * 1000 }
    publish(this, message, null) // checked when the will arrived in CONNECT
  }

  /** Ends a session: its will (if still pending) is published and its subscriptions removed. */
  endSession(session: Session): void {
    if (this.sessions.get(session.clientId) !== session) return
    session.clearTimers()
    this.publishWill(session)
    for (const sub of session.subscriptions.values()) this.subscriptions.remove(sub)
    session.subscriptions.clear()
    this.sessions.delete(session.clientId)
    this.plugins.sessionStore?.deleteSession(session.clientId)
    if (this.listeners.sessionEnded.length > 0) this.emit('sessionEnded', session.clientId)
  }

  // Subscriptions.

  /** Connections past CONNECT or still before it. */
  get connectionCount(): number {
    return this.clients.size
  }

  /** Clients past CONNECT (for $SYS, stats and metrics). */
  get connectedCount(): number {
    let n = 0
    for (const client of this.clients) if (client.state === 'connected') n++
    return n
  }

  /** Adds or replaces a subscription; returns whether one already existed on that filter. */
  subscribe(session: Session, sub: Subscription): boolean {
    const key = subscriptionKey(sub)
    const existed = session.subscriptions.has(key)
    this.subscriptions.add(sub)
    session.subscriptions.set(key, sub)
    if (session.persistent) this.plugins.sessionStore?.saveSubscription(session.clientId, key, sub)
    this.emit('subscribe', session.clientId, key, sub.qos)
    return existed
  }

  unsubscribe(session: Session, key: string): boolean {
    const sub = session.subscriptions.get(key)
    if (!sub) return false
    this.subscriptions.remove(sub)
    session.subscriptions.delete(key)
    if (session.persistent) this.plugins.sessionStore?.deleteSubscription(session.clientId, key)
    this.emit('unsubscribe', session.clientId, key)
    return true
  }

  /** Sends the retained messages matching a new subscription, each with RETAIN set [MQTT-3.3.1-8]. */
  sendRetained(session: Session, sub: Subscription): void {
    const now = Date.now()
    const subscriptionIds = sub.identifier ? [sub.identifier] : undefined
    // Queued rather than written at once, so a large retained set is paced by the socket, not dropped; but the
    // queue may hold no more than one retained set beyond its bound, however often a client subscribes again.
    const cap = this.config.limits.maxQueuedMessages + this.retained.size
    for (const message of this.retained.match(sub.filter)) {
      if (isExpired(message, now)) {
        this.clearRetained(message.topic)
        continue
      }
      if (session.queue.length >= cap) {
        this.dropped(session.clientId, message, 'session queue full (retained)')
        continue
      }
      session.queue.push({ message, qos: minQoS(message.qos, sub.qos), retain: true, subscriptionIds })
      session.queuedBytes += message.payload.length
    }
    this.deliverer.pump(session)
  }

  // Routing.

  /** Stores or clears (empty payload [MQTT-3.3.1-6, -7]) the retained message for the topic. */
  retain(message: Message): void {
    const kept = message.payload.length === 0 ? null : own({ ...message, retain: true, encoded: undefined, encodedMore: undefined, remote: undefined })
    this.retained.set(message.topic, kept)
    if (kept && kept.expiresAt > 0) this.expiringRetained.set(message.topic, kept.expiresAt)
    else if (this.expiringRetained.size > 0) this.expiringRetained.delete(message.topic)
    // Write-behind mirror (memory stays the truth); $SYS is the broker's own and is not kept across restarts.
    // A message from another node was stored by that node already.
    if (!message.topic.startsWith('$SYS/') && !message.remote) this.plugins.retainedStore?.set(message.topic, kept)
  }

  /**
   * Delivers a message to every matching subscription; returns how many sessions it reached. A publishing
   * client passes its RouteCache: a message to the topic it last routed, with no subscription changed since,
   * is delivered to the same matches without walking the trie again.
   */
  route(message: Message, cache?: RouteCache): number {
    const version = this.subscriptions.version
    if (cache && !cache.busy && cache.holds(message.topic, version)) {
      cache.busy = true
      try {
        return this.deliverMatches(message, cache)
      } finally {
        cache.busy = false
      }
    }
    // One collector reused for every message (a new one only if a listener publishes while we route).
    const matches = this.routing ? new RouteMatches() : this.matches
    this.routing = true
    matches.reset(message.origin)
    try {
      this.subscriptions.match(message.topic, matches)
      if (cache && !cache.busy) cache.keep(message.topic, version, matches)
      return this.deliverMatches(message, matches)
    } finally {
      if (matches === this.matches) this.routing = false
    }
  }

  private deliverMatches(message: Message, matches: { readonly clients: readonly ClientMatch[]; readonly groups: readonly ShareGroup[] }): number {
    let reached = 0
    for (const match of matches.clients) {
      const session = this.sessions.get(match.clientId)
      if (!session) continue
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
    if (!this.sharedByFabric) for (const group of matches.groups) if (this.deliverToGroup(message, group)) reached++
    if (this.listeners.message.length > 0) this.emit('message', message)
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

  /** A message the cluster chose this node for, for one share group: delivered to one of its members here. */
  deliverShared(message: Message, group: string, filter: string): boolean {
    const shareGroup = this.subscriptions.group(filter, group)
    return shareGroup !== undefined && this.deliverToGroup(message, shareGroup)
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

  /** Counts a PUBLISH written to a client; tells `deliver` listeners when there are any. */
  delivered(clientId: string, message: Message, qos: QoS): void {
    this.stats.messagesSent++
    this.stats.sentByQoS[qos]++
    if (this.listeners.deliver.length > 0) this.emit('deliver', clientId, message)
  }

  dropped(clientId: string, message: Message, reason: string): void {
    this.stats.messagesDropped++
    if (this.logger.isDebug) this.logger.debug('message.dropped', { clientId, topic: message.topic, reason })
    if (this.listeners.drop.length > 0) this.emit('drop', clientId, message, reason)
  }

  pump(session: Session): void {
    this.deliverer.pump(session)
  }

  acknowledged(session: Session, packetId: number): void {
    this.deliverer.forget(session, packetId)
    this.deliverer.pump(session)
  }

  received(session: Session, packetId: number): void {
    this.deliverer.received(session, packetId)
  }

  inboundQoS2(session: Session, packetId: number, open: boolean): boolean {
    return this.deliverer.inboundQoS2(session, packetId, open)
  }

  // Housekeeping.

  /** Closes connections that never sent CONNECT, that missed their keep alive, or whose socket stays blocked. */
  private sweep(): void {
    const now = Date.now()
    this.admission.prune(now)
    this.bans.prune(now)
    if (this.expiringRetained.size > 0 && now >= this.nextRetainedPurge) this.purgeExpiredRetained(now)
    const { connectTimeoutMs, drainTimeoutMs } = this.config.limits
    for (const client of this.clients) {
      if (client.state === 'connecting') {
        if (now - client.connectedAt > connectTimeoutMs) client.close('no CONNECT within the connect timeout')
      } else if (client.keepAliveMs > 0 && now - client.lastSeen > client.keepAliveMs * 1.5) {
        client.disconnect(Reason.KeepAliveTimeout, 'keep alive timeout') // [MQTT-3.1.2-22]
      } else if (client.outbound.blockedSince > 0 && now - client.outbound.blockedSince > drainTimeoutMs) {
        client.close(`slow consumer: socket blocked for over ${drainTimeoutMs} ms`)
      }
    }
  }

  /** Clears the retained messages whose expiry has passed, from memory and the retained store (at most once a second). */
  private purgeExpiredRetained(now: number): void {
    this.nextRetainedPurge = now + 1000
    for (const [topic, expiresAt] of this.expiringRetained) {
      if (expiresAt > now) continue
      this.expiringRetained.delete(topic)
      if (this.retained.get(topic)?.expiresAt === expiresAt) this.clearRetained(topic) // else replaced since
    }
  }

  /** An expired retained message leaves memory and the retained store. */
  private clearRetained(topic: string): void {
    this.retained.set(topic, null)
    this.expiringRetained.delete(topic)
    if (!topic.startsWith('$SYS/')) this.plugins.retainedStore?.set(topic, null)
  }

  /** Disconnects every client (MQTT 5: DISCONNECT 0x8B) and stops all timers. */
  close(): void {
    if (this.closing) return
    this.closing = true
    clearInterval(this.sweepTimer)
    for (const client of [...this.clients]) {
      if (client.state === 'connected') client.disconnect(Reason.ServerShuttingDown, 'server shutting down')
      else client.close('server shutting down')
    }
    for (const session of this.sessions.values()) session.clearTimers()
  }
}

/**
 * An unref'd timer. setTimeout cannot wait past ~24.8 days; a longer expiry (up to 136 years in MQTT 5)
 * is treated as "not within this process's life": the session stays, as it would for NEVER_EXPIRES.
 */
function longTimeout(fn: () => void, ms: number): ReturnType<typeof setTimeout> {
  // Every delay comes from a client's numbers (will delay, session expiry), checked on the way in; a value that
  // still is not a finite number of milliseconds would make the runtime warn and fire at once, so it is 0 here.
  const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
  const timer = setTimeout(delay > MAX_TIMEOUT_MS ? () => {} : fn, Math.min(delay, MAX_TIMEOUT_MS))
  timer.unref()
  return timer
}
