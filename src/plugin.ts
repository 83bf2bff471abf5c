/**
 * Plugins: plain typed objects with optional hooks, listed in `mqtt.config.ts` under `plugins`.
 *
 * - Decisions (`authenticate`, `authorizePublish`, `authorizeSubscribe`) answer 'allow', 'deny' or 'abstain',
 *   sync or async. Plugins are asked in order; the first that does not abstain decides. When all abstain,
 *   the broker allows. A deny may carry an MQTT 5 reason code and reason string.
 * - Notifications (`onConnect` ... `onDrop`) run after the fact, never block routing; a throw or rejection is logged.
 * - `start(ctx)` / `stop()` bracket the broker's life; a plugin may also provide the retained and session stores.
 *
 * The host builds one array per decision hook at start-up, so a hook no plugin has costs nothing.
 */
import type { BrokerEvents, ClientInfo, SubscriptionInfo } from './events.ts'
import type { Logger } from './logger.ts'
import type { MessageProperties, PublicMessage } from './message.ts'
import type { AclLists } from './topics/acl.ts'
import type { RateLimitInput } from './rate.ts'
import type { QoS } from './protocol/codec.ts'
import type { Subscription } from './topics/trie.ts'
import { ConfigError } from './errors.ts'

export type { ClientInfo } from './events.ts'

export type MaybePromise<T> = T | Promise<T>

/** A refusal with the MQTT 5 reason code and reason string the client should see. */
export interface Denial {
  decision: 'deny'
  reasonCode?: number
  reasonString?: string
}
/**
 * An authenticate hook's allow with what it grants this connection (from a token's claims, an HTTP answer...):
 * - `acl`: what the client may publish and subscribe to while connected (filters, `%u` and `%c` replaced). The
 *   broker checks it before the authorize hooks: what it does not allow is denied (PUBACK / SUBACK 0x87); what it
 *   allows still goes to the hooks, so another plugin may narrow it.
 * - `expiresAt` (epoch ms): when the client's access ends; the broker disconnects it then (MQTT 5: DISCONNECT 0xA0
 *   Maximum connect time; 3.1.1: closed). A time already past refuses the connection.
 * - `rate`: this client's inbound rate limits, over the listener's (or `limits.rate`): per user, say.
 * - `maxPayloadBytes`, `maxRetained`, `maxSubscriptions`: this client's own limits, instead of the broker's.
 */
export interface Grant {
  decision: 'allow'
  acl?: AclLists
  expiresAt?: number
  rate?: RateLimitInput
  maxPayloadBytes?: number
  /** Retained messages this client may keep, instead of `limits.maxRetainedPerClient`. */
  maxRetained?: number
  /** Subscriptions this client may hold, instead of `limits.maxSubscriptionsPerClient`. */
  maxSubscriptions?: number
}
export type Decision = 'allow' | 'deny' | 'abstain' | Denial | Grant

/** One step of an MQTT 5 enhanced authentication exchange (section 4.12) for a method a plugin handles. */
export interface AuthExchangeStep {
  method: string
  /** The client's Authentication Data: CONNECT's on the first step, then each AUTH's. */
  data: Buffer | undefined
  /** What the previous step answered as `state` (undefined on the first). */
  state: unknown
  /** True when a connected client re-authenticates (AUTH 0x19), false during CONNECT. */
  reauthenticate: boolean
  client: AuthenticateRequest
}

/**
 * A step's answer: `continue` sends the client AUTH 0x18 with `data` and waits for its next AUTH; `success` ends the
 * exchange (CONNACK, or AUTH 0x00 on re-authentication, with `data`) and may grant as `authenticate` does; `fail`
 * refuses (CONNACK, or DISCONNECT on re-authentication, with `reasonCode`, 0x87 by default).
 */
export type AuthExchangeAnswer =
  | { result: 'continue'; data?: Buffer; state?: unknown }
  | { result: 'success'; data?: Buffer; grant?: Omit<Grant, 'decision'> }
  | { result: 'fail'; reasonCode?: number; reasonString?: string }

export interface AuthenticateRequest extends ClientInfo {
  password: Buffer | undefined
  /** The username is the CN of a client certificate the TLS listener verified (`certificateAsUsername`). */
  certificate?: boolean
}

export interface PublishRequest {
  topic: string
  payload: Buffer
  qos: QoS
  retain: boolean
}

/** A subscription asked for: its filter, and its share group when it came as `$share/{group}/{filter}`. */
export type SubscribeRequest = SubscriptionInfo

export interface BrokerStatsView {
  readonly messagesReceived: number
  readonly messagesSent: number
  readonly messagesDropped: number
  readonly bytesReceived: number
  readonly bytesSent: number
  readonly clientsConnected: number
  readonly subscriptions: number
  readonly retained: number
}

/** A message published by the broker itself: from a plugin's `ctx.publish` or the embedding API's `publish`. */
export interface PluginPublish {
  topic: string
  payload: string | Uint8Array
  qos?: QoS
  retain?: boolean
  properties?: MessageProperties & { messageExpiryInterval?: number }
}

/** What a plugin gets in `start(ctx)`. */
export interface PluginContext {
  /** Logs with `plugin: <name>` on every line. */
  logger: Logger
  /** Publishes as the broker; returns how many sessions it reached. */
  publish(message: PluginPublish): number
  /**
   * Resolves when what was published so far is durable in the stores (null: nothing is pending), e.g. before a
   * plugin acknowledges a message it took from elsewhere.
   */
  flushed(): Promise<void> | null
  readonly stats: BrokerStatsView
}

/**
 * A retained-message store behind memory: memory answers every lookup; the store is loaded once at start-up
 * and mirrors every change after it. `set` must not block (batch the writes).
 */
export interface RetainedPersistence {
  load(): MaybePromise<Iterable<PublicMessage>>
  /** Stores the message for its topic, or removes the topic when `message` is null. */
  set(topic: string, message: PublicMessage | null): void
  /** Resolves when every change made so far is durable; null when none is pending. */
  flushed?(): Promise<void> | null
}

/** A QoS 1/2 message a persistent session holds: queued (packetId 0) or in flight, as the broker last saw it. */
export interface StoredDelivery {
  /** Position in the session's stream; orders queued and in-flight messages on reload. */
  seq: number
  packetId: number
  state: 'queued' | 'puback' | 'pubrec' | 'pubcomp'
  qos: QoS
  retain: boolean
  subscriptionIds: number[] | undefined
  message: PublicMessage
}

export interface StoredSession {
  clientId: string
  expiryInterval: number
  /** Epoch ms when the session expires; 0 while it was connected, or never. */
  expiresAt: number
  subscriptions: Subscription[]
  deliveries: StoredDelivery[]
  /** Inbound QoS 2 packet ids received and not yet released. */
  awaitingRelease: number[]
}

/**
 * A store for persistent sessions (those with a session expiry interval above 0), written behind memory.
 * Calls come in the order things happened; the store batches them. With a session store, the broker sends
 * PUBACK / PUBREC for a QoS 1/2 publish only once `flushed()` resolves, so an acknowledged message is on disk.
 */
export interface SessionPersistence {
  load(): MaybePromise<StoredSession[]>
  saveSession(clientId: string, expiryInterval: number, expiresAt: number): void
  deleteSession(clientId: string): void
  saveSubscription(clientId: string, key: string, subscription: Subscription): void
  deleteSubscription(clientId: string, key: string): void
  saveDelivery(clientId: string, delivery: StoredDelivery): void
  deleteDelivery(clientId: string, seq: number): void
  saveReceived(clientId: string, packetId: number): void
  deleteReceived(clientId: string, packetId: number): void
  /** Resolves when every change made so far is durable; null when none is pending. */
  flushed(): Promise<void> | null
}

export interface Plugin {
  readonly name: string
  start?(ctx: PluginContext): MaybePromise<void>
  stop?(): MaybePromise<void>

  authenticate?(request: AuthenticateRequest): MaybePromise<Decision>
  authorizePublish?(client: ClientInfo, message: PublishRequest): MaybePromise<Decision>
  authorizeSubscribe?(client: ClientInfo, subscription: SubscribeRequest): MaybePromise<Decision>

  // Notifications: the broker's events (events.ts), told after the fact.
  onConnect?(...args: Parameters<BrokerEvents['clientConnected']>): MaybePromise<void>
  onDisconnect?(...args: Parameters<BrokerEvents['clientDisconnected']>): MaybePromise<void>
  onPublish?(...args: Parameters<BrokerEvents['message']>): MaybePromise<void>
  onSubscribe?(...args: Parameters<BrokerEvents['subscribe']>): MaybePromise<void>
  onUnsubscribe?(...args: Parameters<BrokerEvents['unsubscribe']>): MaybePromise<void>
  onDeliver?(...args: Parameters<BrokerEvents['deliver']>): MaybePromise<void>
  onDrop?(...args: Parameters<BrokerEvents['drop']>): MaybePromise<void>
  onSessionEnd?(...args: Parameters<BrokerEvents['sessionEnded']>): MaybePromise<void>

  /** Provides the retained store (at most one plugin may). */
  retainedStore?: RetainedPersistence
  /** Provides the session store (at most one plugin may). */
  sessionStore?: SessionPersistence
  /**
   * For a plugin that shares sessions between nodes: the session of a client that connects here with clean
   * start off and has no session here, or null. The client's CONNECT waits for it.
   */
  fetchSession?(clientId: string): Promise<StoredSession | null>
  /**
   * MQTT 5 enhanced authentication (section 4.12): the Authentication Methods this plugin handles, and one step of
   * their exchange. A client that CONNECTs with one of them is authenticated by the exchange (the `authenticate`
   * hooks are not asked) and may re-authenticate while connected; a method no plugin handles gets CONNACK 0x8C.
   */
  authMethods?: readonly string[]
  authExchange?(step: AuthExchangeStep): MaybePromise<AuthExchangeAnswer>
  /** Figures for GET /metrics, exported as `midge_plugin_<name>_<key>`. */
  metrics?(): Record<string, number>
  /**
   * For a plugin that writes what it is told (an outbox, a store): resolves when everything so far is durable,
   * null when nothing is pending. The broker acknowledges a QoS 1/2 publish only after it resolves.
   */
  flushed?(): Promise<void> | null
}

/** The outcome of a decision chain: allowed (with what an authenticate hook granted), or denied with what to tell the client. */
export type Verdict = { allowed: true; grant?: Grant } | { allowed: false; reasonCode: number | undefined; reasonString: string | undefined }

const ALLOWED: Verdict = { allowed: true }

function toVerdict(decision: Decision): Verdict | null {
  if (decision === 'abstain') return null
  if (decision === 'allow') return ALLOWED
  if (decision === 'deny') return { allowed: false, reasonCode: undefined, reasonString: undefined }
  if (decision.decision === 'allow') return { allowed: true, grant: decision }
  return { allowed: false, reasonCode: decision.reasonCode, reasonString: decision.reasonString }
}

/**
 * Asks each hook in order until one decides. Stays synchronous while the hooks do; from the first Promise on,
 * continues asynchronously. A throwing hook denies (fail closed) and is logged. The hooks' arguments are passed as
 * such (a hook of one argument gets `b` undefined): an array of them spread into each call was garbage per PUBLISH.
 */
export function decide<A, B>(hooks: Array<(a: A, b: B) => MaybePromise<Decision>>, a: A, b: B, onError: (error: unknown) => void): MaybePromise<Verdict> {
  for (let i = 0; i < hooks.length; i++) {
    let answer: MaybePromise<Decision>
    try {
      answer = hooks[i]!(a, b)
    } catch (error) {
      onError(error)
      return { allowed: false, reasonCode: undefined, reasonString: undefined }
    }
    if (answer instanceof Promise) return finishAsync(hooks, a, b, i, answer, onError)
    const verdict = toVerdict(answer)
    if (verdict) return verdict
  }
  return ALLOWED
}

async function finishAsync<A, B>(hooks: Array<(a: A, b: B) => MaybePromise<Decision>>, a: A, b: B, from: number, first: Promise<Decision>, onError: (error: unknown) => void): Promise<Verdict> {
  try {
    const verdict = toVerdict(await first)
    if (verdict) return verdict
    for (let i = from + 1; i < hooks.length; i++) {
      const v = toVerdict(await hooks[i]!(a, b))
      if (v) return v
    }
    return ALLOWED
  } catch (error) {
    onError(error)
    return { allowed: false, reasonCode: undefined, reasonString: undefined }
  }
}

type HookFn<K extends keyof Plugin> = NonNullable<Plugin[K]>

/** The plugins' hooks, gathered once at start-up. */
export class PluginHost {
  readonly authenticate: Array<HookFn<'authenticate'>>
  readonly authorizePublish: Array<HookFn<'authorizePublish'>>
  readonly authorizeSubscribe: Array<HookFn<'authorizeSubscribe'>>
  readonly retainedStore: RetainedPersistence | undefined
  readonly sessionStore: SessionPersistence | undefined
  readonly fetchSession: ((clientId: string) => Promise<StoredSession | null>) | undefined
  /** The exchange of each enhanced authentication method a plugin handles. */
  readonly authExchanges = new Map<string, (step: AuthExchangeStep) => MaybePromise<AuthExchangeAnswer>>()
  /** Everything the broker waits on before acknowledging a QoS 1/2 publish. */
  private readonly durables: Array<() => Promise<void> | null> = []
  /** Told when a plugin hook fails (set by the broker to log it). */
  onError: (hook: string, error: unknown) => void = () => {}
  /** What each decision chain reports a throwing hook to: made once, so asking the plugins makes no closure. */
  readonly decisionError = {
    authenticate: (error: unknown) => this.onError('authenticate', error),
    authorizePublish: (error: unknown) => this.onError('authorizePublish', error),
    authorizeSubscribe: (error: unknown) => this.onError('authorizeSubscribe', error),
  }
  /** A store call threw since the last flushed(): what it was asked to keep is not kept. */
  private storeError: unknown = null
  /** Store calls are failing (logged once, when they start to). */
  private storeFailing = false

  constructor(readonly plugins: readonly Plugin[]) {
    const bound = <K extends 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'>(key: K) =>
      plugins.filter((p) => p[key]).map((p) => (p[key] as (...a: unknown[]) => unknown).bind(p)) as unknown as Array<HookFn<K>>
    this.authenticate = bound('authenticate')
    this.authorizePublish = bound('authorizePublish')
    this.authorizeSubscribe = bound('authorizeSubscribe')
    const retainedStore = only(plugins, 'retainedStore')
    const sessionStore = only(plugins, 'sessionStore')
    this.retainedStore = retainedStore && this.guardStore(retainedStore, 'retainedStore', ['set'])
    this.sessionStore = sessionStore && this.guardStore(sessionStore, 'sessionStore', ['saveSession', 'deleteSession', 'saveSubscription', 'deleteSubscription', 'saveDelivery', 'deleteDelivery', 'saveReceived', 'deleteReceived'])
    for (const p of plugins) for (const method of p.authMethods ?? []) if (p.authExchange && !this.authExchanges.has(method)) this.authExchanges.set(method, p.authExchange.bind(p))
    const fetcher = plugins.find((p) => p.fetchSession)
    this.fetchSession = fetcher ? (clientId) => fetcher.fetchSession!(clientId) : undefined
    const retained = this.retainedStore
    const sessions = this.sessionStore
    if (retained?.flushed) this.durables.push(() => retained.flushed!())
    if (sessions) this.durables.push(() => sessions.flushed())
    for (const p of plugins) if (p.flushed) this.durables.push(() => p.flushed!())
  }

  /** Resolves when the stores and every plugin with `flushed` have written what they were given; null when nothing is pending. */
  flushed(): Promise<void> | null {
    if (this.storeError !== null) {
      // A store refused a write for what is being acknowledged: the ack must say so (see Client.sendAck).
      const error = this.storeError
      this.storeError = null
      return Promise.reject(error)
    }
    if (this.durables.length === 0) return null
    let waits: Promise<void>[] | null = null
    for (const durable of this.durables) {
      const wait = durable()
      if (wait && !waits?.includes(wait)) (waits ??= []).push(wait)
    }
    if (!waits) return null
    return waits.length === 1 ? waits[0]! : Promise.all(waits).then(() => undefined)
  }

  /**
   * The store's write calls, each isolated: one that throws is logged (once while they keep failing) and makes
   * the next flushed() reject, so nothing that depended on it is acknowledged. The broker goes on.
   */
  private guardStore<T extends object>(store: T, name: string, writes: Array<keyof T & string>): T {
    const guarded = Object.create(store) as T
    for (const key of writes) {
      const write = store[key] as unknown as (...args: unknown[]) => void
      ;(guarded as Record<string, unknown>)[key] = (...args: unknown[]) => {
        try {
          write.apply(store, args)
          this.storeFailing = false
        } catch (error) {
          this.storeError = error
          if (!this.storeFailing) this.onError(`${name}.${key}`, error)
          this.storeFailing = true
        }
      }
    }
    return guarded
  }
}

function only<K extends 'retainedStore' | 'sessionStore'>(plugins: readonly Plugin[], key: K): Plugin[K] {
  const providers = plugins.filter((p) => p[key])
  if (providers.length > 1) {
    const names = providers.map((p) => p.name)
    const why = names.includes('cluster') ? ': a cluster keeps them in NATS JetStream, so leave the other out of a clustered config' : ''
    throw new ConfigError(`only one plugin may provide the ${key} (${names.join(', ')} do)${why}`)
  }
  return providers[0]?.[key]
}
