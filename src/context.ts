/**
 * What a connection and its packet handlers may ask of the broker: the seam between the protocol side (client.ts,
 * handlers/) and the broker's state (sessions, subscriptions, retained messages, delivery). Broker is the one
 * implementation; the handlers see this, never the whole Broker, so they cannot reach past it.
 */
import type { Bans } from './bans.ts'
import type { Clock } from './clock.ts'
import type { Limits } from './limits.ts'
import type { Logger } from './logger.ts'
import type { Message } from './message.ts'
import type { StoredSession } from './plugin.ts'
import type { Packet, QoS } from './protocol/codec.ts'
import type { PublishTarget } from './publish.ts'
import type { Attachment, Session } from './session.ts'
import type { Subscription } from './topics/trie.ts'

export interface BrokerStats {
  messagesReceived: number
  messagesSent: number
  /** PUBLISH packets received / sent, by QoS (index 0, 1, 2). */
  receivedByQoS: [number, number, number]
  sentByQoS: [number, number, number]
  messagesDropped: number
  bytesReceived: number
  bytesSent: number
  /** Times a client went over its rate limit (reading paused, or disconnected). */
  rateLimited: number
  /** PUBLISHes refused for a payload over the limit. */
  payloadRefused: number
}

/** A connection as the broker tracks it from accept to close (Client is the one kind). */
export interface Connected extends Attachment {
  session: Session | null
  readonly remoteAddress: string
  readonly keepAliveMs: number
  /** Why the connection ended, for the log line and the disconnect event. */
  readonly closeReason: string
}

export interface BrokerContext extends PublishTarget {
  readonly limits: Limits
  readonly stats: BrokerStats
  readonly logger: Logger
  readonly clock: Clock
  readonly bans: Bans
  /** The broker is shutting down: no new session opens. */
  readonly closing: boolean
  /** Connections past CONNECT or still before it. */
  readonly connectionCount: number
  /**
   * Something reads the topic of every message as a string: a plugin deciding on publishes, or a listener to every
   * message or delivery. Connections then read topics as strings at once; otherwise they may leave them in bytes
   * (message.ts LazyTopicMessage), where they would only be decoded later, at a higher cost.
   */
  readonly everyTopicRead: boolean
  /** Handles one packet of a client (handlers/index.ts); a Promise while a plugin decision is pending. */
  dispatch(client: Connected, packet: Packet): void | Promise<void>
  /** A plugin hook failed: logged. */
  pluginError(hook: string, error: unknown): void

  // Sessions (sessions.ts).
  newClientId(): string
  hasSession(clientId: string): boolean
  /** Makes a session fetched from another node a live session here. */
  adoptSession(stored: StoredSession): Session
  /** Finds or creates the session for a connecting client, taking over a live connection with the same id. */
  openSession(client: Connected, clientId: string, cleanStart: boolean, expiryInterval: number): { session: Session; present: boolean }
  /** CONNACK has been sent: the session resumes. */
  connected(client: Connected, sessionPresent: boolean): void
  /** The connection is gone (any cause). */
  clientClosed(client: Connected, wasConnected: boolean): void
  /** MQTT 5 DISCONNECT changed the session expiry interval. */
  setSessionExpiry(session: Session, expiryInterval: number): void

  // Subscriptions.
  /** Adds or replaces a subscription; returns whether one already existed on that filter. */
  subscribe(session: Session, sub: Subscription): boolean
  unsubscribe(session: Session, key: string): boolean
  /** Queues the retained messages matching a new subscription. */
  sendRetained(session: Session, sub: Subscription): void

  // Delivery to the client (delivery/deliverer.ts).
  /** The socket has room again, or an acknowledgement freed a slot: queued messages move on. */
  pump(session: Session): void
  /** The client acknowledged (PUBACK, PUBCOMP, or a PUBREC with an error) the message with this id. */
  acknowledged(session: Session, packetId: number): void
  /** PUBREC arrived for a QoS 2 message sent to the client: it now waits for PUBCOMP. */
  received(session: Session, packetId: number): void
  /** An inbound QoS 2 message was accepted (PUBREC sent, `open`) or released (PUBREL); returns whether the id was known. */
  inboundQoS2(session: Session, packetId: number, open: boolean): boolean
  /** A PUBLISH was written to a client. */
  delivered(client: Attachment, message: Message, qos: QoS): void
  /** A message not delivered to a client, and why. */
  dropped(clientId: string, message: Message, reason: string): void
}
