/**
 * The only importer of mqtt-packet. One parser per connection, fed every chunk; packets come out synchronously.
 * mqtt-packet has no size guard, so the parser is checked after every chunk: a packet whose fixed header
 * announces more than the limit is refused before its body is buffered past one read.
 */
import mqttPacket from 'mqtt-packet'
import type { Packet } from 'mqtt-packet'

export type {
  IAuthPacket as AuthPacket,
  IConnackPacket as ConnackPacket,
  IConnectPacket as ConnectPacket,
  IDisconnectPacket as DisconnectPacket,
  IPublishPacket as PublishPacket,
  ISubscribePacket as SubscribePacket,
  IUnsubscribePacket as UnsubscribePacket,
  IPubackPacket as PubackPacket,
  IPubrecPacket as PubrecPacket,
  IPubrelPacket as PubrelPacket,
  IPubcompPacket as PubcompPacket,
  Packet,
  QoS,
  UserProperties,
} from 'mqtt-packet'

export type ProtocolVersion = 3 | 4 | 5

export class PacketTooLargeError extends Error {
  override readonly name = 'PacketTooLargeError'
}

export interface PacketSink {
  packet(packet: Packet): void
  error(error: Error): void
}

interface MqttPacketParser {
  parse(buf: Buffer): number
  on(event: 'packet', fn: (p: Packet) => void): void
  on(event: 'error', fn: (e: Error) => void): void
  /** mqtt-packet internals: the packet being assembled; `length` is its remaining length once known, else -1. */
  packet: { length: number }
}

/** Size of a whole packet: fixed-header byte, remaining-length bytes, body. */
export function packetSize(remainingLength: number): number {
  const lengthBytes = remainingLength < 128 ? 1 : remainingLength < 16_384 ? 2 : remainingLength < 2_097_152 ? 3 : 4
  return 1 + lengthBytes + remainingLength
}

export class PacketReader {
  private readonly parser: MqttPacketParser
  private failed = false

  constructor(
    private readonly maxPacketSize: number,
    private readonly sink: PacketSink,
  ) {
    this.parser = mqttPacket.parser() as unknown as MqttPacketParser
    this.parser.on('packet', (packet) => {
      if (this.failed) return
      if (packetSize(packet.length ?? 0) > this.maxPacketSize) return this.fail(tooLarge(packet.length ?? 0, this.maxPacketSize))
      this.sink.packet(packet)
    })
    this.parser.on('error', (error) => this.fail(error))
  }

  feed(chunk: Buffer): void {
    if (this.failed) return
    this.parser.parse(chunk)
    const pending = this.parser.packet.length
    if (!this.failed && pending > 0 && packetSize(pending) > this.maxPacketSize) this.fail(tooLarge(pending, this.maxPacketSize))
  }

  private fail(error: Error): void {
    if (this.failed) return
    this.failed = true
    this.sink.error(error)
  }
}

function tooLarge(remaining: number, max: number): PacketTooLargeError {
  return new PacketTooLargeError(`packet of ${packetSize(remaining)} bytes exceeds the maximum of ${max}`)
}

/** Encodes one packet into one buffer for the given protocol version. */
export function encode(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  return mqttPacket.generate(packet, { protocolVersion })
}
