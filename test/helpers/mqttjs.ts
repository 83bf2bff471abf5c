/** MQTT.js, the real client, with helpers that wait on events rather than sleeping. */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'

export interface Received {
  topic: string
  payload: string
  packet: IPublishPacket
}

export interface TestClient {
  client: MqttClient
  /** Every message received so far. */
  messages: Received[]
  /** Resolves with the next message not yet returned by next(). */
  next(ms?: number): Promise<Received>
  /** Resolves once the broker has answered a PINGREQ on this connection: whatever it wrote here before has arrived. */
  ping(): Promise<void>
  /**
   * "Nothing arrives", proven rather than waited for: a PINGREQ is answered on each of `from` (the clients whose
   * packets could cause a message: the broker has handled them, routing included), then on this client (what was
   * routed here has arrived). Returns what arrived since the call, which a test expects to be nothing.
   */
  quiet(...from: TestClient[]): Promise<Received[]>
  end(force?: boolean): Promise<void>
}

export async function connect(port: number, options: IClientOptions = {}): Promise<TestClient> {
  const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  const messages: Received[] = []
  let read = 0
  let waiter: (() => void) | null = null
  client.on('message', (topic, payload, packet) => {
    messages.push({ topic, payload: payload.toString(), packet })
    waiter?.()
  })
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
  client.on('error', () => {}) // errors after connect are asserted through events in the tests
  const self: TestClient = {
    client,
    messages,
    async next(ms = 5000) {
      const deadline = Date.now() + ms
      while (read >= messages.length) {
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`no message within ${ms} ms (got ${messages.length})`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          waiter = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        waiter = null
      }
      return messages[read++]!
    },
    ping() {
      return new Promise<void>((resolve, reject) => {
        const answered = (packet: { cmd: string }) => {
          if (packet.cmd !== 'pingresp') return
          client.off('packetreceive', answered)
          client.off('close', closed)
          resolve()
        }
        const closed = () => {
          client.off('packetreceive', answered)
          reject(new Error('closed before PINGRESP'))
        }
        client.on('packetreceive', answered)
        client.once('close', closed)
        client.sendPing()
      })
    },
    async quiet(...from: TestClient[]) {
      const before = messages.length
      for (const other of from) await other.ping()
      await self.ping()
      return messages.slice(before)
    },
    end(force = false) {
      return new Promise<void>((resolve) => client.end(force, {}, () => resolve()))
    },
  }
  return self
}

export function subscribe(client: MqttClient, topic: string | string[], options: mqtt.IClientSubscribeOptions = { qos: 0 }) {
  return client.subscribeAsync(topic, options)
}

/** MQTT.js connected to `url` (ws://, wss://, mqtts://...), resolved at CONNACK; rejects if the broker refuses or closes first. */
export function openUrl(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve(client))
    client.once('error', reject)
    client.once('close', () => reject(new Error('closed before CONNACK')))
  })
}
