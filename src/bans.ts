/**
 * Bans: client ids, usernames and addresses refused for a while. Made by hand (the HTTP admin API) or by the two
 * rules below, as EMQX's banned list and flapping detection do:
 * - authentication failures: an address or client id refused more than `max` times in `windowSeconds`;
 * - flapping: a client id (and, when asked, an address) that connects and goes more than `max` times in `windowSeconds`.
 * Each ban is logged once, when it is made; refusals are not logged (a banned client may retry without end).
 */
import type { Logger } from './logger.ts'

export type BanKind = 'clientId' | 'username' | 'address'

export interface Ban {
  kind: BanKind
  value: string
  reason: string
  /** Epoch milliseconds. */
  createdAt: number
  /** Epoch milliseconds; 0 = until removed. */
  expiresAt: number
}

export interface BanRule {
  /** More than this many events in the window makes a ban; 0 turns the rule off. */
  max: number
  windowSeconds: number
  banSeconds: number
}

export interface BanRules {
  authFailures: BanRule
  flapping: BanRule
  addressFlapping: BanRule
}

const key = (kind: BanKind, value: string) => `${kind}\u0000${value}`

export class Bans {
  private readonly bans = new Map<string, Ban>()
  /** Recent event times per rule and subject, newest last, at most `max + 1` of them. */
  private readonly recent = new Map<string, number[]>()
  /** Address bans in force: only while there are any does a new socket's address need reading (a syscall). */
  private addressBans = 0

  constructor(
    private readonly rules: BanRules,
    private readonly logger: Logger,
  ) {}

  /** Subjects whose recent failures or disconnections are being counted (each for at most its rule's window). */
  get counting(): number {
    return this.recent.size
  }

  get checksAddresses(): boolean {
    return this.addressBans > 0
  }

  /** The ban in force on this subject, if any. */
  find(kind: BanKind, value: string | undefined, now: number): Ban | undefined {
    if (value === undefined || this.bans.size === 0) return undefined
    const ban = this.bans.get(key(kind, value))
    if (!ban) return undefined
    if (ban.expiresAt !== 0 && ban.expiresAt <= now) {
      this.delete(ban)
      return undefined
    }
    return ban
  }

  /** Bans a subject for `seconds` (0: until removed), replacing any ban on it; logged once. */
  add(kind: BanKind, value: string, seconds: number, reason: string, now: number): Ban {
    const existing = this.bans.get(key(kind, value))
    if (existing) this.delete(existing)
    const ban: Ban = { kind, value, reason, createdAt: now, expiresAt: seconds === 0 ? 0 : now + seconds * 1000 }
    this.bans.set(key(kind, value), ban)
    if (kind === 'address') this.addressBans++
    this.logger.warn('ban.added', { kind, value, reason, seconds })
    return ban
  }

  remove(kind: BanKind, value: string): boolean {
    const ban = this.bans.get(key(kind, value))
    if (!ban) return false
    this.delete(ban)
    this.logger.info('ban.removed', { kind, value })
    return true
  }

  list(now: number): Ban[] {
    this.prune(now)
    return [...this.bans.values()]
  }

  /** A CONNECT was refused by authentication. */
  authFailed(address: string, clientId: string, now: number): void {
    const rule = this.rules.authFailures
    if (rule.max === 0) return
    if (this.count('auth', 'address', address, rule, now)) this.add('address', address, rule.banSeconds, `more than ${rule.max} failed logins in ${rule.windowSeconds}s`, now)
    if (clientId !== '' && this.count('auth', 'clientId', clientId, rule, now)) this.add('clientId', clientId, rule.banSeconds, `more than ${rule.max} failed logins in ${rule.windowSeconds}s`, now)
  }

  /** Whether connections' addresses are counted as they go (only then is a socket's address worth reading). */
  get countsAddresses(): boolean {
    return this.rules.addressFlapping.max > 0
  }

  /** A connected client went (for whatever reason); its address is read only when address flapping is counted. */
  disconnected(clientId: string, client: { readonly remoteAddress: string }, now: number): void {
    const rule = this.rules.flapping
    if (rule.max > 0 && this.count('flap', 'clientId', clientId, rule, now)) this.add('clientId', clientId, rule.banSeconds, `connected and went more than ${rule.max} times in ${rule.windowSeconds}s`, now)
    const byAddress = this.rules.addressFlapping
    if (byAddress.max === 0) return
    const address = client.remoteAddress
    if (this.count('flap', 'address', address, byAddress, now)) this.add('address', address, byAddress.banSeconds, `connections came and went more than ${byAddress.max} times in ${byAddress.windowSeconds}s`, now)
  }

  /** Drops expired bans and counts whose window has passed. */
  prune(now: number): void {
    for (const ban of this.bans.values()) if (ban.expiresAt !== 0 && ban.expiresAt <= now) this.delete(ban)
    const longest = Math.max(this.rules.authFailures.windowSeconds, this.rules.flapping.windowSeconds, this.rules.addressFlapping.windowSeconds) * 1000
    for (const [k, times] of this.recent) if (now - times[times.length - 1]! > longest) this.recent.delete(k)
  }

  /** Records one event; true when it takes the subject past the rule's maximum (the count starts again). */
  private count(rule: string, kind: BanKind, value: string, { max, windowSeconds }: BanRule, now: number): boolean {
    const k = `${rule}\u0000${key(kind, value)}`
    const times = this.recent.get(k) ?? []
    times.push(now)
    const since = now - windowSeconds * 1000
    while (times.length > 0 && times[0]! <= since) times.shift()
    if (times.length > max) {
      this.recent.delete(k)
      return true
    }
    this.recent.set(k, times)
    return false
  }

  private delete(ban: Ban): void {
    if (this.bans.delete(key(ban.kind, ban.value)) && ban.kind === 'address') this.addressBans--
  }
}
