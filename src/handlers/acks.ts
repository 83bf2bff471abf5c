/** Acknowledgements: PUBACK/PUBREC/PUBCOMP for what the broker sent, PUBREL for what it received. */
import type { Client } from '../client.ts'
import type { PubackPacket, PubcompPacket, PubrecPacket, PubrelPacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'

export function handlePuback(client: Client, packet: PubackPacket): void {
  const session = client.session!
  const id = packet.messageId ?? 0
  const delivery = session.inflight.get(id)
  if (delivery?.awaiting !== 'puback') return ignoreUnknown(client, 'PUBACK', id)
  client.broker.acknowledged(session, id)
}

export function handlePubrec(client: Client, packet: PubrecPacket): void {
  const session = client.session!
  const id = packet.messageId ?? 0
  const delivery = session.inflight.get(id)
  if (!delivery || delivery.awaiting === 'puback') {
    // (section 4.3.3) answer with PUBREL anyway so the client can finish; v5 says the id is unknown.
    client.send({ cmd: 'pubrel', messageId: id, reasonCode: client.version === 5 ? Reason.PacketIdentifierNotFound : undefined })
    return
  }
  if ((packet.reasonCode ?? 0) >= 0x80) {
    // MQTT 5.0 section 4.3.3: a PUBREC with an error code ends the exchange.
    client.broker.acknowledged(session, id)
    return
  }
  client.broker.received(session, id)
  client.send({ cmd: 'pubrel', messageId: id }) // [MQTT-4.3.3-4]
}

export function handlePubcomp(client: Client, packet: PubcompPacket): void {
  const session = client.session!
  const id = packet.messageId ?? 0
  const delivery = session.inflight.get(id)
  if (delivery?.awaiting !== 'pubcomp') return ignoreUnknown(client, 'PUBCOMP', id)
  client.broker.acknowledged(session, id)
}

export function handlePubrel(client: Client, packet: PubrelPacket): void {
  const session = client.session!
  const id = packet.messageId ?? 0
  const known = client.broker.inboundQoS2(session, id, false) // [MQTT-4.3.3-11] the id may now be reused
  const reasonCode = client.version === 5 && !known ? Reason.PacketIdentifierNotFound : undefined
  client.send({ cmd: 'pubcomp', messageId: id, reasonCode }) // [MQTT-4.3.3-11]
}

function ignoreUnknown(client: Client, what: string, id: number): void {
  client.broker.logger.debug('client.unknown_ack', { clientId: client.clientId, packet: what, packetId: id })
}
