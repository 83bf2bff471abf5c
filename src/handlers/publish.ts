/**
 * Inbound PUBLISH: resolve the topic alias, validate the topic, screen duplicates and the receive window,
 * route, then acknowledge (QoS 1: PUBACK, QoS 2: PUBREC; delivery happens on PUBLISH, "method A" of 4.3.3).
 */
import type { Client } from '../client.ts'
import { RouteCache } from '../delivery/matches.ts'
import { MqttError } from '../errors.ts'
import { messageOfPacket } from '../message.ts'
import { type PublishPacket, topicLengthAt } from '../protocol/codec.ts'
import { Reason, type ReasonCode, refusalCode } from '../protocol/reason.ts'
import { topicBytesError, topicNameError } from '../protocol/validate.ts'
import { publish, type PublishResult } from '../publish.ts'

export function handlePublish(client: Client, packet: PublishPacket): void | Promise<void> {
  const broker = client.broker
  const session = client.session!
  if (client.rate) client.rate.take(1, 0, broker.clock.now()) // counted now, enforced after the read (Client.limitRate)
  if (client.version === 5) resolveTopicAlias(client, packet)

  // A client mostly publishes to the topic it published to last: that one was valid then and is valid now. (A
  // topic taken from an alias was checked when the alias was set; the decoder saw the one it came with.) A topic
  // the decoder left in bytes is checked there.
  const topicAt = packet.topic === '' ? packet.topicAt : undefined // only a topic left in bytes reads as ''
  if (topicAt !== undefined || packet.topic !== client.lastTopicName) {
    const error = topicAt !== undefined ? topicBytesError(packet.forwardable!, topicAt, topicLengthAt(packet.forwardable!, topicAt), broker.limits) : topicNameError(packet.topic, broker.limits, packet.topicClean)
    if (error) throw new MqttError(Reason.TopicNameInvalid, `invalid topic name: ${error}`) // [MQTT-3.3.2-2], [MQTT-4.7.3-1]
    if (topicAt === undefined) client.lastTopicName = packet.topic
  }

  const id = packet.messageId ?? 0 // 1..65535 when QoS > 0 (check.ts)
  if (packet.qos === 2) {
    const awaiting = session.awaitingRelease
    if (awaiting?.has(id)) {
      // [MQTT-4.3.3-10] a resent QoS 2 PUBLISH is acknowledged again but not delivered twice.
      client.send({ cmd: 'pubrec', messageId: id })
      return
    }
    if (awaiting && awaiting.size >= broker.limits.receiveMaximum) {
      throw new MqttError(Reason.ReceiveMaximumExceeded, 'receive maximum exceeded') // the client broke [MQTT-3.3.4-7]: DISCONNECT 0x93 (section 3.3.4)
    }
  }

  const maxPayload = client.granted?.maxPayloadBytes ?? broker.limits.maxPayloadBytes
  if (maxPayload > 0 && packet.payload.length > maxPayload) {
    // Within the packet size, but over the payload limit: refused (MQTT 5: 0x97 Quota exceeded; QoS 0 dropped), the connection stays.
    broker.stats.payloadRefused++
    return acknowledge(client, packet, { accepted: false, reasonCode: Reason.QuotaExceeded, reasonString: `payload over ${maxPayload} bytes` })
  }
  const message = messageOfPacket(packet, client.clientId, broker.clock, broker.limits.maxMessageExpirySeconds, client.version)
  const result = publish(broker, message, client, (client.routeCache ??= new RouteCache()))
  if (result instanceof Promise) return acknowledgeLater(client, packet, result)
  acknowledge(client, packet, result)
}

/** acknowledge() once a plugin decision settles (apart, so handlePublish creates no closures). */
function acknowledgeLater(client: Client, packet: PublishPacket, result: Promise<PublishResult>): Promise<void> {
  return result.then((r) => acknowledge(client, packet, r))
}

/**
 * Answers the PUBLISH once core publish() has taken or refused it: QoS 1 PUBACK, QoS 2 PUBREC. A refused QoS 0
 * message is dropped silently; a refused QoS 1/2 one is acknowledged with the reason code in MQTT 5 (0x87 unless
 * the plugin says).
 */
function acknowledge(client: Client, packet: PublishPacket, result: PublishResult): void {
  if (client.state !== 'connected' || packet.qos === 0) return
  let reasonCode: number
  let reasonString: string | undefined
  if (result.accepted) {
    reasonCode = result.reached === 0 ? Reason.NoMatchingSubscribers : Reason.Success
  } else {
    reasonCode = refusalCode('puback', result.reasonCode, Reason.NotAuthorized)
    reasonString = result.reasonString
    if (client.version !== 5 && reasonCode !== Reason.NotAuthorized && reasonCode !== Reason.QuotaExceeded) {
      // 3.1.1 has no way to say "not accepted" but to close: an ACL or payload-limit refusal is acknowledged and
      // dropped (as Mosquitto does), but a broker that cannot take the message (e.g. its cluster is down) must not ack it.
      throw new MqttError(reasonCode as ReasonCode, reasonString ?? 'the message could not be accepted')
    }
  }
  const id = packet.messageId!
  if (packet.qos === 2 && reasonCode < 0x80) client.broker.inboundQoS2(client.session!, id, true)
  const cmd: 'puback' | 'pubrec' = packet.qos === 1 ? 'puback' : 'pubrec' // [MQTT-4.3.2-4], [MQTT-4.3.3-8]
  // MQTT 5.0 section 3.4.2.2.2: a reason string only when the client has not asked us to leave them out.
  const properties = reasonString && client.requestProblemInformation ? { reasonString } : undefined
  // With a persistent store, acknowledge only once what this message changed is on disk (a refusal changed nothing).
  client.sendAck(cmd, id, reasonCode, properties, result.accepted ? result.durable : null)
}

/** MQTT 5.0 section 3.3.2.3.4: alias 0 or above our maximum is invalid; an empty topic needs a known alias. */
function resolveTopicAlias(client: Client, packet: PublishPacket): void {
  const alias = packet.properties?.topicAlias
  if (alias === undefined) return
  const max = client.broker.limits.topicAliasMaximum
  if (alias === 0 || alias > max) throw new MqttError(Reason.TopicAliasInvalid, `topic alias ${alias} outside 1..${max}`) // [MQTT-3.3.2-8, -9]
  const incoming = ((client.aliases ??= { outgoingMax: 0, outgoing: null, incoming: null }).incoming ??= new Map())
  if (packet.topic === '') {
    const topic = incoming.get(alias)
    if (topic === undefined) throw new MqttError(Reason.ProtocolError, `unknown topic alias ${alias}`)
    packet.topic = topic
  } else {
    incoming.set(alias, packet.topic)
  }
}
