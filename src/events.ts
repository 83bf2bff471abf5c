/**
 * The broker's events: what an embedding program hears with `midge.on(...)` and what plugins' notification hooks
 * (`onConnect` ... `onSessionEnd`) are told. Events about a connection carry its ClientInfo; events about a
 * session, which may have no connection (a drop for an offline session, an expiry), carry the client id.
 * Listeners run after the fact: one that throws or rejects is logged and the others still run.
 */
import type { Logger } from './logger.ts'
import type { PublicMessage } from './message.ts'
import type { QoS } from './protocol/codec.ts'

/** Who a client is, as plugins, events and the HTTP API see it (fixed once its CONNECT is accepted). */
export interface ClientInfo {
  clientId: string
  username: string | undefined
  protocolVersion: 3 | 4 | 5
  address: string
}

/** A subscription as events and plugins see it: `$share/{group}/{filter}` comes parsed. */
export interface SubscriptionInfo {
  /** The topic filter, without any `$share/{group}/` prefix. */
  filter: string
  /** The share group of a shared subscription; undefined otherwise. */
  group: string | undefined
  qos: QoS
}

export interface BrokerEvents {
  clientConnected: (client: ClientInfo & { sessionPresent: boolean }) => void
  clientDisconnected: (client: ClientInfo & { reason: string }) => void
  /** Every message routed, from clients, wills, HTTP, plugins and `publish()`. */
  message: (message: Readonly<PublicMessage>) => void
  subscribe: (client: ClientInfo, subscription: SubscriptionInfo) => void
  unsubscribe: (client: ClientInfo, subscription: Omit<SubscriptionInfo, 'qos'>) => void
  /** A message written to a client's connection. */
  deliver: (client: ClientInfo, message: Readonly<PublicMessage>) => void
  /** A message not delivered to a session (outbound buffer or offline queue full, too large, expired). */
  drop: (clientId: string, message: Readonly<PublicMessage>, reason: string) => void
  /** A session ended (expired, or replaced by a clean start). */
  sessionEnded: (clientId: string) => void
}

type Listeners = { [E in keyof BrokerEvents]: BrokerEvents[E][] }

export class Events {
  /** The listeners of each event; a hot path checks `listeners.x.length` before building an event's arguments. */
  readonly listeners: Listeners = { clientConnected: [], clientDisconnected: [], message: [], subscribe: [], unsubscribe: [], deliver: [], drop: [], sessionEnded: [] }

  constructor(private readonly logger: Logger) {}

  on<E extends keyof BrokerEvents>(event: E, listener: BrokerEvents[E]): () => void {
    const list = this.listeners[event] as BrokerEvents[E][]
    list.push(listener)
    return () => {
      const at = list.indexOf(listener)
      if (at !== -1) list.splice(at, 1)
    }
  }

  /** Calls the listeners; a throwing or rejecting listener is logged and the others still run. */
  emit<E extends keyof BrokerEvents>(event: E, ...args: Parameters<BrokerEvents[E]>): void {
    for (const listener of this.listeners[event] as ((...a: Parameters<BrokerEvents[E]>) => unknown)[]) {
      try {
        const result = listener(...args)
        if (result instanceof Promise) result.catch((error: unknown) => this.logger.error('broker.listener_error', { event, error }))
      } catch (error) {
        this.logger.error('broker.listener_error', { event, error })
      }
    }
  }
}
