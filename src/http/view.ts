/**
 * What the HTTP API may see and do: a narrow view of the broker. HTTP publishes enter the same path as
 * MQTT ones (ACL decisions, routing, retained store, plugins' notifications, $SYS counters, durable flush).
 */
import type { Broker } from '../broker.ts'
import type { ClientInfo } from '../plugin.ts'
import { type MessageInput, messageFrom, propertiesToJson } from '../message.ts'
import { decide } from '../plugin.ts'
import { publish } from '../publish.ts'
import { Reason } from '../protocol/reason.ts'
import { topicFilterError, topicNameError } from '../protocol/validate.ts'
import { VERSION } from '../sys.ts'
import { filterMatches, subscriptionKey } from '../topics/trie.ts'
import type { z } from 'zod'
import type { Ban, BanKind } from '../bans.ts'
import type { BanBody, BanItem, ClientItem, RetainedItem, Stats, SubscriptionItem } from './schemas.ts'

/** Who is calling, as the ACL hooks see them. */
export interface Principal {
  name: string
  username: string | undefined
  address: string
}

export type PublishOutcome =
  | { ok: true; reached: number }
  | { ok: false; status: 400 | 403 | 413 | 503; error: string; message: string }

/** An HTTP publish, as the request described it. */
export type PublishInput = MessageInput

export class BrokerView {
  constructor(private readonly broker: Broker) {}

  get maxPacketSize(): number {
    return this.broker.limits.maxPacketSize
  }

  get closing(): boolean {
    return this.broker.closing
  }

  /** Checks the request, then publishes as `who` through the broker's one publish path; resolves once it is durable. */
  async publish(who: Principal, input: PublishInput): Promise<PublishOutcome> {
    const broker = this.broker
    const invalid = topicNameError(input.topic, broker.limits)
    if (invalid) return { ok: false, status: 400, error: 'bad_request', message: `topic: ${invalid}` }
    if (input.payload.length + Buffer.byteLength(input.topic) + 16 > broker.limits.maxPacketSize) {
      return { ok: false, status: 413, error: 'payload_too_large', message: `larger than the maximum packet size of ${broker.limits.maxPacketSize} bytes` }
    }
    const info: ClientInfo = { clientId: `http:${who.name}`, username: who.username, protocolVersion: 5, address: who.address }
    const message = messageFrom(input, info.clientId, this.broker.clock.now())
    // An HTTP caller does not go away mid-decision as a connection does: its answer is simply not read.
    const pending = publish(broker, message, { info, gone: false })
    // A result that did not wait is the broker's shared object: read it now, not after an await lets others publish.
    const result = pending instanceof Promise ? await pending : pending
    if (!result.accepted) return { ok: false, status: 403, error: 'forbidden', message: result.reasonString ?? `not allowed to publish to ${input.topic}` }
    const { reached, durable } = result
    try {
      await durable // like PUBACK: answer once it is durable
    } catch (error) {
      return { ok: false, status: 503, error: 'not_stored', message: `the message was routed but could not be stored: ${(error as Error)?.message ?? String(error)}` }
    }
    return { ok: true, reached }
  }

  hasRetained(topic: string): boolean {
    return this.broker.retained.get(topic) !== undefined
  }

  retained(filter: string, limit: number): z.input<typeof RetainedItem>[] | string {
    const invalid = topicFilterError(filter, this.broker.limits)
    if (invalid) return invalid
    return this.broker.retained.match(filter).slice(0, limit).map((m) => ({ ...encodePayload(m.payload), topic: m.topic, qos: m.qos, properties: m.properties ? propertiesToJson(m.properties) : undefined }))
  }

  clients(): z.input<typeof ClientItem>[] {
    return [...this.broker.sessions.values()].map((s) => {
      const c = s.client
      return {
        clientId: s.clientId,
        connected: c !== null,
        username: c?.info.username ?? null,
        protocolVersion: c?.info.protocolVersion ?? null,
        address: c?.info.address ?? null,
        connectedSince: c ? new Date(c.acceptedAt).toISOString() : null,
        keepAliveSeconds: c ? c.keepAliveMs / 1000 : null,
        sessionExpirySeconds: s.expiryInterval,
        subscriptions: s.subscriptions.size,
        queued: s.queue.length,
        inflight: s.inflight.size,
      }
    })
  }

  /** Disconnects a client (MQTT 5: DISCONNECT 0x98 administrative action); false if it is not connected. */
  disconnect(clientId: string): boolean {
    const client = this.broker.sessions.get(clientId)?.client
    if (!client) return false
    client.disconnect(Reason.AdministrativeAction, 'disconnected by an administrator')
    return true
  }

  bans(): z.input<typeof BanItem>[] {
    return this.broker.bans.list(this.broker.clock.now()).map(banItem)
  }

  /** Bans a subject and disconnects the connected clients it covers (MQTT 5: DISCONNECT 0x98). */
  ban(input: z.output<typeof BanBody>): z.input<typeof BanItem> {
    const ban = this.broker.bans.add(input.kind, input.value, input.seconds, input.reason, this.broker.clock.now())
    for (const client of [...this.broker.clients]) {
      if (client.state !== 'connected') continue
      const covered = input.kind === 'clientId' ? client.clientId === input.value : input.kind === 'username' ? client.username === input.value : client.remoteAddress === input.value
      if (covered) client.disconnect(Reason.AdministrativeAction, 'banned by an administrator')
    }
    return banItem(ban)
  }

  unban(kind: BanKind, value: string): boolean {
    return this.broker.bans.remove(kind, value)
  }

  subscriptions(): z.input<typeof SubscriptionItem>[] {
    const out: z.input<typeof SubscriptionItem>[] = []
    for (const s of this.broker.sessions.values()) {
      for (const sub of s.subscriptions.values()) {
        out.push({ clientId: s.clientId, filter: subscriptionKey(sub), qos: sub.qos, noLocal: sub.noLocal, retainAsPublished: sub.retainAsPublished, retainHandling: sub.retainHandling, subscriptionIdentifier: sub.identifier || null })
      }
    }
    return out
  }

  stats(): z.input<typeof Stats> {
    const b = this.broker
    const { receivedByQoS: _r, sentByQoS: _s, ...counters } = b.stats
    return { version: VERSION, node: b.nodeId, uptimeSeconds: (this.broker.clock.now() - b.startedAt) / 1000, clientsConnected: b.connectedCount, sessions: b.sessions.size, subscriptions: b.subscriptions.size, retained: b.retained.size, ...counters }
  }

  /** Figures for /metrics that the stats above do not hold. */
  gauges(): { queued: number; inflight: number; receivedByQoS: readonly number[]; sentByQoS: readonly number[]; plugins: Array<[string, Record<string, number>]> } {
    let queued = 0
    let inflight = 0
    for (const s of this.broker.sessions.values()) {
      queued += s.queue.length
      inflight += s.inflight.size
    }
    const plugins = this.plugins().map((p): [string, Record<string, number>] => [p.name, p.metrics])
    return { queued, inflight, receivedByQoS: this.broker.stats.receivedByQoS, sentByQoS: this.broker.stats.sentByQoS, plugins }
  }

  /** Why a topic filter is invalid, or null. */
  filterError(filter: string): string | null {
    return topicFilterError(filter, this.broker.limits)
  }

  /** Calls `listener` with each message routed here that `filter` matches (payload in base64); returns how to stop. */
  watch(filter: string, listener: (message: { topic: string; payload: string; qos: number; retain: boolean; properties: Record<string, unknown> | undefined }) => void): () => void {
    return this.broker.on('message', (m) => {
      if (filterMatches(filter, m.topic)) listener({ topic: m.topic, payload: m.payload.toString('base64'), qos: m.qos, retain: m.retain, properties: m.properties ? propertiesToJson(m.properties) : undefined })
    })
  }

  /** Every plugin, with what it reports as metrics ({} when it reports none). */
  plugins(): Array<{ name: string; metrics: Record<string, number> }> {
    return this.broker.plugins.plugins.map((p) => ({ name: p.name, metrics: p.metrics?.() ?? {} }))
  }

  /** Checks a username and password with the auth plugins (HTTP Basic); false when no plugin authenticates. */
  async checkPassword(username: string, password: string, address: string): Promise<boolean> {
    const hooks = this.broker.plugins.authenticate
    if (hooks.length === 0) return false
    const bans = this.broker.bans
    const clientId = `http:${username}`
    // Failed attempts count towards the same bans as failed MQTT logins: a banned address costs no verification.
    const now = this.broker.clock.now()
    if (bans.find('address', address, now) ?? bans.find('username', username, now)) return false
    const verdict = await decide(hooks, { clientId, username, password: Buffer.from(password), protocolVersion: 5, address }, undefined, this.broker.plugins.decisionError.authenticate)
    if (!verdict.allowed) bans.authFailed(address, clientId, this.broker.clock.now())
    return verdict.allowed
  }
}

function banItem(ban: Ban): z.input<typeof BanItem> {
  return { kind: ban.kind, value: ban.value, reason: ban.reason, createdAt: new Date(ban.createdAt).toISOString(), expiresAt: ban.expiresAt === 0 ? null : new Date(ban.expiresAt).toISOString() }
}

function encodePayload(payload: Buffer): { payload: string; encoding: 'utf8' | 'base64' } {
  try {
    return { payload: new TextDecoder('utf-8', { fatal: true }).decode(payload), encoding: 'utf8' }
  } catch {
    return { payload: payload.toString('base64'), encoding: 'base64' }
  }
}
