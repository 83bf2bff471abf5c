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

/** The rules that apply to one client, %u and %c substituted: all its decisions read. */
export interface ClientRules {
  publish: string[]
  denyPublish: string[]
  subscribe: string[]
  denySubscribe: string[]
}

export class Acl {
  constructor(private readonly rules: readonly AclRule[]) {}

  /** The rules for one client, worked out once (its username and client id do not change while it is connected). */
  forClient(who: AclSubject): ClientRules {
    const out: ClientRules = { publish: [], denyPublish: [], subscribe: [], denySubscribe: [] }
    const add = (into: string[], patterns: string[] | undefined) => {
      for (const p of patterns ?? []) {
        const f = substitute(p, who)
        if (f !== null) into.push(f)
      }
    }
    for (const rule of this.rules) {
      if (!applies(rule, who)) continue
      add(out.publish, rule.publish)
      add(out.denyPublish, rule.deny?.publish)
      add(out.subscribe, rule.subscribe)
      add(out.denySubscribe, rule.deny?.subscribe)
    }
    return out
  }
}

/** Deny wins over allow; what no rule allows is denied. */
export function mayPublish(rules: ClientRules, topic: string): boolean {
  for (const f of rules.denyPublish) if (topicMatches(f, topic)) return false
  for (const f of rules.publish) if (topicMatches(f, topic)) return true
  return false
}

/** A subscription is denied if it can reach a denied topic, and allowed only if an allowed filter covers all it can match. */
export function maySubscribe(rules: ClientRules, filter: string): boolean {
  for (const d of rules.denySubscribe) if (filtersOverlap(d, filter)) return false
  for (const a of rules.subscribe) if (filterCovers(a, filter)) return true
  return false
}
