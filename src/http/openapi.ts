/** /openapi.json, generated from the same zod schemas that validate requests (never written twice). */
import { z } from 'zod'
import { VERSION } from '../sys.ts'
import { BanBody, BanItem, ClientItem, ErrorBody, PluginItem, PublishBody, PublishQuery, PublishResult, RetainedItem, Stats, SubscriptionItem } from './schemas.ts'

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => ({ 'application/json': { schema: z.toJSONSchema(schema, { io, unrepresentable: 'any' }) } })
const errors = (...codes: number[]) => Object.fromEntries(codes.map((code) => [String(code), { description: httpText[code] ?? 'error', content: json(ErrorBody) }]))
const httpText: Record<number, string> = { 400: 'invalid request (the message names the field)', 401: 'credentials missing or wrong', 403: 'not allowed', 404: 'not found', 413: 'over the maximum packet size', 503: 'routed, but a store could not keep it (QoS 1/2): not acknowledged' }
const secured = [{ bearer: [] }, { basic: [] }]

export function openApiDocument() {
  const queryParams = Object.entries(z.toJSONSchema(PublishQuery, { io: 'input' }).properties ?? {}).map(([name, schema]) => ({ name, in: 'query', required: name === 'topic', schema }))
  return {
    openapi: '3.1.0',
    info: { title: 'Midge HTTP API', version: VERSION, description: 'Publish to MQTT over HTTP, inspect and administer the broker.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } } },
    paths: {
      '/api/v1/publish': {
        post: {
          summary: 'Publish a message (scope: publish). JSON body, or a raw body with ?topic=&qos=&retain=.',
          security: secured,
          parameters: queryParams.map((p) => ({ ...p, required: false, description: 'only with a non-JSON body' })),
          requestBody: { required: true, content: { ...json(PublishBody, 'input'), 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          responses: { 200: { description: 'published', content: json(PublishResult) }, ...errors(400, 401, 403, 413, 503) },
        },
      },
      '/api/v1/retained': {
        get: {
          summary: 'Retained messages matching a filter (scope: read).',
          security: secured,
          parameters: [
            { name: 'filter', in: 'query', required: false, schema: { type: 'string', default: '#' } },
            { name: 'limit', in: 'query', required: false, schema: { type: 'integer', default: 1000 } },
          ],
          responses: { 200: { description: 'retained messages', content: json(z.object({ retained: z.array(RetainedItem) })) }, ...errors(400, 401, 403) },
        },
      },
      '/api/v1/retained/{topic}': {
        delete: {
          summary: 'Clear the retained message of a topic (scope: publish); the topic may contain slashes.',
          security: secured,
          parameters: [{ name: 'topic', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: { description: 'cleared', content: json(z.object({ topic: z.string(), cleared: z.boolean() })) }, ...errors(400, 401, 403) },
        },
      },
      '/api/v1/clients': { get: { summary: 'Sessions and their clients on this node (scope: read).', security: secured, responses: { 200: { description: 'clients', content: json(z.object({ node: z.string().nullable(), clients: z.array(ClientItem) })) }, ...errors(401, 403) } } },
      '/api/v1/clients/{id}': {
        delete: {
          summary: 'Disconnect a client (scope: admin); MQTT 5 clients get DISCONNECT 0x98.',
          security: secured,
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { 200: { description: 'disconnected', content: json(z.object({ clientId: z.string(), disconnected: z.literal(true) })) }, ...errors(401, 403, 404) },
        },
      },
      '/api/v1/bans': {
        get: { summary: 'Bans in force, by hand and automatic (scope: admin).', security: secured, responses: { 200: { description: 'bans', content: json(z.object({ bans: z.array(BanItem) })) }, ...errors(401, 403) } },
        post: {
          summary: 'Ban a client id, username or address (scope: admin); its connected clients are disconnected (MQTT 5: 0x98), new CONNECTs get 0x8A.',
          security: secured,
          requestBody: { required: true, content: json(BanBody, 'input') },
          responses: { 201: { description: 'banned', content: json(BanItem) }, ...errors(400, 401, 403) },
        },
      },
      '/api/v1/bans/{kind}/{value}': {
        delete: {
          summary: 'Lift a ban (scope: admin).',
          security: secured,
          parameters: [
            { name: 'kind', in: 'path', required: true, schema: { type: 'string', enum: ['clientId', 'username', 'address'] } },
            { name: 'value', in: 'path', required: true, schema: { type: 'string' } },
          ],
          responses: { 200: { description: 'removed' }, ...errors(400, 401, 403, 404) },
        },
      },
      '/api/v1/subscriptions': { get: { summary: 'Every subscription (scope: read).', security: secured, responses: { 200: { description: 'subscriptions', content: json(z.object({ subscriptions: z.array(SubscriptionItem) })) }, ...errors(401, 403) } } },
      '/api/v1/plugins': { get: { summary: 'Each plugin and the figures it reports, e.g. a bridge\'s connected, forwardedOut, forwardedIn, queued, dropped (scope: read).', security: secured, responses: { 200: { description: 'plugins', content: json(z.object({ plugins: z.array(PluginItem) })) }, ...errors(401, 403) } } },
      '/api/v1/stats': { get: { summary: 'Counters (scope: read).', security: secured, responses: { 200: { description: 'stats', content: json(Stats) }, ...errors(401, 403) } } },
      '/healthz': { get: { summary: 'Liveness; always open.', responses: { 200: { description: 'alive' } } } },
      '/readyz': { get: { summary: 'Readiness: 503 while starting or shutting down.', responses: { 200: { description: 'ready' }, 503: { description: 'not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus text format (scope: read, unless http.publicMetrics).', responses: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { summary: 'This document.', responses: { 200: { description: 'OpenAPI 3.1' } } } },
    },
  }
}
