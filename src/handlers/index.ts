import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import { checkPacket } from '../protocol/check.ts'
import type { Packet } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from './acks.ts'
import { handleConnect } from './connect.ts'
import { handleAuth } from './auth.ts'
import { handleDisconnect, handlePingreq } from './control.ts'
import { handlePublish } from './publish.ts'
import { handleSubscribe } from './subscribe.ts'
import { handleUnsubscribe } from './unsubscribe.ts'

/**
 * Checks one parsed packet (protocol/check.ts), then routes it to its handler; throws MqttError on a protocol violation.
 * Returns a Promise while a plugin decision is pending: the client holds its later packets until it settles.
 */
export function dispatch(client: Client, packet: Packet): void | Promise<void> {
  if (client.state === 'connecting') {
    // [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
    if (packet.cmd !== 'connect') throw new MqttError(Reason.ProtocolError, `${packet.cmd} before CONNECT`)
    client.version = packet.protocolVersion ?? 4
    checkPacket(packet, client.version)
    return handleConnect(client, packet)
  }
  checkPacket(packet, client.version)
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(client, packet)
    case 'puback':
      return handlePuback(client, packet)
    case 'pubrec':
      return handlePubrec(client, packet)
    case 'pubrel':
      return handlePubrel(client, packet)
    case 'pubcomp':
      return handlePubcomp(client, packet)
    case 'subscribe':
      return handleSubscribe(client, packet)
    case 'unsubscribe':
      return handleUnsubscribe(client, packet)
    case 'pingreq':
      return handlePingreq(client)
    case 'disconnect':
      return handleDisconnect(client, packet)
    case 'auth':
      return handleAuth(client, packet)
    case 'connect':
      throw new MqttError(Reason.ProtocolError, 'second CONNECT') // [MQTT-3.1.0-2]
    default:
      throw new MqttError(Reason.ProtocolError, `${packet.cmd} is not sent by clients`)
  }
}
