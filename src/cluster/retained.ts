/** Retained messages cluster-wide: one KV key per topic, loaded by a node at start, written by the node that took the message. */
import type { KV } from '@nats-io/kv'
import { type PublicMessage, propertiesFromJson, propertiesToJson } from '../message.ts'
import { kvKey, type Meta } from './wire.ts'

export class RetainedKv {
  constructor(
    private readonly kv: KV,
    /** Tracks a write until it is in JetStream (the broker waits on it before acknowledging). */
    private readonly track: (write: Promise<unknown>) => void,
  ) {}

  async load(): Promise<PublicMessage[]> {
    const out: PublicMessage[] = []
    for await (const key of await this.kv.keys()) {
      const entry = await this.kv.get(key)
      if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) continue
      const stored = entry.json<Meta & { payload: string }>()
      out.push({ topic: stored.topic, payload: Buffer.from(stored.payload, 'base64'), qos: stored.qos, retain: true, properties: propertiesFromJson(stored.properties), expiresAt: stored.expiresAt, origin: undefined })
    }
    return out
  }

  store(topic: string, message: Readonly<PublicMessage> | null): void {
    const key = kvKey(topic)
    if (!message) {
      this.track(this.kv.delete(key))
      return
    }
    const stored = { topic, qos: message.qos, expiresAt: message.expiresAt, properties: message.properties && propertiesToJson(message.properties), payload: message.payload.toString('base64') }
    this.track(this.kv.put(key, JSON.stringify(stored)))
  }
}
