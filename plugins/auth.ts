/**
 * auth({ users, usersFile, acl, allowAnonymous }): usernames with hashed passwords and topic ACLs.
 *
 * - Passwords are stored as Bun.password hashes (argon2id or bcrypt; `bun run hash-password` prints one) and
 *   checked off the event loop. Plain text is refused unless `allowPlainTextPasswords` (development only).
 * - Wrong credentials: CONNACK 0x86 (3.1.1: 4). No username while anonymous clients are not allowed: 0x87 (3.1.1: 5).
 * - ACL: see plugins/acl.ts. Denied publish: PUBACK/PUBREC 0x87 (QoS 0 dropped); denied subscribe: SUBACK 0x87 (3.1.1: 0x80).
 * - `usersFile` (JSON, or a TS/JS module exporting the same object) is read at start and again on SIGHUP.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { ConfigError, type Logger, type Plugin, Reason, validatePluginOptions } from '../src/index.ts'
import { Acl, type AclRule } from './acl.ts'

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
  const acl = new Acl(config.acl as AclRule[])
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

  async function verify(password: Buffer | undefined, stored: string): Promise<boolean> {
    const given = password?.toString('utf8') ?? ''
    if (HASH.test(stored)) return Bun.password.verify(given, stored)
    // Plain text (development): compare digests so the time does not depend on where they differ.
    const a = createHash('sha256').update(given).digest()
    const b = createHash('sha256').update(stored).digest()
    return timingSafeEqual(a, b)
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

    async authenticate(request) {
      const who = { clientId: request.clientId, address: request.address }
      if (request.username === undefined) {
        if (config.allowAnonymous) return 'allow'
        failed(`anonymous@${request.address}`, { ...who, reason: 'anonymous clients are not allowed' })
        return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: 'a username is required' }
      }
      // A client certificate verified by the TLS listener is the credential; its CN is the username.
      if (request.certificate) return 'allow'
      const entry = known[request.username]
      // Unknown users still pay for one verification, so timing does not tell which names exist.
      const ok = entry ? await verify(request.password, entry.password) : (await verify(request.password, DUMMY_HASH), false)
      if (ok) {
        failures.delete(request.username)
        return 'allow'
      }
      failed(request.username, { ...who, username: request.username, reason: entry ? 'wrong password' : 'unknown user' })
      return { decision: 'deny', reasonCode: Reason.BadUsernameOrPassword, reasonString: 'bad username or password' }
    },

    authorizePublish(client, message) {
      if (acl.canPublish(client, message.topic)) return 'allow'
      return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: `not allowed to publish to ${message.topic}` }
    },

    authorizeSubscribe(client, subscription) {
      // A shared subscription ($share/{group}/{filter}) is checked on its topic filter.
      if (acl.canSubscribe(client, subscription.filter)) return 'allow'
      return { decision: 'deny', reasonCode: Reason.NotAuthorized, reasonString: `not allowed to subscribe to ${subscription.filter}` }
    },
  }
}

/** A valid hash of nothing anyone types, to spend the same time on unknown users. */
const DUMMY_HASH = Bun.password.hashSync('midge-no-such-user', { algorithm: 'bcrypt', cost: 4 })
