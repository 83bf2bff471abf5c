/**
 * The one way a message enters the broker, whoever sends it: MQTT clients, HTTP, the embedding API and plugins'
 * `ctx.publish`, `$SYS`, wills and other cluster nodes. What applies depends only on who publishes: a client (MQTT
 * or HTTP, as the ACL hooks see it) or the broker itself. In this order, with one set of rules:
 * 1. a client's message is counted as received;
 * 2. a client may not write `$SYS` (the broker's own topics, as in Mosquitto);
 * 3. the plugins decide on a client's message (a decision may be asynchronous);
 * 4. the message is routed to every matching subscription, then kept if retained;
 * 5. for a client's QoS 1/2 message: what to wait on before it is durable (the stores' flush), so its
 *    acknowledgement says so. (The broker's own messages acknowledge nothing: nothing waits on them.)
 * Each source keeps only what differs: how it reads and validates its input, and how it answers.
 */
import type { RouteCache } from './delivery/matches.ts'
import { isSysTopic, type Message } from './message.ts'
import { type ClientInfo, decide, type PluginHost, type Verdict } from './plugin.ts'
import type { Logger } from './logger.ts'
import { Reason } from './protocol/reason.ts'
import { type ClientRules, mayPublish } from './topics/acl.ts'

/** What publishing needs of the broker (Broker is one): counters, plugins, routing and the retained store. */
export interface PublishTarget {
  readonly stats: { messagesReceived: number; receivedByQoS: [number, number, number] }
  readonly plugins: PluginHost
  readonly logger: Logger
  route(message: Message, cache?: RouteCache): number
  retain(message: Message): void
  /** Whether a client may keep one more retained message at this topic (limits.maxRetainedPerClient, or its grant). */
  mayRetain(origin: string, topic: string, max: number): boolean
  readonly limits: { maxRetainedPerClient: number }
}

/** A message taken: how many sessions it reached, and what to wait on before it is durable (null: nothing). */
export interface Accepted {
  accepted: true
  reached: number
  durable: Promise<void> | null
}

/** A message refused (by the `$SYS` rule or a plugin), with what to tell the client. */
export interface Refused {
  accepted: false
  reasonCode: number | undefined
  reasonString: string | undefined
}

export type PublishResult = Accepted | Refused

/** Who publishes, when a client does: its identity as the plugins see it, and whether it is still there. */
export interface Publisher {
  readonly info: ClientInfo
  /** True once the publisher has gone (its connection closed while a decision was pending): nothing is routed. */
  readonly gone: boolean
  /** What was granted at connect (plugin.ts Grant): an ACL checked before the plugins; null when none. */
  readonly granted?: { acl: ClientRules | null; maxRetained?: number | undefined } | null
}

const SYS_REFUSED: Refused = { accepted: false, reasonCode: Reason.NotAuthorized, reasonString: '$SYS topics are written by the broker only' }
const NOT_GRANTED: Refused = { accepted: false, reasonCode: Reason.NotAuthorized, reasonString: 'not allowed by the access granted at connect' }
const RETAIN_QUOTA: Refused = { accepted: false, reasonCode: Reason.QuotaExceeded, reasonString: 'retained messages over this client\'s quota' }
const GONE: Refused = { accepted: false, reasonCode: undefined, reasonString: 'the publisher went away while the plugins decided' }

/**
 * The result of a publish that did not wait: one object, reused, since a message with no pending decision is the
 * hot path. Read it before the next publish (every caller does, at once); a result after a decision is its own.
 */
const taken: Accepted = { accepted: true, reached: 0, durable: null }

/**
 * Publishes `message` from a client, or from the broker itself (null). `cache` is a publishing client's route cache.
 * Returns a Promise only while a plugin decision is pending.
 */
export function publish(broker: PublishTarget, message: Message, client: Publisher | null, cache?: RouteCache): PublishResult | Promise<PublishResult> {
  if (client === null) return deliver(broker, message, cache, taken, false)
  broker.stats.messagesReceived++
  broker.stats.receivedByQoS[message.qos]++
  if (isSysTopic(message)) return SYS_REFUSED
  const acl = client.granted?.acl
  if (acl && !mayPublish(acl, message.topic)) return NOT_GRANTED
  if (message.retain && message.payload.length > 0 && message.origin !== undefined) {
    const max = client.granted?.maxRetained ?? broker.limits.maxRetainedPerClient
    if (max > 0 && !broker.mayRetain(message.origin, message.topic, max)) return RETAIN_QUOTA
  }
  const hooks = broker.plugins.authorizePublish
  if (hooks.length === 0) return deliver(broker, message, cache, taken, true)
  return authorize(broker, message, client, cache)
}

/** Asks the plugins (apart from publish(), so that function creates no closures). */
function authorize(broker: PublishTarget, message: Message, client: Publisher, cache: RouteCache | undefined): PublishResult | Promise<PublishResult> {
  const request = { topic: message.topic, payload: message.payload, qos: message.qos, retain: message.retain }
  const verdict = decide(broker.plugins.authorizePublish, client.info, request, broker.plugins.decisionError.authorizePublish)
  if (verdict instanceof Promise) return verdict.then((v) => (client.gone ? GONE : settle(broker, message, cache, v, { accepted: true, reached: 0, durable: null })))
  return settle(broker, message, cache, verdict, taken)
}

function settle(broker: PublishTarget, message: Message, cache: RouteCache | undefined, verdict: Verdict, into: Accepted): PublishResult {
  if (!verdict.allowed) {
    if (broker.logger.isDebug) broker.logger.debug('publish.denied', { clientId: message.origin, topic: message.topic, reasonCode: verdict.reasonCode })
    return { accepted: false, reasonCode: verdict.reasonCode, reasonString: verdict.reasonString }
  }
  return deliver(broker, message, cache, into, true)
}

/** Routes, retains, and (`waits`) says what a QoS 1/2 message waits on to be durable. */
function deliver(broker: PublishTarget, message: Message, cache: RouteCache | undefined, into: Accepted, waits: boolean): Accepted {
  into.reached = broker.route(message, cache)
  if (message.retain) broker.retain(message)
  // With a persistent store, what this message changed is durable once the stores have written it. Asked only
  // when someone waits: a flush that fails rejects what it returned, and that rejection must have a taker.
  into.durable = waits && message.qos > 0 ? broker.plugins.flushed() : null
  return into
}
