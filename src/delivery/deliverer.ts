/**
 * Hands deliveries to sessions: a QoS 0 message is written now or dropped; a QoS 1/2 one is written when the
 * client's receive window and outbound buffer have room, else queued (bounded) until they do. Keeps each
 * session's in-flight window and, for persistent sessions, the session store's record of what is queued or
 * in flight. The broker routes (who gets a message); this decides when and how each one gets it.
 */
import type { Limits } from '../limits.ts'
import { type Message, own } from '../message.ts'
import type { PluginHost } from '../plugin.ts'
import type { Attachment, Delivery, Session } from '../session.ts'

export interface DropSink {
  /** A message not delivered to a client, and why (counted, logged at debug, told to listeners). */
  dropped(clientId: string, message: Message, reason: string): void
}

export class Deliverer {
  constructor(
    private readonly limits: Limits,
    private readonly plugins: PluginHost,
    private readonly drops: DropSink,
  ) {}

  /** Hands one delivery to a session: written now when the client can take it, else queued (QoS>0) or dropped. */
  deliver(session: Session, delivery: Delivery): void {
    const client = session.client
    const limit = this.limits.maxOutboundBufferBytes
    const connected = client !== null && client.state === 'connected'
    if (delivery.qos === 0) {
      if (!connected) return // QoS 0 is not kept for offline sessions
      if (client.outbound.bufferedBytes >= limit) return this.drops.dropped(client.clientId, delivery.message, 'outbound buffer full')
      client.sendPublish(delivery, 0, false)
      return
    }
    if (connected && session.queue.length === 0 && session.inflight.size < client.sendWindow && client.outbound.bufferedBytes < limit) {
      return this.transmit(session, client, delivery)
    }
    own(delivery.message)
    if (!session.enqueue(delivery, this.limits.maxQueuedMessages, this.limits.maxQueuedBytes)) {
      return this.drops.dropped(session.clientId, delivery.message, 'session queue full')
    }
    this.store(session, delivery, 0, 'queued')
  }

  /** Moves queued deliveries to the client while its receive window and outbound buffer have room. */
  pump(session: Session): void {
    const client = session.client
    if (!client || client.state !== 'connected') return
    const limit = this.limits.maxOutboundBufferBytes
    while (session.queue.length > 0 && client.outbound.bufferedBytes < limit) {
      const next = session.queue.peek()!
      if (next.qos > 0 && session.inflight.size >= client.sendWindow) break // [MQTT-3.3.4-9] the server keeps within the client's Receive Maximum
      session.dequeue()
      this.transmit(session, client, next)
    }
  }

  /**
   * A client resumed its session: every unacknowledged PUBLISH is sent again with DUP set, PUBRELs for those
   * past PUBREC, in their original order [MQTT-4.4.0-1]; then the queue moves on.
   */
  resend(session: Session, client: Attachment): void {
    // (A new session has nothing in flight: no iterator made for it.)
    if (session.inflight.size > 0) this.resendInflight(session, client)
    this.pump(session)
  }

  private resendInflight(session: Session, client: Attachment): void {
    for (const [id, delivery] of session.inflight) {
      if (delivery.awaiting === 'pubcomp') client.send({ cmd: 'pubrel', messageId: id })
      else if (!client.sendPublish(delivery, id, true)) this.forget(session, id)
    }
  }

  /** The client acknowledged (or can never get) the message with this packet id: the slot is free again. */
  forget(session: Session, packetId: number): void {
    const delivery = session.inflight.get(packetId)
    if (!delivery) return
    session.deleteInflight(packetId)
    if (delivery.seq) this.plugins.sessionStore?.deleteDelivery(session.clientId, delivery.seq)
  }

  /** PUBREC arrived for a QoS 2 message: now waiting for PUBCOMP. */
  received(session: Session, packetId: number): void {
    const delivery = session.inflight.get(packetId)
    if (!delivery) return
    delivery.awaiting = 'pubcomp'
    if (delivery.seq) this.store(session, delivery, packetId, 'pubcomp')
  }

  /** An inbound QoS 2 message was accepted (PUBREC sent) or released (PUBREL received). */
  inboundQoS2(session: Session, packetId: number, open: boolean): boolean {
    const store = session.persistent ? this.plugins.sessionStore : undefined
    if (open) {
      ;(session.awaitingRelease ??= new Set()).add(packetId)
      store?.saveReceived(session.clientId, packetId)
      return true
    }
    const known = session.awaitingRelease?.delete(packetId) ?? false
    if (known) store?.deleteReceived(session.clientId, packetId)
    return known
  }

  private transmit(session: Session, client: Attachment, delivery: Delivery): void {
    if (delivery.qos === 0) {
      client.sendPublish(delivery, 0, false)
      return
    }
    const id = session.nextPacketId()
    const awaiting = delivery.qos === 1 ? 'puback' : 'pubrec'
    delivery.awaiting = awaiting
    session.setInflight(id, delivery)
    if (client.sendPublish(delivery, id, false)) this.store(session, delivery, id, awaiting)
    else this.forget(session, id)
  }

  /** Records a queued or in-flight QoS 1/2 delivery of a persistent session in the session store. */
  private store(session: Session, delivery: Delivery, packetId: number, state: 'queued' | 'puback' | 'pubrec' | 'pubcomp'): void {
    const store = this.plugins.sessionStore
    if (!store || !session.persistent) return
    delivery.seq ||= ++session.lastSeq
    const { message, qos, retain, subscriptionIds, seq } = delivery
    store.saveDelivery(session.clientId, { seq, packetId, state, qos, retain, subscriptionIds, message: own(message) })
  }
}
