/**
 * httpAuth({ url, ... }): an HTTP endpoint of the user's decides who connects (and, if asked, who publishes and
 * subscribes), as EMQX's HTTP authentication, mosquitto-go-auth's http backend and VerneMQ's webhooks do.
 *
 * Request: POST `url`, JSON `{ action: "connect" | "publish" | "subscribe", clientId, username, password, address,
 * protocolVersion, topic?, qos? }` (`password` as UTF-8 text, or base64 with `passwordEncoding: "base64"` when it
 * is not valid UTF-8; connect only).
 * Answer: HTTP 200 with JSON `{ result: "allow" | "deny" | "ignore", reasonCode?, reason?, acl? }`. `ignore` leaves
 * the decision to the next plugin. `acl` (on connect: `{ publish?, subscribe?, deny?: { publish?, subscribe? } }`,
 * filters with `%u` and `%c`) is then what this client may do for as long as it is connected: the broker checks it
 * (a Grant, see the plugin API) and the endpoint is not asked about that client's publishes and subscriptions.
 * 401 and 403 deny.
 * Anything else (a timeout, the endpoint down, another status, a body that is not such JSON) is a failure: denied
 * unless `onFailure: 'allow'`, and logged once when failures start and once when they stop. Passwords, tokens and
 * the request body never appear in the log.
 * Publish and subscribe decisions are kept for `cacheSeconds` per client and topic (or filter).
 */
import { z } from 'zod'
import { type AuthenticateRequest, type ClientInfo, type Decision, type Logger, type Plugin, validatePluginOptions } from '../src/index.ts'

const Options = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
  /** What is asked of the endpoint; what is not asked is left to the next plugin. */
  on: z.array(z.enum(['connect', 'publish', 'subscribe'])).min(1).default(['connect']),
  timeoutMs: z.number().int().min(10).max(60_000).default(2000),
  /** How long a publish or subscribe answer is kept, per client and topic; 0 asks every time. */
  cacheSeconds: z.number().min(0).max(86_400).default(60),
  /** Most answers kept (the oldest go first). */
  cacheSize: z.number().int().min(0).default(10_000),
  /** When the endpoint cannot answer: `deny` (fail closed, the default) or `allow`. */
  onFailure: z.enum(['deny', 'allow']).default('deny'),
  headers: z.record(z.string(), z.string()).default({}),
})

export type HttpAuthOptions = z.input<typeof Options>

const AclAnswer = z.object({
  publish: z.array(z.string()).optional(),
  subscribe: z.array(z.string()).optional(),
  deny: z.object({ publish: z.array(z.string()).optional(), subscribe: z.array(z.string()).optional() }).optional(),
})

const Answer = z.object({
  result: z.enum(['allow', 'deny', 'ignore']),
  reasonCode: z.number().int().min(0x80).max(0xff).optional(),
  reason: z.string().max(200).optional(),
  acl: AclAnswer.optional(),
})

type Action = 'connect' | 'publish' | 'subscribe'

/** A failure of the endpoint (not an answer): decided by `onFailure`. */
class Unanswered extends Error {}

export function httpAuth(options: HttpAuthOptions): Plugin {
  const config = validatePluginOptions('httpAuth', Options, options)
  const asks = new Set<Action>(config.on)
  let logger: Logger | undefined
  let failing = false
  /** Client ids whose connect answer carried an ACL: the broker checks it, the endpoint is not asked again. */
  const granted = new Set<string>()
  /** Publish and subscribe answers: `clientId \n action \n topic` → decision and when it stops counting. */
  const cache = new Map<string, { decision: Decision; until: number }>()

  async function ask(body: Record<string, unknown>): Promise<z.infer<typeof Answer>> {
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), config.timeoutMs)
    try {
      let response: Response
      try {
        response = await fetch(config.url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'midge-http-auth', ...config.headers }, body: JSON.stringify(body), signal: abort.signal })
      } catch (error) {
        throw new Unanswered(abort.signal.aborted ? `no answer within ${config.timeoutMs} ms` : (error as Error).message)
      }
      if (response.status === 401 || response.status === 403) {
        await response.arrayBuffer().catch(() => undefined)
        return { result: 'deny' }
      }
      if (response.status !== 200) {
        await response.arrayBuffer().catch(() => undefined)
        throw new Unanswered(`HTTP ${response.status}`)
      }
      let json: unknown
      try {
        json = await response.json()
      } catch {
        throw new Unanswered('the answer is not JSON')
      }
      const parsed = Answer.safeParse(json)
      if (!parsed.success) throw new Unanswered(`the answer is not { result: "allow" | "deny" | "ignore", ... }: ${parsed.error.issues[0]!.path.join('.') || 'body'} ${parsed.error.issues[0]!.message}`)
      if (failing) {
        failing = false
        logger?.info('http_auth.recovered', { url: config.url })
      }
      return parsed.data
    } finally {
      clearTimeout(timer)
    }
  }

  /** The decision for a request, with the endpoint's failures handled as configured (and logged once per outage). */
  async function decide(body: Record<string, unknown>, onAnswer?: (answer: z.infer<typeof Answer>) => void): Promise<Decision> {
    try {
      const answer = await ask(body)
      onAnswer?.(answer)
      if (answer.result === 'allow') return answer.acl ? { decision: 'allow', acl: answer.acl } : 'allow'
      if (answer.result === 'ignore') return 'abstain'
      return { decision: 'deny', reasonCode: answer.reasonCode, reasonString: answer.reason }
    } catch (error) {
      if (!(error instanceof Unanswered)) throw error
      if (!failing) {
        failing = true
        logger?.error('http_auth.unreachable', { url: config.url, action: body.action, error: error.message, effect: config.onFailure === 'deny' ? 'clients are refused until it answers (onFailure: deny)' : 'clients are let in until it answers (onFailure: allow)' })
      }
      return config.onFailure === 'allow' ? 'allow' : { decision: 'deny', reasonString: 'the authorization service is unavailable' }
    }
  }

  /** A publish or subscribe decision: none for a client with a granted ACL (the broker checked it), else cached or asked. */
  function authorize(client: ClientInfo, action: 'publish' | 'subscribe', topic: string, qos: number, group?: string): Decision | Promise<Decision> {
    if (!asks.has(action) || granted.has(client.clientId)) return 'abstain'
    const key = `${client.clientId}\n${action}\n${group ?? ''}\n${topic}`
    const kept = cache.get(key)
    if (kept && kept.until > Date.now()) return kept.decision
    return decide({ action, clientId: client.clientId, username: client.username ?? null, address: client.address, protocolVersion: client.protocolVersion, topic, qos, ...(group === undefined ? {} : { group }) }).then((decision) => {
      if (config.cacheSeconds > 0 && config.cacheSize > 0 && !failing) {
        if (cache.size >= config.cacheSize) cache.delete(cache.keys().next().value!)
        cache.set(key, { decision, until: Date.now() + config.cacheSeconds * 1000 })
      }
      return decision
    })
  }

  function credentials(request: AuthenticateRequest): Record<string, unknown> {
    if (request.password === undefined) return { password: null }
    const text = request.password.toString('utf8')
    return Buffer.from(text, 'utf8').equals(request.password) ? { password: text } : { password: request.password.toString('base64'), passwordEncoding: 'base64' }
  }

  return {
    name: 'httpAuth',
    start(ctx) {
      logger = ctx.logger
      ctx.logger.info('http_auth.started', { url: config.url, on: config.on, onFailure: config.onFailure })
    },
    authenticate(request) {
      if (!asks.has('connect')) return 'abstain'
      const body = { action: 'connect', clientId: request.clientId, username: request.username ?? null, address: request.address, protocolVersion: request.protocolVersion, ...credentials(request) }
      return decide(body, (answer) => {
        if (answer.result === 'allow' && answer.acl) granted.add(request.clientId)
        else granted.delete(request.clientId)
      })
    },
    onDisconnect(client) {
      granted.delete(client.clientId)
    },
    authorizePublish: (client, message) => authorize(client, 'publish', message.topic, message.qos),
    authorizeSubscribe: (client, subscription) => authorize(client, 'subscribe', subscription.filter, subscription.qos, subscription.group),
  }
}
