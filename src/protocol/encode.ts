/** Encoding: one packet into one exact-size buffer, with mqtt-packet's writer and no per-packet garbage of its own. */
import { mqttPacket } from './mqtt-packet.ts'
import type { Packet, ProtocolVersion } from './codec.ts'

/** Chunks up to this many bytes (or characters) are copied by a loop. */
const SMALL = 16

/**
 * The stream mqtt-packet's writeToStream writes a packet into, chunk by chunk: one scratch buffer reused for
 * every packet, which then leaves as one exact-size copy. (mqtt-packet's own generate() builds an
 * EventEmitter, two arrays and a list of the chunks for every packet, then concatenates them.)
 */
class PacketWriter {
  private static readonly SIZE = 16 * 1024
  private scratch = Buffer.allocUnsafe(PacketWriter.SIZE)
  private at = 0
  private error: Error | null = null
  private readonly options = [3, 4, 5].map((protocolVersion) => ({ protocolVersion }))

  encode(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
    this.at = 0
    this.error = null
    mqttPacket.writeToStream(packet, this as unknown as NodeJS.WritableStream, this.options[protocolVersion - 3])
    const error = this.error as Error | null
    if (error) throw error
    const bytes = Buffer.allocUnsafe(this.at)
    this.scratch.copy(bytes, 0, 0, this.at)
    // A large packet grew the scratch buffer: let that memory go rather than keep it for good.
    if (this.scratch.length > PacketWriter.SIZE) this.scratch = Buffer.allocUnsafe(PacketWriter.SIZE)
    return bytes
  }

  /**
   * writeToStream's chunks: header bytes, cached numbers, strings (UTF-8), payloads. Most are a few bytes, and a
   * byte loop copies those faster than TypedArray.set or Buffer.write, which cost ~12-25 ns each call.
   */
  write(chunk: Buffer | string): boolean {
    if (typeof chunk === 'string') {
      this.reserve(chunk.length * 3) // the most UTF-8 bytes a JS string of that length can take
      if (chunk.length <= SMALL) {
        let i = 0
        for (; i < chunk.length; i++) {
          const code = chunk.charCodeAt(i)
          if (code >= 0x80) break
          this.scratch[this.at + i] = code
        }
        if (i === chunk.length) {
          this.at += i
          return true
        }
      }
      this.at += this.scratch.write(chunk, this.at) // non-ASCII (from the start again) or long
    } else {
      this.reserve(chunk.length)
      if (chunk.length <= SMALL) for (let i = 0; i < chunk.length; i++) this.scratch[this.at + i] = chunk[i]!
      else this.scratch.set(chunk, this.at)
      this.at += chunk.length
    }
    return true
  }

  /** writeToStream's way of saying the packet is invalid. */
  destroy(error?: Error): void {
    this.error ??= error ?? new Error('invalid packet')
  }

  private reserve(bytes: number): void {
    if (this.at + bytes <= this.scratch.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.scratch.length * 2, this.at + bytes))
    this.scratch.copy(grown, 0, 0, this.at)
    this.scratch = grown
  }
}

const writer = new PacketWriter()

/** Encodes one packet into one buffer for the given protocol version; throws if the packet is invalid. */
export function encode(packet: Packet, protocolVersion: ProtocolVersion): Buffer {
  return writer.encode(packet, protocolVersion)
}
