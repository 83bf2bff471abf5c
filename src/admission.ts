/**
 * Who may open a connection at all, decided before any byte is read: the number of connections per IP and
 * the rate of new connections per IP (a token bucket). Both off by default (0), since many clients may share
 * an address (NAT, a gateway, tests on 127.0.0.1).
 */
export interface AdmissionLimits {
  maxConnectionsPerIp: number
  connectRatePerIp: number
}

interface Bucket {
  tokens: number
  refilledAt: number
  loggedAt: number
}

export class Admission {
  private readonly perIp = new Map<string, number>()
  private readonly buckets = new Map<string, Bucket>()

  constructor(private readonly limits: AdmissionLimits) {}

  /** Whether any limit is set; when none is, connections are not counted (nor their address read, a syscall). */
  get enabled(): boolean {
    return this.limits.maxConnectionsPerIp > 0 || this.limits.connectRatePerIp > 0
  }

  /** Null when the connection may proceed (and is counted), else why not. */
  admit(ip: string, now: number): string | null {
    const { maxConnectionsPerIp, connectRatePerIp } = this.limits
    if (connectRatePerIp > 0) {
      let bucket = this.buckets.get(ip)
      if (!bucket) this.buckets.set(ip, (bucket = { tokens: connectRatePerIp, refilledAt: now, loggedAt: 0 }))
      bucket.tokens = Math.min(connectRatePerIp, bucket.tokens + ((now - bucket.refilledAt) / 1000) * connectRatePerIp)
      bucket.refilledAt = now
      if (bucket.tokens < 1) return `more than ${connectRatePerIp} connections per second from ${ip}`
      bucket.tokens -= 1
    }
    const open = this.perIp.get(ip) ?? 0
    if (maxConnectionsPerIp > 0 && open >= maxConnectionsPerIp) return `more than ${maxConnectionsPerIp} connections from ${ip}`
    this.perIp.set(ip, open + 1)
    return null
  }

  /** Whether a refusal for this IP should be logged now (at most one line per IP per second). */
  shouldLog(ip: string, now: number): boolean {
    const bucket = this.buckets.get(ip) ?? { tokens: 0, refilledAt: now, loggedAt: 0 }
    if (now - bucket.loggedAt < 1000) return false
    bucket.loggedAt = now
    this.buckets.set(ip, bucket)
    return true
  }

  released(ip: string): void {
    const open = this.perIp.get(ip) ?? 0
    if (open <= 1) this.perIp.delete(ip)
    else this.perIp.set(ip, open - 1)
  }

  /** Forgets buckets that are full again, so the map does not grow with every address ever seen. */
  prune(now: number): void {
    for (const [ip, bucket] of this.buckets) {
      if (now - bucket.refilledAt > 2000 && now - bucket.loggedAt > 2000) this.buckets.delete(ip)
    }
  }
}

/** A handler for a connection refused before it was read: it ignores everything. */
export const REFUSED = { data() {}, drain() {}, closed() {} }
