/**
 * Bun's own floor, for comparison only (`--brokers relay,relay-codec`): the least an MQTT broker on Bun.listen
 * can do. It frames packets by hand, answers CONNECT, SUBSCRIBE and PINGREQ, and copies every PUBLISH as-is to
 * every other subscribed connection (PUBACK for QoS 1). No sessions, no topic matching: not a broker, just the
 * runtime's cost of reading and writing the same bytes, so Midge's own cost can be told from Bun's. With
 * `--codec` it also decodes each PUBLISH and encodes it again with mqtt-packet (through Midge's codec), which
 * is the floor for any broker built on that codec.
 *
 *   bun bench/relay.ts <port> [--codec]
 */
import type { Socket } from 'bun'
import { type Packet, PacketReader } from '../src/protocol/codec.ts'
import { encode } from '../src/protocol/encode.ts'

type Conn = Socket<{ pending: Uint8Array }>

const port = Number(Bun.argv[2])
const codec = Bun.argv.includes('--codec')
let decoded: Packet | null = null
const reader = new PacketReader(1 << 20, { onPacket: (packet) => (decoded = packet), onParseError: (error) => console.error(error) })
if (codec) reader.feed(encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'relay', clean: true, keepalive: 0 }, 4))

/** The PUBLISH to forward: as received, or (with --codec) decoded and encoded again by mqtt-packet. */
function forwarded(bytes: Uint8Array): Uint8Array {
  if (!codec) return bytes
  reader.feed(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))
  return encode(decoded!, 4)
}
const subscribers = new Set<Conn>()
const CONNACK = new Uint8Array([0x20, 2, 0, 0])
const PINGRESP = new Uint8Array([0xd0, 0])

function onPacket(socket: Conn, bytes: Uint8Array, bodyAt: number): void {
  const type = bytes[0]! >> 4
  if (type === 1) socket.write(CONNACK)
  else if (type === 12) socket.write(PINGRESP)
  else if (type === 8) {
    subscribers.add(socket) // SUBACK granting the requested QoS of the last filter
    socket.write(new Uint8Array([0x90, 3, bytes[bodyAt]!, bytes[bodyAt + 1]!, bytes[bytes.length - 1]! & 3]))
  } else if (type === 3) {
    const out = forwarded(bytes)
    for (const other of subscribers) if (other !== socket) other.write(out)
    if (((bytes[0]! >> 1) & 3) === 1) {
      const idAt = bodyAt + 2 + ((bytes[bodyAt]! << 8) | bytes[bodyAt + 1]!)
      socket.write(new Uint8Array([0x40, 2, bytes[idAt]!, bytes[idAt + 1]!]))
    }
  }
}

Bun.listen<{ pending: Uint8Array }>({
  hostname: '127.0.0.1',
  port,
  socket: {
    open(socket) {
      socket.data = { pending: new Uint8Array(0) }
    },
    close(socket) {
      subscribers.delete(socket)
    },
    data(socket, chunk) {
      let buf: Uint8Array = chunk
      if (socket.data.pending.length > 0) {
        buf = new Uint8Array(socket.data.pending.length + chunk.length)
        buf.set(socket.data.pending)
        buf.set(chunk, socket.data.pending.length)
      }
      let at = 0
      for (;;) {
        let remaining = 0
        let multiplier = 1
        let i = at + 1
        for (; i < buf.length; i++) {
          remaining += (buf[i]! & 0x7f) * multiplier
          if ((buf[i]! & 0x80) === 0) break
          multiplier *= 128
        }
        if (i >= buf.length) break // the remaining length has not all arrived
        const end = i + 1 + remaining
        if (end > buf.length) break
        onPacket(socket, buf.subarray(at, end), i + 1 - at)
        at = end
      }
      socket.data.pending = at < buf.length ? buf.slice(at) : new Uint8Array(0)
    },
  },
})
