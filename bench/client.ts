/**
 * A lean MQTT client for load generation: pre-encoded packets written in large chunks, and a minimal
 * frame scanner for what comes back (PUBLISH, acks), so the generator costs little CPU next to the broker.
 * (The broker itself never uses this: it parses with mqtt-packet.)
 */
import mqttPacket, { type Packet } from 'mqtt-packet'

export const HOST = '127.0.0.1' // load goes to this machine only

/**
 * Waits until something accepts connections on `port`; false if `gaveUp()` says to stop waiting (a process that
 * exited), throws after 10 s.
 */
export async function waitForPort(port: number, gaveUp: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      const s = await Bun.connect({ hostname: HOST, port, socket: { data() {} } })
      s.end()
      return true
    } catch {
      if (gaveUp()) return false
      if (Date.now() > deadline) throw new Error(`nothing listening on ${HOST}:${port}`)
      await Bun.sleep(50)
    }
  }
}

/** A port that is free right now on 127.0.0.1: bind port 0, note the port, close. */
export function freePort(): number {
  const probe = Bun.listen({ hostname: HOST, port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}

export interface Incoming {
  type: number
  qos: number
  packetId: number
  /** PUBLISH payload (a view into the read buffer: copy before keeping). */
  payload: Uint8Array | null
}

export class BenchClient {
  private socket!: Awaited<ReturnType<typeof Bun.connect>>
  private buffer: Uint8Array = new Uint8Array(0)
  private backlog: Uint8Array[] = []
  private drained: (() => void) | null = null
  private waiters = new Map<number, Array<() => void>>()
  closed = false
  onPublish: (message: Incoming) => void = () => {}
  onAck: (type: number, packetId: number) => void = () => {}
  /** Acknowledge incoming QoS 1 messages (PUBACK). */
  autoAck = true

  constructor(readonly version: 3 | 4 | 5) {}

  static async connect(port: number, clientId: string, options: { version?: 4 | 5; clean?: boolean; properties?: Record<string, unknown> } = {}): Promise<BenchClient> {
    const client = new BenchClient(options.version ?? 4)
    client.socket = await Bun.connect({
      hostname: HOST,
      port,
      socket: {
        data: (_s, data) => client.receive(data),
        drain: () => client.flushBacklog(),
        close: () => {
          client.closed = true
        },
        error: () => {
          client.closed = true
        },
      },
    })
    const connack = client.wait(2)
    client.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: client.version, clientId, clean: options.clean ?? true, keepalive: 0, properties: options.properties } as Packet)
    await connack
    return client
  }

  encode(packet: Packet): Buffer {
    return mqttPacket.generate(packet, { protocolVersion: this.version })
  }

  send(packet: Packet): Promise<void> {
    return this.write(this.encode(packet))
  }

  async subscribe(topic: string, qos: 0 | 1 | 2 = 0): Promise<void> {
    const suback = this.wait(9)
    await this.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
    await suback
  }

  /** Writes bytes; resolves once the socket has taken them all (respects backpressure). */
  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (this.backlog.length > 0) {
      this.backlog.push(bytes)
      return new Promise((resolve) => (this.drained = chain(this.drained, resolve)))
    }
    const n = this.socket.write(bytes)
    if (n >= bytes.length) return Promise.resolve()
    this.backlog.push(bytes.subarray(Math.max(0, n)))
    return new Promise((resolve) => (this.drained = chain(this.drained, resolve)))
  }

  private flushBacklog(): void {
    while (this.backlog.length > 0) {
      const next = this.backlog[0]!
      const n = this.socket.write(next)
      if (n < next.length) {
        this.backlog[0] = next.subarray(Math.max(0, n))
        return
      }
      this.backlog.shift()
    }
    const done = this.drained
    this.drained = null
    done?.()
  }

  /** Resolves at the next packet of this type (2 CONNACK, 4 PUBACK, 9 SUBACK, ...). */
  wait(type: number): Promise<void> {
    return new Promise((resolve) => {
      const list = this.waiters.get(type) ?? []
      list.push(resolve)
      this.waiters.set(type, list)
    })
  }

  end(): void {
    this.closed = true
    this.socket.end()
  }

  /** Closes with a TCP reset (SO_LINGER 0): no TIME_WAIT left behind on either side. */
  reset(): void {
    this.closed = true
    this.socket.terminate()
  }

  private receive(data: Uint8Array): void {
    let buf = data
    if (this.buffer.length > 0) {
      const joined = new Uint8Array(this.buffer.length + data.length)
      joined.set(this.buffer)
      joined.set(data, this.buffer.length)
      buf = joined
    }
    let at = 0
    const acks: number[] = []
    for (;;) {
      if (buf.length - at < 2) break
      let length = 0
      let multiplier = 1
      let i = at + 1
      let complete = false
      for (; i < buf.length && i < at + 5; i++) {
        length += (buf[i]! & 127) * multiplier
        multiplier *= 128
        if ((buf[i]! & 128) === 0) {
          complete = true
          break
        }
      }
      if (!complete) break
      const body = i + 1
      if (buf.length < body + length) break
      const type = buf[at]! >> 4
      if (type === 3) {
        const qos = (buf[at]! >> 1) & 3
        const topicLength = (buf[body]! << 8) | buf[body + 1]!
        let p = body + 2 + topicLength
        let packetId = 0
        if (qos > 0) {
          packetId = (buf[p]! << 8) | buf[p + 1]!
          p += 2
        }
        if (this.version === 5) {
          let propLength = 0
          let m = 1
          while (true) {
            const byte = buf[p++]!
            propLength += (byte & 127) * m
            m *= 128
            if ((byte & 128) === 0) break
          }
          p += propLength
        }
        this.onPublish({ type, qos, packetId, payload: buf.subarray(p, body + length) })
        if (qos === 1 && this.autoAck) acks.push(packetId)
      } else {
        const packetId = length >= 2 ? (buf[body]! << 8) | buf[body + 1]! : 0
        if (type === 4 || type === 5 || type === 7) this.onAck(type, packetId)
        const list = this.waiters.get(type)
        if (list?.length) list.shift()!()
      }
      at = body + length
    }
    this.buffer = at < buf.length ? buf.slice(at) : new Uint8Array(0)
    if (acks.length > 0) {
      const out = new Uint8Array(acks.length * 4)
      acks.forEach((id, k) => out.set([0x40, 2, id >> 8, id & 0xff], k * 4))
      void this.write(out)
    }
  }
}

function chain(a: (() => void) | null, b: () => void): () => void {
  return a ? () => (a(), b()) : b
}

/** Bun.nanoseconds-based clock shared by every client of the generator, in ms. */
export const now = () => Bun.nanoseconds() / 1e6
