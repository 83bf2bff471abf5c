/**
 * Topic ACLs: lists of topic filters a client may publish and subscribe to, and lists it may not. Deny wins over
 * allow; what no filter allows is denied. Filters may hold `%u` (username) and `%c` (client id), replaced per
 * client. Used by the broker for an ACL granted at connect (plugin.ts `Grant`) and by the auth plugin for its rules.
 */
import { filterMatches } from './trie.ts'

/** An ACL as written: allowed filters, and denied ones. */
export interface AclLists {
  publish?: readonly string[]
  subscribe?: readonly string[]
  deny?: { publish?: readonly string[]; subscribe?: readonly string[] }
}

/** Whose %u and %c. */
export interface AclSubject {
  username: string | undefined
  clientId: string
}

/** The lists that apply to one client, %u and %c replaced: what its decisions read. */
export interface ClientRules {
  publish: string[]
  denyPublish: string[]
  subscribe: string[]
  denySubscribe: string[]
}

/** Replaces %u and %c; null when a value could widen the filter (it holds '+', '#' or '/'), so the filter is dropped. */
function substitute(pattern: string, who: AclSubject): string | null {
  if (!pattern.includes('%')) return pattern
  const bad = (v: string) => v.includes('+') || v.includes('#') || v.includes('/')
  if (pattern.includes('%u') && (who.username === undefined || bad(who.username))) return null
  if (pattern.includes('%c') && bad(who.clientId)) return null
  return pattern.replaceAll('%u', who.username ?? '').replaceAll('%c', who.clientId)
}

/** Adds `lists` to `into` for this client (%u and %c replaced). */
export function addRules(into: ClientRules, lists: AclLists, who: AclSubject): ClientRules {
  const add = (to: string[], patterns: readonly string[] | undefined) => {
    for (const p of patterns ?? []) {
      const f = substitute(p, who)
      if (f !== null) to.push(f)
    }
  }
  add(into.publish, lists.publish)
  add(into.denyPublish, lists.deny?.publish)
  add(into.subscribe, lists.subscribe)
  add(into.denySubscribe, lists.deny?.subscribe)
  return into
}

export function emptyRules(): ClientRules {
  return { publish: [], denyPublish: [], subscribe: [], denySubscribe: [] }
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

/** Deny wins over allow; what no rule allows is denied. */
export function mayPublish(rules: ClientRules, topic: string): boolean {
  for (const f of rules.denyPublish) if (filterMatches(f, topic)) return false
  for (const f of rules.publish) if (filterMatches(f, topic)) return true
  return false
}

/** A subscription is denied if it can reach a denied topic, and allowed only if an allowed filter covers all it can match. */
export function maySubscribe(rules: ClientRules, filter: string): boolean {
  for (const d of rules.denySubscribe) if (filtersOverlap(d, filter)) return false
  for (const a of rules.subscribe) if (filterCovers(a, filter)) return true
  return false
}
