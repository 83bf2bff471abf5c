/**
 * The broker: where connections arrive and the parts of the core meet. It accepts connections (admission, bans),
 * tracks them from CONNECT to close, keeps subscriptions, counts, sweeps, and closes. The parts, each in its own
 * file: sessions.ts (session life, wills, expiry), routing.ts (who gets a message), delivery/deliverer.ts (when
 * and how each session gets it), retainer.ts (retained messages) and publish.ts (the one way a message comes in).
 * It knows nothing of sockets beyond `transport/types.ts`: transports hand it connections through `accept`.
 */
import { randomBytes } from 'node:crypto'
import { Admission, REFUSED } from './admission.ts'
import { Bans } from './bans.ts'
import { ClientList } from './client-list.ts'
import { Client } from './client.ts'
import { type Clock, systemClock, type Timer } from './clock.ts'
import type { BrokerContext, BrokerStats } from './context.ts'
import { Deliverer } from './delivery/deliverer.ts'
import type { RouteCache } from './delivery/matches.ts'
import { type BrokerEvents, Events } from './events.ts'
import { dispatch } from './handlers/index.ts'
import type { CoreConfig, Limits } from './limits.ts'
import type { Logger } from './logger.ts'
import { type Message, publicMessage } from './message.ts'
import { PluginHost, type StoredSession } from './plugin.ts'
import type { QoS } from './protocol/codec.ts'
import { Reason } from './protocol/reason.ts'
import { Retainer } from './retainer.ts'
import { Router } from './routing.ts'
import type { Attachment, Session } from './session.ts'
import { Sessions } from './sessions.ts'
import { MemoryRetainedStore, type RetainedStore } from './topics/retained.ts'
import { type Subscription, SubscriptionTrie, subscriptionKey } from './topics/trie.ts'
import type { Acceptor, Connection, ConnectionHandler } from './transport/types.ts'
import type { RateConfig } from './rate.ts'

export type { BrokerStats } from './context.ts'

/** How often keep alive, CONNECT timeouts, blocked sockets and expired retained messages are checked. */
const SWEEP_INTERVAL_MS = 250

export class Broker implements Acceptor, BrokerContext {
  readonly stats: BrokerStats = { messagesReceived: 0, messagesSent: 0, receivedByQoS: [0, 0, 0], sentByQoS: [0, 0, 0], messagesDropped: 0, bytesReceived: 0, bytesSent: 0, rateLimited: 0, payloadRefused: 0 }
  readonly startedAt: number
  readonly limits: Limits
  readonly events: Events
  readonly clients = new ClientList<Client>()
  /** Hands each packet of a client to its handler (handlers/index.ts). */
  readonly dispatch = dispatch
  readonly subscriptions = new SubscriptionTrie()
  readonly sessions: Sessions
  /** When and how each session gets what is routed to it (windows, queues, the session store's record). */
  readonly deliverer: Deliverer
  readonly router: Router
  private readonly retainer: Retainer
  /** Client ids, usernames and addresses refused for a while (see bans.ts). */
  readonly bans: Bans
  private readonly admission: Admission
  closing = false
  /** This node's name in a cluster (null when not clustered). */
  nodeId: string | null = null
  private readonly sweepTimer: Timer

  constructor(
    readonly config: CoreConfig,
    readonly logger: Logger,
    readonly plugins: PluginHost = new PluginHost([]),
    /** The retained messages' in-memory index (the truth every lookup reads). */
    readonly retained: RetainedStore = new MemoryRetainedStore(),
    /** Keep alive, expiry, will delay, bans and the sweep read it (a test passes one it moves by hand). */
    readonly clock: Clock = systemClock,
  ) {
    this.startedAt = clock.now()
    this.limits = config.limits
    plugins.onError = (hook, error) => this.pluginError(hook, error)
    this.events = new Events(logger)
    this.admission = new Admission(config.limits)
    this.bans = new Bans(config.bans, logger)
    this.sessions = new Sessions(this)
    this.deliverer = new Deliverer(config.limits, plugins, this)
    this.router = new Router(this.subscriptions, this.sessions, this.deliverer, this.events)
    this.retainer = new Retainer(retained, plugins, config.limits, clock, this.deliverer, (clientId, message, reason) => this.dropped(clientId, message, reason))
    this.sweepTimer = clock.setInterval(() => this.sweep(), SWEEP_INTERVAL_MS)
  }

  on<E extends keyof BrokerEvents>(event: E, listener: BrokerEvents[E]): () => void {
    return this.events.on(event, listener)
  }

  /** A plugin decision hook threw or rejected: logged, and the decision is a deny (fail closed). */
  pluginError(hook: string, error: unknown): void {
    this.logger.error('plugin.error', { hook, error: error instanceof Error ? error.message : String(error) })
  }

  /** Loads what the stores kept (before listeners open): retained messages, then persistent sessions. */
  loadRetained(): Promise<number> {
    return this.retainer.load()
  }

  loadSessions(): Promise<number> {
    return this.sessions.load()
  }

  // Connections.

  accept(conn: Connection, rate?: RateConfig): ConnectionHandler {
    if (this.bans.checksAddresses && this.bans.find('address', conn.remoteAddress, this.clock.now())) {
      conn.end() // a banned address is not read at all (the ban was logged when made)
      return REFUSED
    }
    if (this.admission.enabled) {
      const now = this.clock.now()
      const refused = this.admission.admit(conn.remoteAddress, now)
      if (refused) {
        if (this.admission.shouldLog(conn.remoteAddress, now)) this.logger.warn('client.rejected', { address: conn.remoteAddress, reason: refused })
        conn.end()
        return REFUSED
      }
    }
    const client = new Client(this, conn)
    if (rate) client.listenerRate = rate
    if (this.bans.countsAddresses) void client.remoteAddress // read while the socket is open: it is counted when it goes
    this.clients.add(client)
    return client
  }

  /** Connections past CONNECT or still before it. */
  get connectionCount(): number {
    return this.clients.size
  }

  get everyTopicRead(): boolean {
    const listeners = this.events.listeners
    return this.plugins.authorizePublish.length > 0 || listeners.message.length > 0 || listeners.deliver.length > 0
  }

  /** Clients past CONNECT (for $SYS, stats and metrics). */
  get connectedCount(): number {
    let n = 0
    for (const client of this.clients) if (client.state === 'connected') n++
    return n
  }

  newClientId(): string {
    return `midge-${randomBytes(8).toString('hex')}`
  }

  hasSession(clientId: string): boolean {
    return this.sessions.has(clientId)
  }

  adoptSession(stored: StoredSession): Session {
    return this.sessions.adopt(stored)
  }

  openSession(client: Client, clientId: string, cleanStart: boolean, expiryInterval: number): { session: Session; present: boolean } {
    const opened = this.sessions.open(client, clientId, cleanStart, expiryInterval)
    client.session = opened.session
    return opened
  }

  setSessionExpiry(session: Session, expiryInterval: number): void {
    this.sessions.setExpiry(session, expiryInterval)
  }

  /** CONNACK has been sent: resend what the client had not acknowledged, then what was queued. */
  connected(client: Client, sessionPresent: boolean): void {
    this.deliverer.resend(client.session!, client)
    if (this.logger.isInfo) this.logger.info('client.connected', { ...client.infoFields, sessionPresent, keepAlive: client.keepAliveMs / 1000 })
    if (this.events.listeners.clientConnected.length > 0) this.events.emit('clientConnected', { ...client.infoFields, sessionPresent })
  }

  /** The connection is gone (any cause). Its session publishes or schedules the will and starts its expiry. */
  clientClosed(client: Client, wasConnected: boolean): void {
    if (this.clients.delete(client) && this.admission.enabled) this.admission.released(client.remoteAddress)
    const session = client.session
    client.session = null
    if (session && session.client === client) this.sessions.detach(session)
    if (!wasConnected) return
    if (!this.closing) this.bans.disconnected(client.clientId, client, this.clock.now())
    if (this.logger.isInfo) this.logger.info('client.disconnected', { ...client.infoFields, reason: client.closeReason })
    if (this.events.listeners.clientDisconnected.length > 0) this.events.emit('clientDisconnected', { ...client.infoFields, reason: client.closeReason })
  }

  // Subscriptions.

  /** Adds or replaces a subscription; returns whether one already existed on that filter. */
  subscribe(session: Session, sub: Subscription): boolean {
    const key = subscriptionKey(sub)
    const existed = session.subscriptions.has(key)
    this.subscriptions.add(sub)
    session.setSubscription(key, sub)
    if (session.persistent) this.plugins.sessionStore?.saveSubscription(session.clientId, key, sub)
    const client = session.client
    if (client && this.events.listeners.subscribe.length > 0) this.events.emit('subscribe', client.info, { filter: sub.filter, group: sub.group, qos: sub.qos })
    return existed
  }

  unsubscribe(session: Session, key: string): boolean {
    const sub = session.subscriptions.get(key)
    if (!sub) return false
    this.subscriptions.remove(sub)
    session.deleteSubscription(key)
    if (session.persistent) this.plugins.sessionStore?.deleteSubscription(session.clientId, key)
    const client = session.client
    if (client && this.events.listeners.unsubscribe.length > 0) this.events.emit('unsubscribe', client.info, { filter: sub.filter, group: sub.group })
    return true
  }

  sendRetained(session: Session, sub: Subscription): void {
    this.retainer.sendTo(session, sub)
  }

  // Messages (publish.ts brings each one in; these are its PublishTarget).

  route(message: Message, cache?: RouteCache): number {
    return this.router.route(message, cache)
  }

  retain(message: Message): void {
    this.retainer.retain(message)
  }

  mayRetain(origin: string, topic: string, max: number): boolean {
    return this.retainer.mayKeep(origin, topic, max)
  }

  // Delivery.

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

  /** Counts a PUBLISH written to a client; tells `deliver` listeners when there are any. */
  delivered(client: Attachment, message: Message, qos: QoS): void {
    this.stats.messagesSent++
    this.stats.sentByQoS[qos]++
    if (this.events.listeners.deliver.length > 0) this.events.emit('deliver', client.info, publicMessage(message))
  }

  dropped(clientId: string, message: Message, reason: string): void {
    this.stats.messagesDropped++
    if (this.logger.isDebug) this.logger.debug('message.dropped', { clientId, topic: message.topic, reason })
    if (this.events.listeners.drop.length > 0) this.events.emit('drop', clientId, publicMessage(message), reason)
  }

  // Housekeeping.

  /** Closes connections that never sent CONNECT, that missed their keep alive, or whose socket stays blocked. */
  private sweep(): void {
    const now = this.clock.now()
    this.admission.prune(now)
    this.bans.prune(now)
    this.retainer.purgeExpired(now)
    const { connectTimeoutMs, drainTimeoutMs } = this.limits
    for (const client of this.clients) {
      if (client.state === 'connecting') {
        if (now - client.acceptedAt > connectTimeoutMs) client.close('no CONNECT within the connect timeout')
      } else if (client.keepAliveMs > 0 && now - client.lastSeen > client.keepAliveMs * 1.5) {
        client.disconnect(Reason.KeepAliveTimeout, 'keep alive timeout') // [MQTT-3.1.2-22]
      } else if (client.outbound.blockedSince > 0 && now - client.outbound.blockedSince > drainTimeoutMs) {
        client.close(`slow consumer: socket blocked for over ${drainTimeoutMs} ms`)
      }
    }
  }

  /** Disconnects every client (MQTT 5: DISCONNECT 0x8B) and stops all timers. */
  close(): void {
    if (this.closing) return
    this.closing = true
    this.clock.clear(this.sweepTimer)
    for (const client of [...this.clients]) {
      if (client.state === 'connected') client.disconnect(Reason.ServerShuttingDown, 'server shutting down')
      else client.close('server shutting down')
    }
    this.sessions.stopTimers()
  }
}
