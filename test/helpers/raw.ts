/**
 * A raw MQTT client on Bun.connect + mqtt-packet, for what MQTT.js will not send:
 * malformed bytes, packets split at any byte, protocol violations, exact packet ids.
 */
import mqttPacket, { type Packet } from 'mqtt-packet'

export type Version = 3 | 4 | 5

export class RawClient {
  /** Packets received and not yet taken by next(). */
  readonly packets: Packet[] = []
  /** Every byte received, as read (see takeBytes). */
  private wire: Buffer[] = []
  private wake: (() => void) | null = null
  closed = false
  private readonly closedPromise: Promise<void>
  private onClose!: () => void

  private constructor(
    private readonly socket: Awaited<ReturnType<typeof Bun.connect<undefined>>> | null,
    readonly version: Version,
  ) {
    this.closedPromise = new Promise((resolve) => (this.onClose = resolve))
  }

  static async open(port: number, version: Version = 4): Promise<RawClient> {
    const parser = mqttPacket.parser({ protocolVersion: version })
    let self: RawClient | null = null
    const pending: Packet[] = []
    const wire: Buffer[] = []
    parser.on('packet', (p: Packet) => {
      if (self) self.push(p)
      else pending.push(p)
    })
    parser.on('error', () => {})
    const socket = await Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        data(_s, data) {
          ;(self?.wire ?? wire).push(Buffer.from(data))
          parser.parse(data)
        },
        close() {
          self?.markClosed()
        },
        error() {
          self?.markClosed()
        },
      },
    })
    self = new RawClient(socket, version)
    self.wire = wire
    for (const p of pending) self.push(p)
    return self
  }

  /**
   * Sends one CONNECT and answers with its CONNACK's code (MQTT 5 reason code, 3.1.1 return code), or 'closed' when
   * the broker closed the connection without one; the connection is then ended.
   */
  static async connackCode(port: number, version: Version, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<number | 'closed'> {
    const c = await RawClient.open(port, version)
    c.send({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clientId: `raw-${Math.random().toString(16).slice(2)}`, clean: true, keepalive: 0, ...connect } as Packet)
    try {
      const ack = (await c.next('connack')) as mqttPacket.IConnackPacket
      return (version === 5 ? ack.reasonCode : ack.returnCode) ?? 0
    } catch {
      return 'closed'
    } finally {
      c.end()
    }
  }

  /** Opens a connection and completes CONNECT/CONNACK. */
  static async connected(port: number, version: Version = 4, connect: Partial<mqttPacket.IConnectPacket> = {}): Promise<RawClient> {
    const c = await RawClient.open(port, version)
    c.send({ cmd: 'connect', protocolId: version === 3 ? 'MQIsdp' : 'MQTT', protocolVersion: version, clientId: `raw-${Math.random().toString(16).slice(2)}`, clean: true, keepalive: 0, ...connect } as Packet)
    const connack = await c.next('connack')
    const code = (connack as mqttPacket.IConnackPacket).reasonCode ?? (connack as mqttPacket.IConnackPacket).returnCode
    if (code) throw new Error(`CONNACK ${code}`)
    return c
  }

  private push(p: Packet): void {
    this.packets.push(p)
    this.wake?.()
  }

  private markClosed(): void {
    this.closed = true
    this.onClose()
    this.wake?.()
  }

  /** The bytes received since the last call, exactly as they came. */
  takeBytes(): Buffer {
    const bytes = Buffer.concat(this.wire)
    this.wire = []
    return bytes
  }

  send(packet: Packet): void {
    this.sendBytes(mqttPacket.generate(packet, { protocolVersion: this.version }))
  }

  sendBytes(bytes: Uint8Array): void {
    this.socket!.write(bytes)
    this.socket!.flush()
  }

  /**
   * Resolves once the broker has answered a PINGREQ: it has handled every packet sent before, and whatever it wrote
   * here before has arrived (so "nothing arrived" is proven, not waited for).
   */
  async ping(): Promise<void> {
    this.send({ cmd: 'pingreq' })
    await this.next('pingresp')
  }

  /** Takes the oldest unread packet (of one type, if given; others stay unread); rejects on timeout or close. */
  async next(cmd?: Packet['cmd'], ms = 5000): Promise<Packet> {
    const deadline = Date.now() + ms
    for (;;) {
      const at = this.packets.findIndex((p) => !cmd || p.cmd === cmd)
      if (at !== -1) return this.packets.splice(at, 1)[0]!
      if (this.closed) throw new Error(`connection closed while waiting for ${cmd ?? 'a packet'}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no ${cmd ?? 'packet'} within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => {
          clearTimeout(timer)
          resolve()
        }
      })
      this.wake = null
    }
  }

  /** Resolves when the broker closes the connection; rejects after `ms`. */
  async waitClosed(ms = 5000): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      this.closedPromise,
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms))),
    ])
    clearTimeout(timer)
  }

  end(): void {
    this.socket?.end()
  }
}
