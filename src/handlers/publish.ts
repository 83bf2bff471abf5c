/**
 * Inbound PUBLISH: resolve the topic alias, validate the topic, screen duplicates and the receive window,
 * route, then acknowledge (QoS 1: PUBACK, QoS 2: PUBREC; delivery happens on PUBLISH, "method A" of 4.3.3).
 */
import { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import type { PublishPacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'
import { topicNameError } from '../protocol/validate.ts'

export function handlePublish(client: Client, packet: PublishPacket): void {
  const broker = client.broker
  const session = client.session!
  broker.stats.messagesReceived++
  if (client.version === 5) resolveTopicAlias(client, packet)

  const error = topicNameError(packet.topic, broker.config.limits)
  if (error) throw new MqttError(Reason.TopicNameInvalid, `invalid topic name: ${error}`) // [MQTT-3.3.2-2]

  const id = packet.messageId ?? 0
  if (packet.qos > 0 && id === 0) throw new MqttError(Reason.MalformedPacket, 'packet identifier 0') // [MQTT-2.2.1-2]
  if (packet.qos === 2) {
    if (session.awaitingRelease.has(id)) {
      // [MQTT-4.3.3-10] a resent QoS 2 PUBLISH is acknowledged again but not delivered twice.
      client.send({ cmd: 'pubrec', messageId: id })
      return
    }
    if (session.awaitingRelease.size >= broker.config.limits.receiveMaximum) {
      throw new MqttError(Reason.ReceiveMaximumExceeded, 'receive maximum exceeded') // [MQTT-3.3.4-9]
    }
  }

  let reasonCode: number = Reason.Success
  let reasonString: string | undefined
  if (packet.topic.startsWith('$SYS/') || packet.topic === '$SYS') {
    // Clients do not write the broker's own topics (as in Mosquitto); the message is dropped.
    reasonCode = Reason.NotAuthorized
    reasonString = '$SYS topics are written by the broker only'
  } else {
    const message = Client.message(client.clientId, packet, Date.now())
    const reached = broker.route(message)
    if (message.retain) broker.retain(message)
    if (reached === 0) reasonCode = Reason.NoMatchingSubscribers
  }

  if (packet.qos === 0) return
  if (packet.qos === 2 && reasonCode < 0x80) session.awaitingRelease.add(id)
  const cmd = packet.qos === 1 ? 'puback' : 'pubrec' // [MQTT-4.3.2-2], [MQTT-4.3.3-8]
  if (client.version !== 5) return client.send({ cmd, messageId: id })
  // MQTT 5.0 section 3.4.2.2.2: a reason string only when the client has not asked us to leave them out.
  const properties = reasonString && client.requestProblemInformation ? { reasonString } : undefined
  client.send({ cmd, messageId: id, reasonCode, properties })
}

/** MQTT 5.0 section 3.3.2.3.4: alias 0 or above our maximum is invalid; an empty topic needs a known alias. */
function resolveTopicAlias(client: Client, packet: PublishPacket): void {
  const alias = packet.properties?.topicAlias
  if (alias === undefined) return
  const max = client.broker.config.limits.topicAliasMaximum
  if (alias === 0 || alias > max) throw new MqttError(Reason.TopicAliasInvalid, `topic alias ${alias} outside 1..${max}`) // [MQTT-3.3.2-8, -9]
  client.incomingAliases ??= new Map()
  if (packet.topic === '') {
    const topic = client.incomingAliases.get(alias)
    if (topic === undefined) throw new MqttError(Reason.ProtocolError, `unknown topic alias ${alias}`)
    packet.topic = topic
  } else {
    client.incomingAliases.set(alias, packet.topic)
  }
}
