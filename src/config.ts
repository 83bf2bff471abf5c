/**
 * The configuration schema. `mqtt.config.ts` exports `defineConfig({...})`; start-up validates it here
 * and stops with one line per bad field. Every limit has a default documented in the README.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { ConfigError } from './errors.ts'
import { LogLevels } from './logger.ts'
import type { BanRules } from './bans.ts'
import type { Limits } from './limits.ts'
import type { Plugin } from './plugin.ts'

const int = (min: number, max: number) => {
  const error = `expected a whole number from ${min} to ${max}`
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error })
}

const KiB = 1024
const MiB = 1024 * KiB
/** Largest remaining length MQTT can encode (four-byte variable integer), MQTT 5.0 section 1.5.5. */
export const MAX_REMAINING_LENGTH = 268_435_455

const host = z.string({ error: 'expected a host name or IP address' }).min(1).default('127.0.0.1')

/** TLS for a listener: PEM files. With `requestCert`, clients must present a certificate signed by `ca`. */
const tls = z.strictObject({
  cert: z.string({ error: 'expected the path of a PEM certificate file' }).min(1),
  key: z.string({ error: 'expected the path of a PEM private key file' }).min(1),
  ca: z.string().min(1).optional(),
  requestCert: z.boolean().default(false),
  /** Use the client certificate's common name (CN) as the MQTT username (for ACLs). Needs `requestCert`. */
  certificateAsUsername: z.boolean().default(false),
})

/** Inbound rate limits per client (rate.ts): PUBLISH messages and bytes per second, with a burst; 0 = none. */
const rate = z.strictObject({
  messagesPerSecond: int(0, 100_000_000).default(0),
  bytesPerSecond: int(0, 2 ** 40).default(0),
  /** Taken at once above the rate; default: one second's worth. */
  burstMessages: int(1, 100_000_000).optional(),
  burstBytes: int(1, 2 ** 40).optional(),
  /** Over the limit: stop reading that socket until it is back under (`pause`), or DISCONNECT 0x96 (`disconnect`). */
  action: z.enum(['pause', 'disconnect']).default('pause'),
})

/** SO_REUSEPORT (Linux): several processes (the nodes of `--nodes`) listen on one port, the kernel spreads connections. */
const reusePort = z.boolean().default(false)

const tcpListener = z.strictObject({
  type: z.literal('tcp'),
  host,
  port: int(0, 65535).default(1883),
  tls: tls.optional(),
  reusePort,
  /** This listener's clients' rate limits, over `limits.rate`. */
  rate: rate.optional(),
})

const websocketListener = z.strictObject({
  type: z.literal('websocket'),
  host,
  port: int(0, 65535).default(8083),
  path: z.string().startsWith('/', { error: 'expected a path starting with /' }).default('/mqtt'),
  tls: tls.optional(),
  reusePort,
  rate: rate.optional(),
})

const listener = z.discriminatedUnion('type', [tcpListener, websocketListener], { error: 'expected type "tcp" or "websocket"' })

const scope = z.enum(['read', 'publish', 'admin'], { error: 'expected "read", "publish" or "admin"' })

const http = z.strictObject({
  host,
  port: int(0, 65535).default(8080),
  tls: tls.optional(),
  reusePort,
  /** Also accept MQTT over WebSocket on this port at this path; false turns it off. */
  websocketPath: z.union([z.string().startsWith('/', { error: 'expected a path starting with /' }), z.literal(false)]).default('/mqtt'),
  /** Bearer tokens and what each may do. */
  tokens: z.array(z.strictObject({ name: z.string().min(1), token: z.string().min(16, { error: 'expected a token of at least 16 characters' }), scopes: z.array(scope).min(1) })).default([]),
  /** Scopes for users of the auth plugin who sign in with HTTP Basic auth ([] turns Basic auth off). */
  basicAuthScopes: z.array(scope).default(['read', 'publish']),
  /** Scopes granted without credentials. Empty unless the config says so. */
  anonymousScopes: z.array(scope).default([]),
  /** Serve /metrics without credentials (for a Prometheus scraper). */
  publicMetrics: z.boolean().default(false),
})

const limits = z.strictObject({
  /** Largest packet accepted from a client, in bytes (advertised to MQTT 5 clients). */
  maxPacketSize: int(64, MAX_REMAINING_LENGTH + 5).default(1 * MiB),
  /** A socket that sends no CONNECT within this time is closed. */
  connectTimeoutMs: int(100, 600_000).default(10_000),
  /** Highest keep alive granted; MQTT 5 clients asking for more (or for 0) get this as Server Keep Alive. */
  maxKeepAliveSeconds: int(1, 65535).default(65535),
  /** Unacknowledged QoS 2 messages a client may have open towards the broker (Receive Maximum). */
  receiveMaximum: int(1, 65535).default(64),
  /** Unacknowledged QoS 1/2 messages the broker has in flight to one client (capped by the client's Receive Maximum). */
  maxInflight: int(1, 65535).default(64),
  /** Topic aliases a MQTT 5 client may use towards the broker (0 disables them). */
  topicAliasMaximum: int(0, 65535).default(32),
  /** QoS 1/2 messages held for one session while it is offline or its window is full; past it new ones are dropped (counted). */
  maxQueuedMessages: int(0, 10_000_000).default(1000),
  /** The same queue, bounded in payload bytes. */
  maxQueuedBytes: int(0, 2 ** 31).default(16 * MiB),
  /** Bytes waiting to be written to one socket before QoS 0 messages to it are dropped. */
  maxOutboundBufferBytes: int(1 * KiB, 2 ** 31).default(1 * MiB),
  /** A client whose socket stays blocked this long is disconnected (slow consumer). */
  drainTimeoutMs: int(100, 3_600_000).default(30_000),
  /** Ceiling on any session's expiry; 4294967295 means sessions may live for ever. */
  maxSessionExpirySeconds: int(0, 0xffffffff).default(0xffffffff),
  /** Most levels a topic name or filter may have. */
  maxTopicLevels: int(1, 65535).default(128),
  /** Longest topic name or filter, in UTF-8 bytes. */
  maxTopicLength: int(1, 65535).default(65535),
  /** Connected (and connecting) clients in all; CONNECT past it gets 0x89 Server busy (3.1.1: 3). */
  maxConnections: int(1, 10_000_000).default(100_000),
  /** Open connections from one IP address; past it a new socket is closed at once. 0 = no limit. */
  maxConnectionsPerIp: int(0, 10_000_000).default(0),
  /** New connections per second from one IP address (bursts up to that many); past it they are closed at once. 0 = no limit. */
  connectRatePerIp: int(0, 1_000_000).default(0),
  /** Subscriptions one session may hold; a filter past it gets SUBACK 0x97 Quota exceeded (3.1.1: 0x80). */
  maxSubscriptionsPerClient: int(1, 10_000_000).default(10_000),
  /** Ceiling on a message's expiry interval (MQTT 5), in seconds; 0 = no ceiling. */
  maxMessageExpirySeconds: int(0, 0xffffffff).default(0),
  /** Retained messages one client may keep (those it published and nobody replaced); past it a retained PUBLISH gets PUBACK 0x97. 0 = no limit. */
  maxRetainedPerClient: int(0, 100_000_000).default(0),
  /** Largest payload of one message, in bytes; past it a PUBLISH is refused (PUBACK 0x97 Quota exceeded; QoS 0 dropped). 0 = only maxPacketSize. */
  maxPayloadBytes: int(0, MAX_REMAINING_LENGTH).default(0),
  /** Every client's inbound rate limits (a listener's `rate` and a plugin's grant override them). */
  rate: rate.prefault({}),
})

/** A ban rule: more than `max` events in `windowSeconds` bans the subject for `banSeconds`; max 0 turns it off. */
const banRule = (max: number, windowSeconds: number, banSeconds: number) =>
  z.strictObject({ max: int(0, 1_000_000).default(max), windowSeconds: int(1, 86_400).default(windowSeconds), banSeconds: int(1, 31_536_000).default(banSeconds) })

const bans = z.strictObject({
  /** An address or client id whose CONNECT is refused by authentication more than `max` times in the window. */
  authFailures: banRule(10, 60, 300).prefault({}),
  /** A client id that connects and goes more than `max` times in the window (flapping). */
  flapping: banRule(30, 60, 120).prefault({}),
  /** An address whose connections connect and go more than `max` times in the window; off (0) by default, since
   * many clients may share one address (NAT, a gateway, 127.0.0.1). */
  addressFlapping: banRule(0, 60, 120).prefault({}),
})

const sys = z.strictObject({
  /** How often `$SYS/broker/...` topics are published (retained); 0 turns them off. */
  intervalSeconds: int(0, 86_400).default(10),
})

const log = z.strictObject({
  level: z.enum(LogLevels, { error: `expected one of ${LogLevels.join(', ')}` }).default('info'),
})

const plugin = z.custom<Plugin>((value) => typeof value === 'object' && value !== null && typeof (value as { name?: unknown }).name === 'string', {
  error: 'expected a plugin object with a name, as made by a plugin factory such as auth({...})',
})

const cluster = z.strictObject({
  nats: z.strictObject({
    /** NATS server URL(s), e.g. 'nats://10.0.0.5:4222'. */
    servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'expected a NATS server URL or a list of them' }),
    /** A NATS credentials file (.creds), when the server asks for one. */
    credentials: z.string().min(1).optional(),
    /** Name shared by every node of one cluster: the prefix of its subjects, stream and KV bucket. */
    name: z.string().regex(/^[A-Za-z0-9_-]+$/, { error: 'expected letters, digits, - or _' }).default('midge'),
  }),
  /** This node's name in logs and on the wire; random when not given. */
  nodeId: z.string().regex(/^[A-Za-z0-9_-]+$/, { error: 'expected letters, digits, - or _' }).optional(),
})

/** True when A and B are the same type: the schema's output must be exactly the core's plain interface. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const limitsAreTheCoresLimits: Same<z.output<typeof limits>, Limits> = true
const bansAreTheCoresBanRules: Same<z.output<typeof bans>, BanRules> = true
void limitsAreTheCoresLimits
void bansAreTheCoresBanRules

export const configSchema = z.strictObject({
  listeners: z.array(listener).min(1, { error: 'expected at least one listener' }).prefault([{ type: 'tcp' }]),
  /** The HTTP API (Hono): publish, health, metrics, admin. Off when absent. */
  http: http.optional(),
  /** Several nodes as one broker on NATS JetStream. Off when absent (and NATS is not even loaded). */
  cluster: cluster.optional(),
  /** Plugins, in the order their hooks are asked. */
  plugins: z.array(plugin).default([]),
  limits: limits.prefault({}),
  /** Automatic bans; bans by hand go through the HTTP admin API. */
  bans: bans.prefault({}),
  sys: sys.prefault({}),
  log: log.prefault({}),
})

/** What a user writes in mqtt.config.ts: every field optional. */
export type UserConfig = z.input<typeof configSchema>
/** The validated configuration with every default filled in. */
export type ResolvedConfig = z.output<typeof configSchema>
export type { Limits } from './limits.ts'
export type ListenerConfig = ResolvedConfig['listeners'][number]
export type TlsConfig = z.output<typeof tls>
export type HttpConfig = z.output<typeof http>
export type Scope = z.output<typeof scope>
export type ClusterConfig = z.output<typeof cluster>

/** Identity function that gives mqtt.config.ts full types and completion. */
export function defineConfig(config: UserConfig): UserConfig {
  return config
}

/** Validates a config object; throws ConfigError naming every bad field. */
export function resolveConfig(input: unknown, source = 'config'): ResolvedConfig {
  return validate(configSchema, input ?? {}, `Invalid ${source}`)
}

/**
 * Validates a plugin's options once, when its factory is called; a bad option throws ConfigError
 * naming the plugin and the field, e.g. `Invalid options for plugin auth:\n  users.alice.password: ...`.
 */
export function validatePluginOptions<S extends z.ZodType>(pluginName: string, schema: S, options: unknown): z.output<S> {
  return validate(schema, options ?? {}, `Invalid options for plugin ${pluginName}`)
}

function validate<S extends z.ZodType>(schema: S, input: unknown, heading: string): z.output<S> {
  const result = schema.safeParse(input, { reportInput: true })
  if (result.success) return result.data
  throw new ConfigError(`${heading}:\n  ${formatIssues(result.error.issues).join('\n  ')}`)
}

/** One readable line per zod issue: `path: what was expected, got <value>` (parse with reportInput). */
export function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.flatMap(describeIssue)
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const path = formatPath(issue.path)
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${path ? path + '.' : ''}${key}: unknown field`)
  }
  let input = issue.input
  // A discriminated union reports the whole object; name the discriminator's own value instead.
  const key = issue.path[issue.path.length - 1]
  if (issue.code === 'invalid_union' && typeof input === 'object' && input !== null && typeof key === 'string' && key in input) input = (input as Record<string, unknown>)[key]
  const got = input === undefined ? 'nothing' : JSON.stringify(input)
  return [`${path || '(root)'}: ${issue.message}, got ${got}`]
}

function formatPath(path: PropertyKey[]): string {
  let out = ''
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : out ? `.${String(key)}` : String(key)
  return out
}

/** Values from the command line or environment that override the config file. */
export interface ConfigOverrides {
  /** Port of the first TCP listener (`--port` or `PORT`). Kept as given so validation can name a bad value. */
  port?: string
  /** Port of the HTTP API (`HTTP_PORT`), when the config has one. */
  httpPort?: string
}

/** Loads and validates a config file (`export default defineConfig({...})`), applying overrides first. */
export async function loadConfig(path: string, overrides: ConfigOverrides = {}): Promise<ResolvedConfig> {
  const absolute = resolve(path)
  let mod: { default?: unknown }
  try {
    mod = await import(pathToFileURL(absolute).href)
  } catch (error) {
    if (error instanceof ConfigError) throw error // a plugin factory refused its options
    throw new ConfigError(`Cannot load config file ${absolute}: ${(error as Error).message}`)
  }
  if (mod.default === undefined) throw new ConfigError(`${absolute} has no default export; write \`export default defineConfig({...})\``)
  return resolveConfig(applyOverrides(mod.default, overrides), absolute)
}

/** A config given as a value (the built-in defaults), with the same overrides a file gets. */
export function resolveWithOverrides(config: UserConfig, overrides: ConfigOverrides = {}): ResolvedConfig {
  return resolveConfig(applyOverrides(config, overrides))
}

function applyOverrides(config: unknown, overrides: ConfigOverrides): unknown {
  if (typeof config !== 'object' || config === null) return config
  const asPort = (value: string) => (/^\d+$/.test(value) ? Number(value) : value)
  let raw = config as { listeners?: unknown; http?: unknown }
  if (overrides.port !== undefined) {
    const port = asPort(overrides.port)
    const listeners = Array.isArray(raw.listeners) ? [...raw.listeners] : []
    const first = listeners.findIndex((l) => (l as { type?: unknown })?.type === 'tcp')
    if (first === -1) listeners.unshift({ type: 'tcp', port })
    else listeners[first] = { ...(listeners[first] as object), port }
    raw = { ...raw, listeners }
  }
  if (overrides.httpPort !== undefined && typeof raw.http === 'object' && raw.http !== null) {
    raw = { ...raw, http: { ...raw.http, port: asPort(overrides.httpPort) } }
  }
  return raw
}
