import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import type { UnsubscribePacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'
import { parseSharedFilter, topicFilterError } from '../protocol/validate.ts'

/** UNSUBSCRIBE: remove each filter; UNSUBACK carries one reason code per filter in MQTT 5 [MQTT-3.11.3-1]. */
export function handleUnsubscribe(client: Client, packet: UnsubscribePacket): void {
  if (packet.unsubscriptions.length === 0) throw new MqttError(Reason.ProtocolError, 'UNSUBSCRIBE without topic filters') // [MQTT-3.10.3-2]
  const session = client.session!
  const limits = client.broker.limits
  // An invalid filter gets 0x8F per filter, as in SUBACK (MQTT 5.0 section 3.11.3); ill-formed strings were refused at decoding.
  const codes = packet.unsubscriptions.map((filter) => {
    const shared = parseSharedFilter(filter)
    if (typeof shared === 'string' || topicFilterError(shared ? shared.filter : filter, limits)) return Reason.TopicFilterInvalid
    return client.broker.unsubscribe(session, filter) ? Reason.Success : Reason.NoSubscriptionExisted
  })
  client.send({ cmd: 'unsuback', messageId: packet.messageId!, granted: client.version === 5 ? codes : [] })
}
