/**
 * Topic ACL rules for the auth plugin, in the spirit of Mosquitto's ACL files:
 * rules select clients (a user, every authenticated user, or anonymous clients) and list topic filters
 * they may publish / subscribe to, with `%u` (username) and `%c` (client id) substituted.
 * Deny wins over allow; what no rule allows is denied.
 */
import { topicMatches } from '../src/index.ts'

export interface AclRule {
  /** A username, or '*' for every authenticated user. */
  user?: string
  /** Applies to clients that connected without a username. */
  anonymous?: boolean
  publish?: string[]
  subscribe?: string[]
  deny?: { publish?: string[]; subscribe?: string[] }
}

export interface AclSubject {
  username: string | undefined
  clientId: string
}

/** Replaces %u and %c; null when a value could widen the filter (it holds '+', '#' or '/'). */
function substitute(pattern: string, who: AclSubject): string | null {
  if (!pattern.includes('%')) return pattern
  const bad = (v: string) => v.includes('+') || v.includes('#') || v.includes('/')
  if (pattern.includes('%u') && (who.username === undefined || bad(who.username))) return null
  if (pattern.includes('%c') && bad(who.clientId)) return null
  return pattern.replaceAll('%u', who.username ?? '').replaceAll('%c', who.clientId)
}

function applies(rule: AclRule, who: AclSubject): boolean {
  if (rule.anonymous) return who.username === undefined
  if (rule.user === '*') return who.username !== undefined
  return rule.user !== undefined && rule.user === who.username
}

/** Does `acl` cover every topic that `requested` can match? (For a subscription to be allowed by it.) */
export function filterCovers(acl: string, requested: string): boolean {
  const a = acl.split('/')
  const r = requested.split('/')
  if (r[0]?.startsWith('$') && (a[0] === '+' || a[0] === '#')) return false // [MQTT-4.7.2-1]
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true
    if (i >= r.length) return false
    if (r[i] === '#') return false
    if (a[i] !== '+' && a[i] !== r[i]) return false
  }
  return a.length === r.length
}

/** Can some topic match both filters? (A subscription overlapping a deny rule is refused.) */
export function filtersOverlap(x: string, y: string): boolean {
  const a = x.split('/')
  const b = y.split('/')
  if ((a[0]?.startsWith('$') && (b[0] === '+' || b[0] === '#')) || (b[0]?.startsWith('$') && (a[0] === '+' || a[0] === '#'))) return false
  for (let i = 0; ; i++) {
    if (a[i] === '#' || b[i] === '#') return true
    if (i >= a.length || i >= b.length) return a.length === b.length
    if (a[i] !== '+' && b[i] !== '+' && a[i] !== b[i]) return false
  }
}

export class Acl {
  constructor(private readonly rules: readonly AclRule[]) {}

  canPublish(who: AclSubject, topic: string): boolean {
    const rules = this.rules.filter((r) => applies(r, who))
    const match = (patterns: string[] | undefined) =>
      (patterns ?? []).some((p) => {
        const f = substitute(p, who)
        return f !== null && topicMatches(f, topic)
      })
    if (rules.some((r) => match(r.deny?.publish))) return false
    return rules.some((r) => match(r.publish))
  }

  canSubscribe(who: AclSubject, filter: string): boolean {
    const rules = this.rules.filter((r) => applies(r, who))
    const test = (patterns: string[] | undefined, fn: (pattern: string) => boolean) =>
      (patterns ?? []).some((p) => {
        const f = substitute(p, who)
        return f !== null && fn(f)
      })
    if (rules.some((r) => test(r.deny?.subscribe, (d) => filtersOverlap(d, filter)))) return false
    return rules.some((r) => test(r.subscribe, (a) => filterCovers(a, filter)))
  }
}
