/**
 * What the specification requires a receiver to check and mqtt-packet's lenient parser lets through: the one
 * validation step between decoding and the handlers. Framing checks what decoding hides: lengths (codec.ts),
 * repeated and flag properties (properties.ts), UTF-8 strings (bytes.ts); topic names and filters are checked in
 * validate.ts, where the handlers need them.
 *
 * Each rule throws MqttError with the reason code the spec gives: Malformed Packet (0x81) for what cannot be a
 * valid packet of its type, Protocol Error (0x82) for a valid packet the rules forbid. MQTT 3.1.1 clients are
 * closed without a word; MQTT 5 clients get the code first (section 4.13).
 */
import { MqttError } from '../errors.ts'
import type { Packet, ProtocolVersion } from './codec.ts'
import { Reason } from './reason.ts'

/** The properties a client may send in each packet (MQTT 5.0 section 2.2.2.2); a repeat is refused at framing (properties.ts). */
type Allowed = ReadonlySet<string>
const names = (...list: string[]): Allowed => new Set(list)

const WILL = names('willDelayInterval', 'payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'userProperties')
const ACK = names('reasonString', 'userProperties')

const ALLOWED: Readonly<Record<string, Allowed>> = {
  connect: names('sessionExpiryInterval', 'authenticationMethod', 'authenticationData', 'requestProblemInformation', 'requestResponseInformation', 'receiveMaximum', 'topicAliasMaximum', 'userProperties', 'maximumPacketSize'),
  publish: names('payloadFormatIndicator', 'messageExpiryInterval', 'contentType', 'responseTopic', 'correlationData', 'topicAlias', 'userProperties'),
  puback: ACK,
  pubrec: ACK,
  pubrel: ACK,
  pubcomp: ACK,
  subscribe: names('subscriptionIdentifier', 'userProperties'),
  unsubscribe: names('userProperties'),
  disconnect: names('sessionExpiryInterval', 'reasonString', 'serverReference', 'userProperties'),
  auth: names('authenticationMethod', 'authenticationData', 'reasonString', 'userProperties'),
}

/** Checks one decoded packet from a client; throws MqttError on the first rule it breaks. */
export function checkPacket(packet: Packet, version: ProtocolVersion): void {
  switch (packet.cmd) {
    case 'publish':
      // [MQTT-3.3.1-2] DUP must be 0 on a QoS 0 message.
      if (packet.qos === 0 && packet.dup) throw new MqttError(Reason.MalformedPacket, 'DUP set on a QoS 0 PUBLISH')
      if (packet.qos > 0) checkPacketId(packet.messageId, 'PUBLISH')
      if (version === 5 && packet.properties) {
        // [MQTT-3.3.4-6] only the server sends a Subscription Identifier in PUBLISH.
        if (packet.properties.subscriptionIdentifier !== undefined) throw new MqttError(Reason.ProtocolError, 'Subscription Identifier in a PUBLISH from a client')
        checkProperties(packet.properties, ALLOWED.publish!, 'publish')
        checkMessageProperties(packet.properties, 'PUBLISH')
      }
      return
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      checkPacketId(packet.messageId, packet.cmd)
      if (version === 5 && packet.properties) checkProperties(packet.properties, ALLOWED[packet.cmd]!, packet.cmd)
      return
    case 'subscribe':
    case 'unsubscribe':
      checkPacketId(packet.messageId, packet.cmd)
      if (version === 5 && packet.properties) checkProperties(packet.properties, ALLOWED[packet.cmd]!, packet.cmd)
      return
    case 'disconnect':
    case 'auth':
      if (version === 5 && packet.properties) checkProperties(packet.properties, ALLOWED[packet.cmd]!, packet.cmd)
      return
    case 'connect':
      return checkConnect(packet, version)
  }
}

function checkConnect(packet: Extract<Packet, { cmd: 'connect' }>, version: ProtocolVersion): void {
  // 3.1.1's [MQTT-3.1.2-22]: a password needs a user name; MQTT 5 allows one alone (section 3.1.2.9).
  if (version !== 5 && packet.password !== undefined && packet.username === undefined) throw new MqttError(Reason.ProtocolError, 'password without a user name')
  if (version === 5 && packet.properties) checkProperties(packet.properties, ALLOWED.connect!, 'connect')
  const will = packet.will
  if (!will) return
  if ((will.qos as number) > 2) throw new MqttError(Reason.MalformedPacket, 'will QoS 3') // [MQTT-3.1.2-12]
  if (version === 5 && will.properties) {
    checkProperties(will.properties, WILL, 'will')
    checkMessageProperties(will.properties, 'will')
  }
}

/** [MQTT-2.2.1-3] a packet identifier is 1..65535 (mqtt-packet gives -1 when the body has no room for one). */
function checkPacketId(id: number | undefined, cmd: string): void {
  if (id === undefined || !Number.isInteger(id) || id < 1 || id > 65535) throw new MqttError(Reason.MalformedPacket, `${cmd.toUpperCase()} without a valid packet identifier`)
}

/**
 * Section 2.2.2.2: a property its packet may not carry is a Malformed Packet, and so is a value mqtt-packet could
 * not read whole (a string or binary cut short comes back null, a number -1).
 */
function checkProperties(properties: object, allowed: Allowed, where: string): void {
  // for-in, not Object.entries: no arrays made for a PUBLISH that carries properties.
  for (const name in properties) {
    const value = (properties as Record<string, unknown>)[name]
    if (!allowed.has(name)) throw new MqttError(Reason.MalformedPacket, `property ${name} is not allowed in ${label(where)}`)
    if (value === null || value === undefined || value === -1) throw new MqttError(Reason.MalformedPacket, `property ${name} in ${label(where)} is cut short`)
  }
}

/** How an error names where it was: the packet, or the will. */
const label = (where: string) => (where === 'will' ? 'the will' : where.toUpperCase())

/** Rules on the values of the properties a message carries (PUBLISH and will). */
function checkMessageProperties(properties: { responseTopic?: string }, where: string): void {
  const topic = properties.responseTopic
  // [MQTT-3.3.2-14] the Response Topic is a topic name: no wildcards.
  if (topic !== undefined && (topic.includes('+') || topic.includes('#'))) throw new MqttError(Reason.ProtocolError, `response topic of ${where} contains a wildcard`)
}
