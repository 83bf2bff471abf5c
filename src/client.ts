/**
 * One network connection: its parser, its outbound buffer, what the client negotiated in CONNECT,
 * and the session it is attached to. Packets go to the handlers; every error ends here, never in the socket.
 */
import type { Listed } from './client-list.ts'
import type { BrokerContext, Connected } from './context.ts'
import type { ClientInfo } from './plugin.ts'
import { MqttError } from './errors.ts'
import type { RouteCache } from './delivery/matches.ts'
import { Outbound, type OutboundOwner } from './delivery/outbound.ts'
import { encodePublish, encodePublishFor, shareable, type TopicAliases } from './delivery/outgoing.ts'
import { encodedFor, isExpired, keepEncoded } from './message.ts'
import { checkPacket } from './protocol/check.ts'
import { type AuthPacket, PacketReader, PacketTooLargeError, type Packet, type PacketSink, type ProtocolVersion, type PubackPacket, type PubrecPacket } from './protocol/codec.ts'
import { encode } from './protocol/encode.ts'
import { Reason, refusalCode } from './protocol/reason.ts'
import type { Publisher } from './publish.ts'
import type { Delivery, Session } from './session.ts'
import type { Timer } from './clock.ts'
import type { ClientRules } from './topics/acl.ts'
import type { RateBucket, RateConfig, RateLimitInput } from './rate.ts'
import type { Connection, ConnectionHandler } from './transport/types.ts'

type State = 'connecting' | 'connected' | 'closed'

/** The PUBACK / PUBREC sent at once is built here and encoded straight away, as each outgoing PUBLISH is (delivery/outgoing.ts; 3.1.1 ignores the reason code). */
const ackNow: PubackPacket | PubrecPacket = { cmd: 'puback', messageId: 0, reasonCode: 0, properties: undefined }

/** Held packets past which the socket stops being read until the pending decision settles. */
const HOLD_PAUSE_AT = 64

export class Client implements ConnectionHandler, PacketSink, OutboundOwner, Publisher, Connected {
  state: State = 'connecting'
  version: ProtocolVersion = 4
  clientId = ''
  username: string | undefined = undefined
  session: Session | null = null
  /** When the socket was accepted, by the broker's clock (the CONNECT timeout counts from it; takeovers across nodes order by it). */
  readonly acceptedAt: number
  /** When the client last sent anything, by the broker's clock (keep alive). */
  lastSeen: number
  /** Keep alive in milliseconds; 0 = none. */
  keepAliveMs = 0
  /** Most unacknowledged QoS 1/2 messages this client takes (its Receive Maximum, capped by config). */
  sendWindow: number
  /** Largest packet this client accepts (its Maximum Packet Size). */
  maxOutgoingPacketSize = Infinity
  /** Topic aliases, ours (the client's Topic Alias Maximum) and its own; null until it allows or uses any. */
  aliases: TopicAliases | null = null
  requestProblemInformation = true
  /**
   * A bridge of another broker (3.1.1 CONNECT with protocol level 0x80 | version, Mosquitto's `try_private`): its
   * subscriptions get no local and retain as published, so what it forwards is not sent back to it, as Mosquitto does.
   */
  bridge = false
  /**
   * What an authenticate hook granted this connection (plugin.ts Grant): its ACL, checked before the authorize hooks,
   * and the timer that ends its access; null when nothing was granted (most clients).
   */
  granted: { acl: ClientRules | null; timer: Timer | undefined; maxPayloadBytes: number | undefined; maxRetained: number | undefined; maxSubscriptions: number | undefined; rate: RateLimitInput | undefined } | null = null
  /** The listener's own rate limits, when it has some (else `limits.rate`): the bucket is made at CONNECT. */
  listenerRate: RateConfig | undefined = undefined
  /** Inbound rate limits, once connected with any (rate.ts); null for most clients. */
  rate: RateBucket | null = null
  /**
   * MQTT 5 enhanced authentication (handlers/auth.ts): the method this client connected with, and who waits for its
   * next AUTH during an exchange; null for clients that connected without one.
   */
  auth: { method: string; waiter: ((packet: AuthPacket) => void) | null } | null = null
  /** Why the connection ended, for the log line. */
  closeReason = 'connection lost'
  /** The topic name of this client's last valid PUBLISH (not checked again while it repeats). */
  lastTopicName: string | undefined = undefined
  /** The matches of the topic this client last published to (see Broker.route); made at its first PUBLISH. */
  routeCache: RouteCache | null = null
  /** Packets that arrived while a plugin decision was pending; null when none is. */
  private held: Packet[] | null = null
  private infoCache: ClientInfo | null = null
  private address: string | undefined = undefined
  /** The last acknowledgement still waiting for a store flush, if any. */
  private ackChain: Promise<void> | null = null
  readonly outbound: Outbound
  readonly reader: PacketReader
  /** The broker's list of connections runs through its clients (client-list.ts). */
  prevInList: Listed | null = null
  nextInList: Listed | null = null

  constructor(
    readonly broker: BrokerContext,
    readonly conn: Connection,
  ) {
    this.acceptedAt = this.lastSeen = broker.clock.now()
    this.sendWindow = broker.limits.maxInflight
    this.outbound = new Outbound(conn, broker.stats, this)
    this.reader = new PacketReader(broker.limits.maxPacketSize, this)
  }

  /** PacketSink: topics may be left in bytes while nothing reads every topic as a string (BrokerContext.everyTopicRead). */
  get topicsInBytes(): boolean {
    return !this.broker.everyTopicRead
  }

  /** Read from the socket when first needed (a syscall), then kept: a closed socket may no longer tell. */
  get remoteAddress(): string {
    return (this.address ??= this.conn.remoteAddress)
  }

  /** Publisher: the connection closed (a decision on one of its messages settled too late to route it). */
  get gone(): boolean {
    return this.state !== 'connected'
  }

  /** Who this client is, as plugins and events see it (fixed once CONNECT is accepted). */
  get info(): ClientInfo {
    return (this.infoCache ??= this.infoFields)
  }

  /** The same as `info` for a log line or an event, without keeping an object on a client that may stay idle. */
  get infoFields(): ClientInfo {
    return this.infoCache ?? { clientId: this.clientId, username: this.username, protocolVersion: this.version, address: this.remoteAddress }
  }

  // ConnectionHandler: called by the transport.

  data(bytes: Buffer): void {
    if (this.state === 'closed') return
    this.lastSeen = this.broker.clock.now()
    this.broker.stats.bytesReceived += bytes.length
    try {
      this.reader.feed(bytes)
    } catch (error) {
      this.onParseError(error as Error) // mqtt-packet may throw on some malformed input instead of emitting
    }
    if (this.rate && this.state === 'connected') this.limitRate(bytes.length)
  }

  /**
   * After a read: the bytes (and the PUBLISHes counted as they were handled) taken from the client's buckets. Over the
   * limit, reading pauses until the buckets are back to zero, or the client is disconnected (0x96).
   */
  private limitRate(bytes: number): void {
    const rate = this.rate!
    const now = this.broker.clock.now()
    const wait = rate.take(0, bytes, now)
    if (wait === 0 || rate.pausedUntil > now) return
    this.broker.stats.rateLimited++
    if (now - rate.loggedAt >= 60_000) {
      rate.loggedAt = now
      const { messagesPerSecond, bytesPerSecond, action } = rate.limit
      this.broker.logger.warn('client.rate_limited', { clientId: this.clientId, address: this.remoteAddress, messagesPerSecond, bytesPerSecond, action, effect: action === 'pause' ? 'reading paused until it is back under the rate (logged once a minute)' : 'disconnected' })
    }
    if (rate.limit.action === 'disconnect') return this.disconnect(Reason.MessageRateTooHigh, 'message rate too high')
    rate.pausedUntil = now + wait
    this.conn.pause?.()
    this.broker.clock.setTimeout(() => this.resumeRate(), wait)
  }

  /** The rate pause is over: read again, unless the buckets are still short or held packets keep it paused. */
  private resumeRate(): void {
    const rate = this.rate
    if (!rate || this.state === 'closed') return
    rate.pausedUntil = 0
    const wait = rate.take(0, 0, this.broker.clock.now())
    if (wait > 0) {
      rate.pausedUntil = this.broker.clock.now() + wait
      this.broker.clock.setTimeout(() => this.resumeRate(), wait)
      return
    }
    if (!(this.held && this.held.length >= HOLD_PAUSE_AT)) this.conn.resume?.()
  }

  drain(): void {
    if (this.state === 'closed') return
    this.outbound.drain()
  }

  /** OutboundOwner: the socket took everything; the session may send what it queued. */
  onWritable(): void {
    if (this.session) this.broker.pump(this.session)
  }

  closed(error?: Error): void {
    if (this.state === 'closed') return
    if (error) this.closeReason = `socket error: ${error.message}`
    this.finish()
  }

  // Sending.

  send(packet: Packet): void {
    if (this.state === 'closed') return
    let bytes: Buffer
    try {
      bytes = encode(packet, this.version)
    } catch (error) {
      // A packet the broker built that cannot be encoded is a bug; it ends this connection, never the process.
      this.broker.logger.error('client.encode_error', { clientId: this.clientId || undefined, address: this.remoteAddress, packet: packet.cmd, error: (error as Error)?.stack ?? String(error) })
      return this.close('internal error: could not encode a packet')
    }
    this.outbound.push(bytes)
  }

  /**
   * Sends PUBACK / PUBREC once `durable` resolves (the stores have written the message), keeping acks in the
   * order the PUBLISH packets came (the order 5.0 asks of clients [MQTT-4.6.0-2, -3], kept by the broker too): a
   * later ack never overtakes an earlier one still waiting.
   */
  sendAck(cmd: 'puback' | 'pubrec', messageId: number, reasonCode: number, properties: { reasonString: string } | undefined, durable: Promise<void> | null): void {
    const wait = durable && this.ackChain ? Promise.all([this.ackChain, durable]) : (durable ?? this.ackChain)
    if (wait) return this.sendAckAfter({ cmd, messageId, reasonCode, properties } as PubackPacket | PubrecPacket, wait)
    ackNow.cmd = cmd
    ackNow.messageId = messageId
    ackNow.reasonCode = reasonCode
    ackNow.properties = properties
    this.send(ackNow)
    ackNow.properties = undefined
  }

  /** sendAck() when something must be written first (apart, so sendAck itself creates no closures). */
  private sendAckAfter(ack: PubackPacket | PubrecPacket, wait: Promise<unknown>): void {
    // Runs after the client may have gone or the session ended; nothing in either callback may throw out of it.
    const chain: Promise<void> = wait.then(
      () => {
        if (this.ackChain === chain) this.ackChain = null
        try {
          this.send(ack)
        } catch (error) {
          this.failSafely(error)
        }
      },
      (error: unknown) => {
        if (this.ackChain === chain) this.ackChain = null
        // The store logs the fault once; this is one message it failed to hold.
        if (this.broker.logger.isDebug) this.broker.logger.debug('client.ack_refused', { clientId: this.clientId, packetId: ack.messageId, error: (error as Error)?.message ?? String(error) })
        try {
          this.refuseAck(ack)
        } catch (again) {
          this.failSafely(again)
        }
      },
    )
    this.ackChain = chain
  }

  /**
   * A store could not write what a QoS 1/2 PUBLISH changed: it is not acknowledged as received. An MQTT 5 client
   * gets the PUBACK / PUBREC with 0x80 (MQTT 5.0 sections 3.4.2.1, 3.5.2.1) and may send it again; a 3.1.1 client has
   * no way to be told but the close, after which it sends it again itself [MQTT-4.4.0-1].
   */
  private refuseAck(ack: PubackPacket | PubrecPacket): void {
    if (this.state !== 'connected') return
    if (this.version !== 5) return this.disconnect(Reason.UnspecifiedError, 'could not store the message')
    // A refused PUBREC ends the QoS 2 exchange: the id is free again (section 4.3.3).
    if (ack.cmd === 'pubrec' && this.session) this.broker.inboundQoS2(this.session, ack.messageId!, false)
    ack.reasonCode = Reason.UnspecifiedError
    ack.properties = this.requestProblemInformation ? { reasonString: 'the message could not be stored' } : undefined
    this.send(ack)
  }

  /**
   * Sends one PUBLISH; returns false if it was not sent (expired, or larger than the client allows:
   * then it is discarded as if sent [MQTT-3.1.2-25]).
   */
  sendPublish(delivery: Delivery, packetId: number, dup: boolean): boolean {
    if (this.state !== 'connected') return false
    const message = delivery.message
    // The clock is read only for a message that expires (isExpired and the encoder's remainingExpiry read `now` then).
    const now = message.expiresAt === 0 ? 0 : this.broker.clock.now()
    if (isExpired(message, now)) return false // [MQTT-3.3.2-5]
    let bytes: Buffer
    if (delivery.qos === 0 && shareable(delivery, this.version, this.aliases)) {
      // The hot path: bytes the message's other subscribers of this kind already got.
      const slot = (this.version === 5 ? 2 : 0) + (delivery.retain ? 1 : 0)
      bytes = encodedFor(message, slot) ?? keepEncoded(message, slot, encodePublish(delivery, 0, false, this.version, now))
    } else {
      bytes = encodePublishFor(this, delivery, packetId, dup, now)
    }
    if (bytes.length > this.maxOutgoingPacketSize) {
      this.broker.dropped(this.clientId, message, 'larger than the client maximum packet size')
      return false
    }
    this.outbound.push(bytes)
    this.broker.delivered(this, message, delivery.qos)
    return true
  }

  /**
   * Ends the connection from the broker's side: MQTT 5 clients get a DISCONNECT with the reason first
   * (MQTT 5.0 section 4.13); older clients just see the socket close.
   */
  disconnect(reasonCode: number, why: string): void {
    if (this.state === 'closed') return
    this.closeReason = why
    if (this.version === 5 && this.state === 'connected') {
      const properties = this.requestProblemInformation ? { reasonString: why } : undefined
      this.send({ cmd: 'disconnect', reasonCode: refusalCode('disconnect', reasonCode, Reason.UnspecifiedError), properties })
    }
    this.outbound.flush()
    this.finish()
    this.conn.end()
  }

  /** Closes the socket without a word (MQTT 3.1.1 errors, CONNECT failures after CONNACK). */
  close(why: string): void {
    if (this.state === 'closed') return
    this.closeReason = why
    this.outbound.flush()
    this.finish()
    this.conn.end()
  }

  private finish(): void {
    const wasConnected = this.state === 'connected'
    this.state = 'closed'
    if (this.granted?.timer !== undefined) this.broker.clock.clear(this.granted.timer)
    this.outbound.close()
    this.broker.clientClosed(this, wasConnected)
  }

  // Receiving.

  /** PacketSink: the next packet from this connection. */
  onPacket(packet: Packet): void {
    if (this.state === 'closed') return
    const waiter = this.auth?.waiter
    if (waiter && packet.cmd === 'auth') {
      // The next step of an authentication exchange: it goes ahead of packets held while the exchange decides.
      this.auth!.waiter = null
      try {
        checkPacket(packet, this.version)
      } catch (error) {
        return this.fail(error)
      }
      return waiter(packet)
    }
    if (this.held) {
      // A plugin decision is pending: keep this packet for after it, in order.
      this.held.push(packet)
      if (this.held.length === HOLD_PAUSE_AT) this.conn.pause?.()
      return
    }
    this.run(packet)
  }

  private run(packet: Packet): void {
    try {
      const pending = this.broker.dispatch(this, packet)
      if (pending) this.hold(pending)
    } catch (error) {
      this.fail(error)
    }
  }

  /** Holds later packets until a plugin decision settles (apart from run(), which then creates no closures). */
  private hold(pending: Promise<void>): void {
    this.held = []
    pending.then(
      () => {
        try {
          this.release()
        } catch (error) {
          this.failSafely(error)
        }
      },
      (error: unknown) => this.failSafely(error),
    )
  }

  /**
   * fail(), from a promise callback or a microtask, where a throw would reach the process: whatever happens while
   * ending the connection is logged, never thrown.
   */
  failSafely(error: unknown): void {
    try {
      this.fail(error)
    } catch (again) {
      this.broker.logger.error('client.handler_error', { clientId: this.clientId || undefined, error: (again as Error)?.stack ?? String(again) })
    }
  }

  /** OutboundOwner: the time, by the broker's clock. */
  now(): number {
    return this.broker.clock.now()
  }

  /** OutboundOwner: flushing this connection's bytes threw (a bug): the connection ends, the others are flushed. */
  onFlushError(error: unknown): void {
    this.failSafely(error)
  }

  /** A CONNECT in error: an MQTT 5 client may be told why in a CONNACK before the close [MQTT-4.13.1-1]. */
  private refuseConnect(reasonCode: number, why: string): void {
    this.version = 5
    this.send({ cmd: 'connack', sessionPresent: false, reasonCode: refusalCode('connack', reasonCode, Reason.UnspecifiedError), properties: { reasonString: why } })
    this.close(why)
  }

  /** The pending decision settled: handle the packets that waited, until one waits again. */
  private release(): void {
    const waiting = this.held ?? []
    this.held = null
    if (waiting.length >= HOLD_PAUSE_AT && !this.rate?.pausedUntil) this.conn.resume?.()
    for (let i = 0; i < waiting.length; i++) {
      if (this.state === 'closed') return
      this.run(waiting[i]!)
      const heldAgain = this.held as Packet[] | null // run() may have started a new hold
      if (heldAgain) {
        heldAgain.push(...waiting.slice(i + 1))
        return
      }
    }
  }

  private fail(error: unknown): void {
    if (this.state === 'closed') return
    if (error instanceof MqttError) {
      this.broker.logger.warn('client.protocol_error', { clientId: this.clientId || undefined, address: this.remoteAddress, reason: error.message, code: error.reasonCode })
      if (this.state === 'connecting' && this.version === 5) return this.refuseConnect(error.reasonCode, error.message)
      this.disconnect(error.reasonCode, error.message)
    } else {
      this.broker.logger.error('client.handler_error', { clientId: this.clientId, address: this.remoteAddress, error: (error as Error)?.stack ?? String(error) })
      this.disconnect(Reason.ImplementationSpecificError, 'internal error')
    }
  }

  /** PacketSink: the stream is malformed (or a packet too large); the connection ends. */
  onParseError(error: Error): void {
    const tooLarge = error instanceof PacketTooLargeError
    this.broker.logger.warn('client.malformed_packet', { clientId: this.clientId || undefined, address: this.remoteAddress, reason: error.message })
    if (this.state === 'connecting' && error.message === 'Invalid protocol version') {
      // [MQTT-3.1.2-2] answer in the 3.1.1 format, which every version can read: return code 1.
      this.outbound.push(encode({ cmd: 'connack', sessionPresent: false, returnCode: 1 }, 4))
      return this.close('unsupported protocol version')
    }
    const code = error instanceof MqttError ? error.reasonCode : tooLarge ? Reason.PacketTooLarge : Reason.MalformedPacket
    if (this.state === 'connecting' && this.reader.protocolLevel === 5) return this.refuseConnect(code, error.message)
    this.disconnect(code, error.message) // [MQTT-4.13.1-1]
  }
}
