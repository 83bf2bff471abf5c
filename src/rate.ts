/**
 * Inbound rate limits of one client: a token bucket for PUBLISH messages and one for bytes read, each refilled at
 * its rate up to its burst. Over the limit, the connection's reading is paused until the bucket is back to zero
 * (backpressure: TCP pushes back on the client), or the client is disconnected with 0x96 Message rate too high.
 */

/** A client's inbound limits (0 = none for that measure). */
export interface RateLimit {
  messagesPerSecond: number
  bytesPerSecond: number
  /** Most messages / bytes taken at once above the rate (defaults: one second's worth). */
  burstMessages: number
  burstBytes: number
  action: 'pause' | 'disconnect'
}

/** As configured (`limits.rate`, a listener's `rate`): the bursts default to one second's worth. */
export interface RateConfig {
  messagesPerSecond: number
  bytesPerSecond: number
  burstMessages?: number | undefined
  burstBytes?: number | undefined
  action: 'pause' | 'disconnect'
}

/** What a plugin may grant over the configured limit (plugin.ts Grant). */
export type RateLimitInput = Partial<RateLimit>

/** The limit for one client: the listener's (or the broker's) default, with what a plugin granted over it. */
export function rateLimit(base: RateConfig | RateLimitInput | undefined, over?: RateLimitInput): RateLimit | null {
  const m = over?.messagesPerSecond ?? base?.messagesPerSecond ?? 0
  const b = over?.bytesPerSecond ?? base?.bytesPerSecond ?? 0
  if (m === 0 && b === 0) return null
  return { messagesPerSecond: m, bytesPerSecond: b, burstMessages: over?.burstMessages ?? base?.burstMessages ?? m, burstBytes: over?.burstBytes ?? base?.burstBytes ?? b, action: over?.action ?? base?.action ?? 'pause' }
}

export class RateBucket {
  private messages: number
  private bytes: number
  private at: number
  /** Reading is paused until this time (ms, the broker's clock); 0 when not paused. */
  pausedUntil = 0
  /** When this client's last `client.rate_limited` line was logged (one a minute at most). */
  loggedAt = -Infinity

  constructor(
    readonly limit: RateLimit,
    now: number,
  ) {
    this.messages = limit.burstMessages
    this.bytes = limit.burstBytes
    this.at = now
  }

  /** Takes what arrived; returns how long (ms) until the buckets are back to zero: 0 when within the limit. */
  take(messages: number, bytes: number, now: number): number {
    const { messagesPerSecond, bytesPerSecond, burstMessages, burstBytes } = this.limit
    const elapsed = (now - this.at) / 1000
    this.at = now
    let wait = 0
    if (messagesPerSecond > 0) {
      this.messages = Math.min(burstMessages, this.messages + elapsed * messagesPerSecond) - messages
      if (this.messages < 0) wait = Math.max(wait, (-this.messages / messagesPerSecond) * 1000)
    }
    if (bytesPerSecond > 0) {
      this.bytes = Math.min(burstBytes, this.bytes + elapsed * bytesPerSecond) - bytes
      if (this.bytes < 0) wait = Math.max(wait, (-this.bytes / bytesPerSecond) * 1000)
    }
    return Math.ceil(wait)
  }
}
