/**
 * The HTTP API on Hono: publish, retained, clients, subscriptions, stats, health, metrics, OpenAPI, and the UI.
 * Every error is JSON `{ error, message }` with its status; nothing a client sends can crash it.
 */
import { Hono } from 'hono'
import type { z } from 'zod'
import { bodyLimit } from 'hono/body-limit'
import type { HttpConfig } from '../config.ts'
import { formatIssues } from '../config.ts'
import { identify, requireScope, type Env } from './auth.ts'
import type { ClusterQuestion, NodeAnswer } from '../cluster/api.ts'
import { mergeMetrics, prometheus } from './metrics.ts'
import { openApiDocument } from './openapi.ts'
import { BanBody, BanKindSchema, CLUSTER_TOTALS, type ClientItem, type NodeStats, PublishBody, PublishQuery } from './schemas.ts'
import { uiPage } from './ui.ts'
import { consolePage, VIEWS } from './console/page.tsx'
import { streamSSE } from 'hono/streaming'
import type { BrokerView, PublishInput } from './view.ts'

export interface AppOptions {
  lagSeconds: () => number
  /** Whether the listeners are up (for /readyz). */
  ready: () => boolean
  /** Where this node listens (for /api/v1/stats). */
  listeners?: () => ReadonlyArray<{ type: string; host: string; port: number; tls: boolean }>
  /** In a cluster: every node's answer to a question (null while NATS is away). */
  gather?: (what: ClusterQuestion, data?: unknown) => Promise<NodeAnswer[] | null>
  /** A console file's contents, from the runtime's adapter (the files are the package's: no CDN, it works offline). */
  asset: (name: AssetName) => ConstructorParameters<typeof Response>[0]
}

/** The files the console's pages load (http/console/), and MQTT.js's browser bundle for the WebSocket demo. */
export type AssetName = 'console.js' | 'console.css' | 'uplot.iife.min.js' | 'uplot.min.css' | 'mqtt.min.js'

const CONSOLE_ASSETS: AssetName[] = ['console.js', 'console.css', 'uplot.iife.min.js', 'uplot.min.css']
const contentType = (name: AssetName) => (name.endsWith('.css') ? 'text/css' : 'text/javascript')
/** A live stream drops messages for a reader this many writes behind (it is a view, not a delivery guarantee). */
const STREAM_BACKLOG = 1000

export function createHttpApp(view: BrokerView, config: HttpConfig, options: AppOptions): Hono<Env> {
  const app = new Hono<Env>()
  const bad = (message: string) => ({ error: 'bad_request', message })

  app.onError((error, c) => {
    if (error instanceof SyntaxError) return c.json(bad(`the body is not valid JSON: ${error.message}`), 400)
    return c.json({ error: 'internal_error', message: 'internal error' }, 500)
  })
  app.notFound((c) => c.json({ error: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` }, 404))

  // Open endpoints.
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', (c) => (options.ready() && !view.closing ? c.json({ status: 'ready' }) : c.json({ status: 'not ready' }, 503)))
  app.get('/openapi.json', (c) => c.json(openApiDocument()))
  // The web console (console/): its pages and assets are open; the data it shows comes from the API, under its auth.
  app.get('/', (c) => c.redirect('/ui/overview'))
  app.get('/ui', (c) => c.redirect('/ui/overview'))
  for (const { id } of VIEWS) app.get(`/ui/${id}`, (c) => c.html(consolePage(id)))
  for (const name of CONSOLE_ASSETS) app.get(`/ui/assets/${name}`, () => new Response(options.asset(name), { headers: { 'content-type': contentType(name), 'cache-control': 'max-age=3600' } }))
  if (config.websocketPath !== false) {
    // MQTT over WebSocket from a browser page (MQTT.js's browser bundle): a demo of the WebSocket listener.
    const page = uiPage(config.websocketPath)
    app.get('/ui/websocket', (c) => c.html(page))
    app.get('/ui/mqtt.min.js', () => new Response(options.asset('mqtt.min.js'), { headers: { 'content-type': 'text/javascript' } }))
  }

  app.use('*', identify(config, view))
  // Per node, as Prometheus scrapes each node; ?cluster=true gives every node's, each sample labelled with its node.
  app.get('/metrics', async (c, next) => (config.publicMetrics ? next() : requireScope('read')(c, next)), async (c) => {
    const answers = c.req.query('cluster') === 'true' && options.gather ? await options.gather('metrics') : null
    const text = answers ? mergeMetrics(answers) : prometheus(view, options.lagSeconds())
    return c.text(text, 200, { 'content-type': 'text/plain; version=0.0.4' })
  })

  const tooLarge = bodyLimit({
    maxSize: view.maxPacketSize,
    onError: (c) => c.json({ error: 'payload_too_large', message: `the body is over the maximum packet size of ${view.maxPacketSize} bytes` }, 413),
  })

  app.post('/api/v1/publish', requireScope('publish'), tooLarge, async (c) => {
    let input: PublishInput
    if ((c.req.header('content-type') ?? '').includes('application/json')) {
      const parsed = PublishBody.safeParse(await c.req.json(), { reportInput: true })
      if (!parsed.success) return c.json(bad(formatIssues(parsed.error.issues).join('; ')), 400)
      const b = parsed.data
      const payload = b.encoding === 'json' ? Buffer.from(JSON.stringify(b.payload)) : Buffer.from(b.payload as string, b.encoding === 'base64' ? 'base64' : 'utf8')
      const { correlationData, ...props } = b.properties ?? {}
      const properties = b.properties ? { ...props, ...(correlationData === undefined ? {} : { correlationData: Buffer.from(correlationData) }) } : undefined
      if (b.encoding === 'json' && properties?.contentType === undefined) input = { topic: b.topic, payload, qos: b.qos, retain: b.retain, properties: { ...properties, contentType: 'application/json' } }
      else input = { topic: b.topic, payload, qos: b.qos, retain: b.retain, properties }
    } else {
      const parsed = PublishQuery.safeParse(c.req.query(), { reportInput: true })
      if (!parsed.success) return c.json(bad(formatIssues(parsed.error.issues).join('; ')), 400)
      input = { ...parsed.data, payload: Buffer.from(await c.req.arrayBuffer()) }
    }
    const caller = c.get('caller')
    const outcome = await view.publish(caller, input)
    if (!outcome.ok) return c.json({ error: outcome.error, message: outcome.message }, outcome.status)
    return c.json({ topic: input.topic, qos: input.qos, retain: input.retain, bytes: input.payload.length, reached: outcome.reached })
  })

  app.get('/api/v1/retained', requireScope('read'), (c) => {
    const limit = Number(c.req.query('limit') ?? 1000)
    if (!Number.isInteger(limit) || limit < 1) return c.json(bad('limit: expected a whole number above 0'), 400)
    const result = view.retained(c.req.query('filter') ?? '#', limit)
    if (typeof result === 'string') return c.json(bad(`filter: ${result}`), 400)
    return c.json({ retained: result })
  })

  app.delete('/api/v1/retained/*', requireScope('publish'), async (c) => {
    let topic: string
    try {
      topic = decodeURIComponent(c.req.path.slice('/api/v1/retained/'.length))
    } catch {
      return c.json(bad('topic: not a valid URL-encoded topic'), 400)
    }
    const existed = view.hasRetained(topic)
    // Clearing is publishing an empty retained message: same checks and notifications as any publish.
    const outcome = await view.publish(c.get('caller'), { topic, payload: Buffer.alloc(0), qos: 0, retain: true })
    if (!outcome.ok) return c.json({ error: outcome.error, message: outcome.message }, outcome.status)
    return c.json({ topic, cleared: existed })
  })

  // In a cluster, the clients of every node (each with its node), unless ?local=true; this node says which it is.
  const everyNode = async (what: ClusterQuestion, local: string | undefined) => (options.gather && local !== 'true' ? await options.gather(what) : null)
  app.get('/api/v1/clients', requireScope('read'), async (c) => {
    const node = view.stats().node
    const answers = await everyNode('clients', c.req.query('local'))
    if (!answers) return c.json({ node, nodes: node === null ? [] : [node], clients: view.clients().map((client) => ({ ...client, node })) })
    const clients = answers.flatMap((a) => (a.data as Array<z.input<typeof ClientItem>>).map((client) => ({ ...client, node: a.node })))
    return c.json({ node, nodes: answers.map((a) => a.node), clients })
  })
  // In a cluster, the client is disconnected on whichever node it is (each node is asked; the one that has it says so).
  app.delete('/api/v1/clients/:id', requireScope('admin'), async (c) => {
    const id = c.req.param('id')
    if (view.disconnect(id)) return c.json({ clientId: id, disconnected: true, node: view.stats().node })
    const answers = options.gather ? await options.gather('disconnect', { clientId: id }) : null
    const where = answers?.find((a) => a.data === true)
    if (!where) return c.json({ error: 'not_found', message: `no connected client ${id}` }, 404)
    return c.json({ clientId: id, disconnected: true, node: where.node })
  })
  app.get('/api/v1/bans', requireScope('admin'), (c) => c.json({ bans: view.bans() }))
  app.post('/api/v1/bans', requireScope('admin'), async (c) => {
    const parsed = BanBody.safeParse(await c.req.json(), { reportInput: true })
    if (!parsed.success) return c.json(bad(formatIssues(parsed.error.issues).join('; ')), 400)
    return c.json(view.ban(parsed.data), 201)
  })
  app.delete('/api/v1/bans/:kind/:value', requireScope('admin'), (c) => {
    const kind = BanKindSchema.safeParse(c.req.param('kind'))
    if (!kind.success) return c.json(bad(`kind: ${kind.error.issues[0]!.message}, got ${JSON.stringify(c.req.param('kind'))}`), 400)
    const value = c.req.param('value')
    if (!view.unban(kind.data, value)) return c.json({ error: 'not_found', message: `no ${kind.data} ban on ${value}` }, 404)
    return c.json({ kind: kind.data, value, removed: true })
  })
  app.get('/api/v1/subscriptions', requireScope('read'), (c) => c.json({ subscriptions: view.subscriptions() }))
  app.get('/api/v1/stats', requireScope('read'), async (c) => {
    const answers = await everyNode('stats', c.req.query('local'))
    const listeners = options.listeners?.()
    if (!answers) return c.json({ ...view.stats(), listeners })
    const nodes = answers.map((a) => a.data as z.input<typeof NodeStats>)
    const totals = Object.fromEntries(CLUSTER_TOTALS.map((key) => [key, nodes.reduce((sum, n) => sum + (n[key] ?? 0), 0)]))
    return c.json({ ...view.stats(), listeners, cluster: { nodes, totals } })
  })
  app.get('/api/v1/plugins', requireScope('read'), (c) => c.json({ plugins: view.plugins() }))

  // Live streams (server-sent events) for the console: this node's figures every second, and the messages a filter matches.
  app.get('/api/v1/stream/stats', requireScope('read'), (c) =>
    streamSSE(c, async (stream) => {
      while (!stream.aborted && !view.closing) {
        await stream.writeSSE({ data: JSON.stringify({ t: Date.now(), ...view.stats() }) })
        await stream.sleep(1000)
      }
    }),
  )
  app.get('/api/v1/stream/messages', requireScope('read'), (c) => {
    const filter = c.req.query('filter') ?? '#'
    const invalid = view.filterError(filter)
    if (invalid) return c.json(bad(`filter: ${invalid}`), 400)
    return streamSSE(c, async (stream) => {
      // Messages wait here for the stream's own loop to write them (writes from the listener itself were held back).
      const waiting: unknown[] = []
      let wake: (() => void) | null = null
      const stop = view.watch(filter, (message) => {
        if (waiting.length >= STREAM_BACKLOG) return // a reader this far behind misses messages
        waiting.push(message)
        wake?.()
      })
      stream.onAbort(stop)
      await stream.write(': watching\n\n') // the response starts now (headers go with the first bytes)
      while (!stream.aborted && !view.closing) {
        // A comment line after 5 s of quiet: the connection stays open (Bun.serve ends a request idle for 10 s).
        if (waiting.length === 0) await Promise.race([new Promise<void>((resolve) => (wake = resolve)), stream.sleep(5000)])
        wake = null
        if (waiting.length === 0) await stream.write(': ping\n\n')
        for (const message of waiting.splice(0)) await stream.writeSSE({ data: JSON.stringify(message) })
      }
      stop()
    })
  })
  return app
}
