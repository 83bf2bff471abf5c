import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import type { DisconnectPacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'

export function handlePingreq(client: Client): void {
  client.send({ cmd: 'pingresp' }) // [MQTT-3.12.4-1]
}

export function handleDisconnect(client: Client, packet: DisconnectPacket): void {
  const session = client.session
  const reasonCode = packet.reasonCode ?? 0
  if (session) {
    const requested = packet.properties?.sessionExpiryInterval
    if (requested !== undefined) {
      // Section 3.14.2.2.2: a session that was to end with the connection cannot be revived on DISCONNECT.
      if (session.expiryInterval === 0 && requested !== 0) {
        throw new MqttError(Reason.ProtocolError, 'session expiry set on DISCONNECT after 0 on CONNECT')
      }
      client.broker.setSessionExpiry(session, requested)
    }
    // [MQTT-3.14.4-3] a normal DISCONNECT discards the will; 0x04 asks for it to be published.
    if (!(client.version === 5 && reasonCode === Reason.DisconnectWithWill)) session.will = undefined
  }
  client.close(reasonCode === 0 ? 'client disconnected' : `client disconnected with reason 0x${reasonCode.toString(16)}`)
}
