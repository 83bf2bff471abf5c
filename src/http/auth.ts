/**
 * HTTP authentication: bearer tokens from the config (each with scopes), or HTTP Basic with the auth plugin's
 * users (scopes from `http.basicAuthScopes`), or nothing (scopes from `http.anonymousScopes`, empty by default).
 */
import { timingSafeEqual } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
import type { HttpConfig, Scope } from '../config.ts'
import type { BrokerView, Principal } from './view.ts'

export interface Caller extends Principal {
  scopes: ReadonlySet<Scope>
  /** Whether the request carried credentials (decides 401 or 403 when a scope is missing). */
  authenticated: boolean
}

export type Env = { Variables: { caller: Caller }; Bindings: { ip: string } }

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Works out who is calling; a request with bad credentials gets 401 here. */
export function identify(config: HttpConfig, view: BrokerView): MiddlewareHandler<Env> {
  const anonymous = new Set(config.anonymousScopes)
  return async (c, next) => {
    const address = c.env?.ip ?? 'unknown'
    const header = c.req.header('authorization')
    if (!header) {
      c.set('caller', { name: 'anonymous', username: undefined, address, scopes: anonymous, authenticated: false })
      return next()
    }
    const [kind, value = ''] = header.split(' ', 2)
    if (kind?.toLowerCase() === 'bearer') {
      const token = config.tokens.find((t) => sameSecret(t.token, value))
      if (!token) return unauthorized(c, 'unknown bearer token')
      c.set('caller', { name: token.name, username: undefined, address, scopes: new Set(token.scopes), authenticated: true })
      return next()
    }
    if (kind?.toLowerCase() === 'basic' && config.basicAuthScopes.length > 0) {
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      const username = colon === -1 ? decoded : decoded.slice(0, colon)
      const password = colon === -1 ? '' : decoded.slice(colon + 1)
      if (!username || !(await view.checkPassword(username, password, address))) return unauthorized(c, 'bad username or password')
      c.set('caller', { name: username, username, address, scopes: new Set(config.basicAuthScopes), authenticated: true })
      return next()
    }
    return unauthorized(c, 'unsupported authorization scheme')
  }
}

/** Lets the request through when the caller has `scope`: 401 without credentials, 403 with the wrong ones. */
export function requireScope(scope: Scope): MiddlewareHandler<Env> {
  return async (c, next) => {
    const caller = c.get('caller')
    if (caller.scopes.has(scope)) return next()
    if (!caller.authenticated) return unauthorized(c, `this needs the "${scope}" scope: send a bearer token or Basic credentials`)
    return c.json({ error: 'forbidden', message: `${caller.name} lacks the "${scope}" scope` }, 403)
  }
}

function unauthorized(c: Context<Env>, message: string) {
  c.header('WWW-Authenticate', 'Bearer realm="midge", Basic realm="midge"')
  return c.json({ error: 'unauthorized', message }, 401)
}
