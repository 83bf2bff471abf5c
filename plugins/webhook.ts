/**
 * webhook({ url, topics, events, headers, secret, batch, retry }): POSTs matching messages (and, if asked,
 * connect/disconnect events) to an HTTP endpoint as JSON.
 *
 * Routing never waits for HTTP: each event goes into a durable outbox (bun:sqlite) in the same write-behind
 * batch the broker waits on before acknowledging a QoS 1/2 publish, so an acknowledged message is in the outbox.
 * One sender delivers the outbox oldest first, in batches, with a timeout per request, exponential backoff with
 * jitter and a retry limit; what exceeds the limit (or is refused with a 4xx) goes to a dead-letter table.
 * The outbox survives restarts: the sender resumes where it stopped.
 *
 * Request body: { "events": [ { "type": "message", "topic", "payload", "encoding": "utf8" | "base64", "qos",
 * "retain", "clientId", "userProperties", "timestamp" }, { "type": "connect" | "disconnect", ... } ] }.
 * With `secret`, header `X-Midge-Signature: sha256=<hex HMAC-SHA256 of the body>`.
 */
import { createHmac } from 'node:crypto'
import { z } from 'zod'
import { type Logger, type Message, type Plugin, topicMatches, validatePluginOptions } from '../src/index.ts'
import { Outbox } from './outbox.ts'

const Options = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  /** Topic filters whose messages are posted. */
  topics: z.array(z.string().min(1)).default(['#']),
  /** What is posted: messages, and client connect / disconnect events. */
  events: z.array(z.enum(['message', 'connect', 'disconnect'])).min(1).default(['message']),
  headers: z.record(z.string(), z.string()).default({}),
  /** Signs each body: `X-Midge-Signature: sha256=<hex HMAC-SHA256>`. */
  secret: z.string().min(1).optional(),
  batch: z.strictObject({ maxEvents: z.number().int().min(1).max(10_000).default(100) }).prefault({}),
  retry: z
    .strictObject({
      /** Attempts per batch before its events go to the dead-letter table. */
      maxAttempts: z.number().int().min(1).max(1000).default(10),
      initialDelayMs: z.number().int().min(1).default(500),
      maxDelayMs: z.number().int().min(1).default(30_000),
    })
    .prefault({}),
  /** Time allowed for one request. */
  timeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  /** The outbox database file. */
  outbox: z.string().min(1).default('./data/webhook.db'),
})

export type WebhookOptions = z.input<typeof Options>

export interface WebhookStatus {
  /** Events waiting in the outbox. */
  outbox: number
  delivered: number
  failedAttempts: number
  deadLettered: number
}

export interface WebhookPlugin extends Plugin {
  status(): WebhookStatus
}

export function webhook(options: WebhookOptions): WebhookPlugin {
  const config = validatePluginOptions('webhook', Options, options)
  const wants = new Set(config.events)
  const counters = { delivered: 0, failedAttempts: 0, deadLettered: 0 }
  const outbox = new Outbox(config.outbox)
  let logger: Logger | undefined
  let running = false
  let wake: (() => void) | null = null
  let sender: Promise<void> | null = null
  let inFlight: AbortController | null = null

  function enqueue(event: Record<string, unknown>): void {
    outbox.add(JSON.stringify(event))
  }

  async function send(events: string[]): Promise<{ ok: boolean; retryable: boolean; error: string }> {
    const body = `{"events":[${events.join(',')}]}`
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'midge-webhook', ...config.headers }
    if (config.secret) headers['x-midge-signature'] = `sha256=${createHmac('sha256', config.secret).update(body).digest('hex')}`
    inFlight = new AbortController()
    const timer = setTimeout(() => inFlight?.abort(), config.timeoutMs)
    try {
      const response = await fetch(config.url, { method: 'POST', headers, body, signal: inFlight.signal })
      await response.arrayBuffer().catch(() => undefined)
      if (response.ok) return { ok: true, retryable: false, error: '' }
      const retryable = response.status >= 500 || response.status === 408 || response.status === 429
      return { ok: false, retryable, error: `HTTP ${response.status}` }
    } catch (error) {
      return { ok: false, retryable: true, error: (error as Error).message }
    } finally {
      clearTimeout(timer)
      inFlight = null
    }
  }

  /** Delivers the outbox oldest first, one batch at a time, until stopped. */
  async function run(): Promise<void> {
    while (running) {
      const rows = outbox.take(config.batch.maxEvents)
      if (rows.length === 0) {
        await outbox.waitForItems()
        continue
      }
      const last = rows[rows.length - 1]!.id
      const result = await send(rows.map((r) => r.item))
      if (!running && !result.ok) return
      if (result.ok) {
        outbox.done(last)
        counters.delivered += rows.length
        continue
      }
      counters.failedAttempts++
      outbox.attempted(last)
      const attempts = rows[0]!.attempts + 1
      if (!result.retryable || attempts >= config.retry.maxAttempts) {
        outbox.bury(last, result.error)
        counters.deadLettered += rows.length
        logger?.error('webhook.dead_lettered', { events: rows.length, attempts, error: result.error })
        continue
      }
      const backoff = Math.min(config.retry.maxDelayMs, config.retry.initialDelayMs * 2 ** (attempts - 1))
      const delay = Math.round(backoff * (0.5 + Math.random() * 0.5)) // jitter
      logger?.warn('webhook.retry', { events: rows.length, attempts, inMs: delay, error: result.error })
      await pause(delay)
    }
  }

  /**
   * Runs the sender until stopped. A database fault (locked, unreadable) does not end it for good: it is logged once,
   * and the sender starts again after a second, from what the outbox holds.
   */
  async function keepSending(log: Logger): Promise<void> {
    let failing = false
    while (running) {
      try {
        await run()
        return
      } catch (error) {
        if (!failing) log.error('webhook.sender_failed', { error: (error as Error)?.message ?? String(error), effect: 'retrying every second; events stay in the outbox' })
        failing = true
        await pause(1000)
      }
    }
  }

  /** Waits `ms` before trying again; stop() cuts it short (new events do not: the wait is a backoff). */
  async function pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      wake = () => (running ? undefined : (clearTimeout(timer), resolve()))
    })
    wake = null
  }

  function messageEvent(m: Readonly<Message>): Record<string, unknown> {
    let payload: string
    let encoding: 'utf8' | 'base64'
    try {
      payload = new TextDecoder('utf-8', { fatal: true }).decode(m.payload)
      encoding = 'utf8'
    } catch {
      payload = m.payload.toString('base64')
      encoding = 'base64'
    }
    return { type: 'message', topic: m.topic, payload, encoding, qos: m.qos, retain: m.retain, clientId: m.origin ?? null, userProperties: m.properties?.userProperties ?? null, timestamp: Date.now() }
  }

  return {
    name: 'webhook',
    start(ctx) {
      logger = ctx.logger
      outbox.open()
      outbox.onFault((error) => {
        if (error) ctx.logger.error('webhook.outbox_write_failed', { outbox: outbox.file, error: error.message, effect: 'QoS 1/2 publishes are not acknowledged until writes succeed again' })
        else ctx.logger.info('webhook.outbox_write_recovered', { outbox: outbox.file })
      })
      running = true
      sender = keepSending(ctx.logger)
      ctx.logger.info('webhook.started', { url: config.url, topics: config.topics, events: config.events, outbox: this.status().outbox })
    },
    async stop() {
      running = false
      outbox.wake()
      wake?.()
      inFlight?.abort()
      await sender
      outbox.close()
    },
    flushed: () => outbox.flushed(),
    onPublish(message) {
      if (!wants.has('message') || message.topic.startsWith('$SYS')) return
      if (config.topics.some((filter) => topicMatches(filter, message.topic))) enqueue(messageEvent(message))
    },
    onConnect(client) {
      if (wants.has('connect')) enqueue({ type: 'connect', clientId: client.clientId, username: client.username ?? null, address: client.address, protocolVersion: client.protocolVersion, timestamp: Date.now() })
    },
    onDisconnect(client) {
      if (wants.has('disconnect')) enqueue({ type: 'disconnect', clientId: client.clientId, username: client.username ?? null, reason: client.reason, timestamp: Date.now() })
    },
    metrics() {
      return { ...this.status() }
    },
    status() {
      return { outbox: outbox.size, ...counters }
    },
  }
}
