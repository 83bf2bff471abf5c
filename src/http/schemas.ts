/** Request and response shapes of the HTTP API: validated with zod, and the source of /openapi.json. */
import { z } from 'zod'

export const QoSSchema = z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'expected 0, 1 or 2' })

export const PublishBody = z
  .strictObject({
    topic: z.string({ error: 'expected a topic name' }).min(1, { error: 'expected a topic name' }),
    /** Text (utf8), base64 text (base64) or any JSON value (json, sent as its JSON text). */
    payload: z.unknown(),
    encoding: z.enum(['utf8', 'base64', 'json'], { error: 'expected "utf8", "base64" or "json"' }).default('utf8'),
    qos: QoSSchema.default(0),
    retain: z.boolean({ error: 'expected true or false' }).default(false),
    properties: z
      .strictObject({
        contentType: z.string().optional(),
        responseTopic: z.string().min(1).optional(),
        /** Sent as the UTF-8 bytes of this string. */
        correlationData: z.string().optional(),
        messageExpiryInterval: z.number().int().min(0).max(0xffffffff).optional(),
        payloadFormatIndicator: z.boolean().optional(),
        userProperties: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
      })
      .optional(),
  })
  .superRefine((body, ctx) => {
    if (body.encoding === 'json') {
      if (body.payload === undefined) ctx.addIssue({ code: 'custom', path: ['payload'], message: 'expected a JSON value' })
    } else if (typeof body.payload !== 'string') {
      ctx.addIssue({ code: 'custom', path: ['payload'], input: body.payload, message: `expected a string with encoding "${body.encoding}"` })
    } else if (body.encoding === 'base64' && !/^[A-Za-z0-9+/]*={0,2}$/.test(body.payload)) {
      ctx.addIssue({ code: 'custom', path: ['payload'], input: body.payload, message: 'expected base64 text' })
    }
  })
export type PublishBody = z.output<typeof PublishBody>

/** `POST /api/v1/publish?topic=...&qos=...&retain=...` with the raw body as payload. */
export const PublishQuery = z.strictObject({
  topic: z.string({ error: 'expected a topic name in ?topic=' }).min(1, { error: 'expected a topic name in ?topic=' }),
  qos: z.enum(['0', '1', '2'], { error: 'expected 0, 1 or 2' }).default('0').transform(Number).pipe(QoSSchema),
  retain: z.enum(['true', 'false', '1', '0'], { error: 'expected true or false' }).default('false').transform((v) => v === 'true' || v === '1'),
})

export const PublishResult = z.object({
  topic: z.string(),
  qos: QoSSchema,
  retain: z.boolean(),
  bytes: z.number().int().describe('payload size'),
  reached: z.number().int().describe('sessions the message was delivered or queued to'),
})

export const ErrorBody = z.object({ error: z.string(), message: z.string() })

export const RetainedItem = z.object({
  topic: z.string(),
  payload: z.string(),
  encoding: z.enum(['utf8', 'base64']),
  qos: QoSSchema,
  properties: z.record(z.string(), z.unknown()).optional(),
})

export const ClientItem = z.object({
  clientId: z.string(),
  connected: z.boolean(),
  username: z.string().nullable(),
  protocolVersion: z.number().int().nullable(),
  address: z.string().nullable(),
  connectedSince: z.string().nullable().describe('ISO time of the current connection'),
  keepAliveSeconds: z.number().nullable().describe('the keep alive in force (null when offline)'),
  sessionExpirySeconds: z.number().describe('Session Expiry Interval (4294967295: never; 0: ends with the connection)'),
  subscriptions: z.number().int(),
  queued: z.number().int(),
  inflight: z.number().int(),
  node: z.string().nullable().optional().describe('in a cluster: the node the client is on'),
})

export const SubscriptionItem = z.object({
  clientId: z.string(),
  filter: z.string(),
  qos: QoSSchema,
  noLocal: z.boolean(),
  retainAsPublished: z.boolean(),
  retainHandling: z.number().int(),
  subscriptionIdentifier: z.number().int().nullable(),
})

export const NodeStats = z.object({
  version: z.string(),
  node: z.string().nullable().describe('the cluster node these figures are for (null when not clustered)'),
  uptimeSeconds: z.number(),
  clientsConnected: z.number().int(),
  sessions: z.number().int(),
  subscriptions: z.number().int(),
  retained: z.number().int(),
  messagesReceived: z.number().int(),
  messagesSent: z.number().int(),
  messagesDropped: z.number().int(),
  bytesReceived: z.number().int(),
  bytesSent: z.number().int(),
  rateLimited: z.number().int().describe('times a client went over its inbound rate limit'),
  payloadRefused: z.number().int().describe('PUBLISHes refused for a payload over the limit'),
})

/** The counters summed over a cluster's nodes. */
export const CLUSTER_TOTALS = ['clientsConnected', 'sessions', 'subscriptions', 'messagesReceived', 'messagesSent', 'messagesDropped', 'bytesReceived', 'bytesSent'] as const

export const Stats = NodeStats.extend({
  listeners: z.array(z.object({ type: z.string(), host: z.string(), port: z.number().int(), tls: z.boolean() })).optional().describe('where this node listens'),
  cluster: z
    .object({
      nodes: z.array(NodeStats).describe('every node that answered, this one included'),
      totals: z.object(Object.fromEntries(CLUSTER_TOTALS.map((k) => [k, z.number().int()])) as Record<(typeof CLUSTER_TOTALS)[number], z.ZodNumber>),
    })
    .optional()
    .describe('in a cluster: every node\'s figures and their totals (absent with ?local=true, or while NATS is away)'),
})

export const BanKindSchema = z.enum(['clientId', 'username', 'address'], { error: 'expected "clientId", "username" or "address"' })

export const BanBody = z.strictObject({
  kind: BanKindSchema,
  value: z.string({ error: 'expected the client id, username or address to ban' }).min(1, { error: 'expected the client id, username or address to ban' }),
  /** How long the ban lasts; 0 = until removed. */
  seconds: z.number({ error: 'expected a whole number of seconds' }).int({ error: 'expected a whole number of seconds' }).min(0).max(31_536_000 * 100).default(3600),
  reason: z.string().max(200).default('banned by an administrator'),
})

export const BanItem = z.object({
  kind: BanKindSchema,
  value: z.string(),
  reason: z.string(),
  createdAt: z.string().describe('ISO time'),
  expiresAt: z.string().nullable().describe('ISO time; null while the ban lasts until removed'),
})

/** A plugin and what it reports (the same figures as /metrics and $SYS/broker/plugins/...). */
export const PluginItem = z.object({ name: z.string(), metrics: z.record(z.string(), z.number()) })
