/**
 * Topic ACL rules for the auth plugin, in the spirit of Mosquitto's ACL files: rules select clients (a user, every
 * authenticated user, or anonymous clients) and list topic filters they may publish / subscribe to, with `%u`
 * (username) and `%c` (client id) substituted. The matching (deny wins; what no rule allows is denied) is the
 * broker's own (src/topics/acl.ts), the same an ACL granted at connect is checked with.
 */
import { addRules, type AclSubject, type ClientRules, emptyRules } from '../src/index.ts'

export { type ClientRules, filterCovers, filtersOverlap, mayPublish, maySubscribe } from '../src/index.ts'

export interface AclRule {
  /** A username, or '*' for every authenticated user. */
  user?: string
  /** Applies to clients that connected without a username. */
  anonymous?: boolean
  publish?: string[]
  subscribe?: string[]
  deny?: { publish?: string[]; subscribe?: string[] }
}

function applies(rule: AclRule, who: AclSubject): boolean {
  if (rule.anonymous) return who.username === undefined
  if (rule.user === '*') return who.username !== undefined
  return rule.user !== undefined && rule.user === who.username
}

export class Acl {
  constructor(private readonly rules: readonly AclRule[]) {}

  /** The rules for one client, worked out once (its username and client id do not change while it is connected). */
  forClient(who: AclSubject): ClientRules {
    const out = emptyRules()
    for (const rule of this.rules) if (applies(rule, who)) addRules(out, rule, who)
    return out
  }
}
