/**
 * auth({ users, usersFile, acl, allowAnonymous }): usernames with hashed passwords and topic ACLs.
 *
 * - Passwords are stored as argon2id or bcrypt hashes (`midge hash-password` prints one), checked by
 *   src/runtime/password.ts. Plain text is refused unless `allowPlainTextPasswords` (development only).
 *   A successful verification is remembered for `verifiedCacheSeconds` (see Verified below).
 * - Wrong credentials: CONNACK 0x86 (3.1.1: 4). No username while anonymous clients are not allowed: 0x87 (3.1.1: 5).
 * - ACL: see plugins/acl.ts. Denied publish: PUBACK/PUBREC 0x87 (QoS 0 dropped); denied subscribe: SUBACK 0x87 (3.1.1: 0x80).
 * - `usersFile` (JSON, or a TS/JS module exporting the same object) is read at start and again on SIGHUP.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { verifyPassword } from '../src/runtime/password.ts'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { type AuthenticateRequest, type ClientInfo, ConfigError, type Decision, type Logger, type Plugin, Reason, sameLevelsUpTo, validatePluginOptions } from '../src/index.ts'
import { Acl, type AclRule, type ClientRules, mayPublish, maySubscribe } from './acl.ts'

const HASH = /^\$(argon2id|argon2i|argon2d|2a|2b|2y)\$/

const user = z.strictObject({ password: z.string().min(1, { error: 'expected a password hash' }) })
const users = z.record(z.string().min(1), user)
const filters = z.array(z.string().min(1)).optional()
const rule = z
  .strictObject({
    user: z.string().min(1).optional(),
    anonymous: z.literal(true).optional(),
    publish: filters,
    subscribe: filters,
    deny: z.strictObject({ publish: filters, subscribe: filters }).optional(),
  })
  .refine((r) => (r.user === undefined) !== (r.anonymous === undefined), { error: 'a rule needs exactly one of `user` (a name or "*") and `anonymous: true`' })

const Options = z
  .strictObject({
    users: users.default({}),
    /** A JSON file (or TS/JS module with a default export) of users, merged over `users`; reloaded on SIGHUP. */
    usersFile: z.string().min(1).optional(),
    acl: z.array(rule).default([]),
    /** Accept clients that send no username (they get the `anonymous: true` rules). */
    allowAnonymous: z.boolean().default(false),
    /** Accept plain-text passwords in `users`: for local development only. */
    allowPlainTextPasswords: z.boolean().default(false),
    /**
     * A password verified against a user's hash is not hashed again for this long (0 turns it off): reconnects and
     * HTTP Basic requests cost a keyed digest, not an argon2 verification. Remembered in memory only, as a keyed
     * digest of the credentials with a key made at start; a changed hash (a users-file reload) is verified again.
     */
    verifiedCacheSeconds: z.number().int().min(0).max(86_400).default(60),
  })
  .superRefine((o, ctx) => {
    if (o.allowPlainTextPasswords) return
    for (const [name, u] of Object.entries(o.users)) {
      if (!HASH.test(u.password)) {
        ctx.addIssue({ code: 'custom', path: ['users', name, 'password'], input: '(hidden)', message: 'expected a hash from `bun run hash-password`; plain text needs allowPlainTextPasswords: true (development only)' })
      }
    }
  })

export type AuthOptions = z.input<typeof Options>

type Users = Record<string, { password: string }>

export function auth(options: AuthOptions = {}): Plugin {
  const config = validatePluginOptions('auth', Options, options)
  const decisions = new AclDecisions(new Acl(config.acl as AclRule[]))
  let known: Users = config.users
  let logger: Logger | undefined
  const failures = new Map<string, number>()
  let onHangup: (() => void) | undefined

  async function loadUsersFile(path: string): Promise<Users> {
    const absolute = resolve(path)
    const raw = absolute.endsWith('.json')
      ? JSON.parse(await readFile(absolute, 'utf8'))
      : (await import(`${pathToFileURL(absolute).href}?v=${Date.now()}`)).default
    const parsed = users.safeParse(raw)
    if (!parsed.success) throw new ConfigError(`Invalid users file ${absolute}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
    for (const [name, u] of Object.entries(parsed.data)) {
      if (!config.allowPlainTextPasswords && !HASH.test(u.password)) throw new ConfigError(`Invalid users file ${absolute}: ${name}.password: expected a hash from \`bun run hash-password\``)
    }
    return { ...config.users, ...parsed.data }
  }

  const verified = new Verified(config.verifiedCacheSeconds * 1000)

  async function verify(password: Buffer | undefined, stored: string): Promise<boolean> {
    const given = password?.toString('utf8') ?? ''
    if (HASH.test(stored)) return verifyPassword(given, stored)
    // Plain text (development): compare digests so the time does not depend on where they differ.
    const a = createHash('sha256').update(given).digest()
    const b = createHash('sha256').update(stored).digest()
    return timingSafeEqual(a, b)
  }

  function passed(username: string): Decision {
    failures.delete(username)
    return 'allow'
  }

  async function verifyInFull(request: AuthenticateRequest, entry: Users[string] | undefined): Promise<Decision> {
    const username = request.username!
    // Unknown users still pay for one verification, so timing does not tell which names exist.
    if (!entry) await verify(request.password, DUMMY_HASH)
    else if (await verify(request.password, entry.password)) {
      verified.remember(username, request.password, entry.password)
      return passed(username)
    }
    failed(username, { clientId: request.clientId, address: request.address, username, reason: entry ? 'wrong password' : 'unknown user' })
    return { decision: 'deny', reasonCode: Reason.BadUsernameOrPassword, reasonString: 'bad username or password' }
  }

  function failed(key: string, fields: Record<string, unknown>): void {
    const count = (failures.get(key) ?? 0) + 1
    failures.set(key, count)
    logger?.warn('auth.failed', { ...fields, failures: count })
  }

  return {
    name: 'auth',
    async start(ctx) {
      logger = ctx.logger
      if (config.usersFile) {
        const path = config.usersFile
        known = await loadUsersFile(path)
        onHangup = () => {
          loadUsersFile(path).then(
            (loaded) => {
              known = loaded
              ctx.logger.info('auth.users_reloaded', { users: Object.keys(loaded).length })
            },
            (error: Error) => ctx.logger.error('auth.users_reload_failed', { error: error.message }),
          )
        }
        process.on('SIGHUP', onHangup)
      }
    },
    stop() {
      if (onHangup) process.off('SIGHUP', onHangup)
    },

    // Answered at once when no hash is verified (anonymous, a certificate, a password verified lately): the broker
    // then handles CONNECT within the read, with no promise; only a verification waits.
    authenticate(request) {
      if (request.username === undefined) {
        if (config.allowAnonymous) return 'allow'
        failed(`anonymous@${request.address}`, { clientId: request.clientId, address: request.address, reason: 'anonymous clients are not allowed' })
        return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: 'a username is required' }
      }
      // A client certificate verified by the TLS listener is the credential; its CN is the username.
      if (request.certificate) return 'allow'
      const entry = known[request.username]
      if (entry && verified.has(request.username, request.password, entry.password)) return passed(request.username)
      return verifyInFull(request, entry)
    },

    authorizePublish(client, message) {
      if (decisions.mayPublish(client, message.topic)) return 'allow'
      return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: `not allowed to publish to ${message.topic}` }
    },

    authorizeSubscribe(client, subscription) {
      // A shared subscription ($share/{group}/{filter}) is checked on its topic filter.
      if (maySubscribe(decisions.rules(client), subscription.filter)) return 'allow'
      return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: `not allowed to subscribe to ${subscription.filter}` }
    },
  }
}

/** Topics a client's publish decisions are remembered for; past it the memory starts again (a client cycling over more topics pays the walk). */
const DECISIONS_PER_CLIENT = 256

/** One client's rules, and what its publish decisions remember (see AclDecisions). */
interface ClientDecisions {
  rules: ClientRules
  /** Levels that decide a publish when every rule ends in `#` (`a/+/#`: 2), else -1 (see decidingLevels). */
  depth: number
  /** With `depth` >= 0: the last topic decided, where its deciding levels end (see endOfLevels), and the answer. */
  last: string | null
  lastEnd: number
  lastAllowed: boolean
  /** With `depth` -1: the answer for each topic, up to DECISIONS_PER_CLIENT of them. */
  published: Map<string, boolean> | null
}

/**
 * Publish decisions per client: the client's rules worked out once, and each answer remembered, so a client
 * publishing to the same topics again costs a compare or a lookup, not an ACL walk. Keyed by the client's ClientInfo
 * (one object for the life of its connection), so it goes when the client goes. The ACL rules do not change while
 * the broker runs (a users-file reload changes passwords, not rules), so nothing is stale.
 *
 * When every rule of a client ends in `#` (`#`, `sensors/#`, `site/+/#`), a decision depends only on the topic's
 * first levels, as many as the deepest rule has before its `#`: the answer for one topic holds for every topic with
 * the same first levels, and a device publishing over many topics under them is decided once, without a map of
 * topics to fill and empty. Other rules (`a/b`, `a/+`) can depend on the whole topic: their answers are kept by topic.
 */
class AclDecisions {
  private readonly byClient = new WeakMap<ClientInfo, ClientDecisions>()

  constructor(private readonly acl: Acl) {}

  rules(client: ClientInfo): ClientRules {
    return this.entry(client).rules
  }

  mayPublish(client: ClientInfo, topic: string): boolean {
    const entry = this.entry(client)
    if (entry.depth >= 0) {
      if (entry.last !== null && sameLevels(entry.last, entry.lastEnd, topic, entry.depth)) return entry.lastAllowed
      entry.lastAllowed = mayPublish(entry.rules, topic)
      entry.last = topic
      entry.lastEnd = endOfLevels(topic, entry.depth)
      return entry.lastAllowed
    }
    const published = (entry.published ??= new Map())
    let allowed = published.get(topic)
    if (allowed === undefined) {
      allowed = mayPublish(entry.rules, topic)
      if (published.size >= DECISIONS_PER_CLIENT) published.clear()
      published.set(topic, allowed)
    }
    return allowed
  }

  private entry(client: ClientInfo): ClientDecisions {
    let entry = this.byClient.get(client)
    if (!entry) {
      const rules = this.acl.forClient(client)
      entry = { rules, depth: decidingLevels(rules), last: null, lastEnd: -1, lastAllowed: false, published: null }
      this.byClient.set(client, entry)
    }
    return entry
  }
}

/**
 * How many first levels of a topic decide a publish under these rules: when every publish and deny filter ends in
 * `#`, the most levels any has before it; -1 when one does not (it may match on the whole topic). A filter `X/#`
 * matches a topic with at least X's levels exactly when those levels match X (section 4.7.1.2), and the `$` rule
 * [MQTT-4.7.2-1] reads the first level.
 */
function decidingLevels(rules: ClientRules): number {
  let depth = 0
  for (const list of [rules.publish, rules.denyPublish]) {
    for (const filter of list) {
      if (filter !== '#' && !filter.endsWith('/#')) return -1
      const levels = filter.split('/').length - 1
      if (levels > depth) depth = levels
    }
  }
  return depth
}

/** Where the first `depth` levels of `topic` end; -1 when it has fewer (then the answer is for this topic alone). */
function endOfLevels(topic: string, depth: number): number {
  let end = 0
  for (let level = 0; level < depth; level++) {
    if (level > 0 && end === topic.length) return -1
    const slash = topic.indexOf('/', level === 0 ? 0 : end + 1)
    end = slash === -1 ? topic.length : slash
  }
  return end
}

/**
 * Whether `topic` has the `depth` first levels of `last`, which end at `end` (its first `end` characters, then the
 * end of a level). With no level deciding (`#` alone), only whether both begin with `$` [MQTT-4.7.2-1].
 */
function sameLevels(last: string, end: number, topic: string, depth: number): boolean {
  if (last === topic) return true
  if (depth === 0) return (last.charCodeAt(0) === DOLLAR) === (topic.charCodeAt(0) === DOLLAR)
  return end >= 0 && sameLevelsUpTo(last, end, topic)
}

const DOLLAR = 0x24

/**
 * Successful verifications, remembered for a while: one entry per user, holding an HMAC of the password given (with a
 * key made at start and never stored) and the hash it was verified against. A repeat of the same password against
 * the same hash within the time is accepted on the digest alone; anything else is verified in full. The trade-off:
 * for `ttl` after a success, the process's memory holds digests that would confirm a guess made with the key.
 */
class Verified {
  private readonly key = randomBytes(32)
  private readonly entries = new Map<string, { digest: Buffer; hash: string; until: number }>()

  constructor(private readonly ttl: number) {}

  has(username: string, password: Buffer | undefined, hash: string): boolean {
    const entry = this.ttl > 0 ? this.entries.get(username) : undefined
    if (!entry || entry.hash !== hash) return false
    if (entry.until <= Date.now()) {
      this.entries.delete(username)
      return false
    }
    return timingSafeEqual(entry.digest, this.digest(username, password))
  }

  remember(username: string, password: Buffer | undefined, hash: string): void {
    if (this.ttl > 0) this.entries.set(username, { digest: this.digest(username, password), hash, until: Date.now() + this.ttl })
  }

  private digest(username: string, password: Buffer | undefined): Buffer {
    return createHmac('sha256', this.key).update(username).update('\0').update(password ?? Buffer.alloc(0)).digest()
  }
}

/** A valid hash of nothing anyone types, to spend the same time on unknown users. */
const DUMMY_HASH = '$2b$04$GZrMX/SDVB7Gxb.R6fSUcuGjmz1QDD/OwKzr8o9HzslDUnM9P9rIm' // bcrypt, cost 4, of a random UUID thrown away
