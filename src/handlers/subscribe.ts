/**
 * SUBSCRIBE: validate each filter, add or replace the subscription [MQTT-3.8.4-3], answer SUBACK with one code
 * per filter in order [MQTT-3.8.4-6], then send matching retained messages as Retain Handling asks.
 */
import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import type { QoS, SubscribePacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'
import { parseSharedFilter, topicFilterError } from '../protocol/validate.ts'
import type { Subscription } from '../topics/trie.ts'

export function handleSubscribe(client: Client, packet: SubscribePacket): void {
  const broker = client.broker
  const session = client.session!
  const v5 = client.version === 5
  if (!packet.messageId) throw new MqttError(Reason.MalformedPacket, 'packet identifier 0') // [MQTT-2.2.1-3]
  if (packet.subscriptions.length === 0) throw new MqttError(Reason.ProtocolError, 'SUBSCRIBE without topic filters') // [MQTT-3.8.3-3]
  const identifier = packet.properties?.subscriptionIdentifier ?? 0
  if (v5 && packet.properties?.subscriptionIdentifier === 0) {
    throw new MqttError(Reason.ProtocolError, 'subscription identifier 0') // [MQTT-3.8.2-? 3.8.2.1.2]
  }
  const granted: number[] = []
  const retainedFor: Subscription[] = []
  for (const request of packet.subscriptions) {
    const invalid = v5 ? Reason.TopicFilterInvalid : 0x80
    const shared = parseSharedFilter(request.topic)
    if (typeof shared === 'string') {
      granted.push(invalid)
      continue
    }
    const filter = shared ? shared.filter : request.topic
    if (topicFilterError(filter, broker.config.limits)) {
      granted.push(invalid)
      continue
    }
    if (shared && request.nl) throw new MqttError(Reason.ProtocolError, 'no local on a shared subscription') // [MQTT-3.8.3-4]
    const sub: Subscription = {
      clientId: client.clientId,
      filter,
      qos: request.qos as QoS,
      noLocal: v5 && request.nl === true,
      retainAsPublished: v5 && request.rap === true,
      retainHandling: v5 ? ((request.rh ?? 0) as 0 | 1 | 2) : 0,
      identifier,
      group: shared ? shared.group : undefined,
    }
    const existed = broker.subscribe(session, sub)
    granted.push(sub.qos)
    // [MQTT-3.3.1-9..11] retained messages: rh 0 always, rh 1 for a new subscription, rh 2 never; never to a shared subscription.
    if (!shared && (sub.retainHandling === 0 || (sub.retainHandling === 1 && !existed))) retainedFor.push(sub)
  }
  client.send({ cmd: 'suback', messageId: packet.messageId, granted })
  for (const sub of retainedFor) broker.sendRetained(session, sub)
}
