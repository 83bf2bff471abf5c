/**
 * HTTP and MQTT over WebSocket on Deno.serve: the same Hono app as on Bun, and WebSockets from
 * Deno.upgradeWebSocket feeding the same per-connection parser as TCP.
 */
import { createRequire } from 'node:module'
import type { Broker } from '../../broker.ts'
import type { HttpConfig, TlsConfig } from '../../config.ts'
import { type AssetName, createHttpApp } from '../../http/app.ts'
import type { HttpOptions } from '../../http/server.ts'
import type { BrokerView } from '../../http/view.ts'
import type { RateConfig } from '../../rate.ts'
import { mqttSubprotocol, NO_SUBPROTOCOL } from '../../transport/subprotocol.ts'
import type { Acceptor, Connection, ConnectionHandler } from '../../transport/types.ts'
import type { Listener } from '../types.ts'
import { Deno, type DenoServeOptions } from './api.ts'
import { denoTls } from './tcp.ts'

export function listenHttp(broker: Broker, view: BrokerView, config: HttpConfig, options: HttpOptions): Listener {
  const app = createHttpApp(view, config, { ...options, asset: consoleFile })
  const wsPath = config.websocketPath
  return serve(serveOptions(config.host, config.port, config.tls, config.reusePort, 'http'), (req, ip, sockets) => {
    if (wsPath !== false && isUpgrade(req) && new URL(req.url).pathname === wsPath) return upgradeMqtt(req, ip, sockets, broker)
    return app.fetch(req, { ip })
  })
}

/** A listener of its own for MQTT over WebSocket (`ws://host:port/path`, or `wss://` with TLS). */
export function listenWebSocket(acceptor: Acceptor, host: string, port: number, path: string, tls?: TlsConfig, reusePort = false, rate?: RateConfig): Listener {
  return serve(serveOptions(host, port, tls, reusePort, 'a WebSocket listener'), (req, ip, sockets) => {
    if (new URL(req.url).pathname !== path) return new Response('not found', { status: 404 })
    if (!isUpgrade(req)) return new Response('expected a WebSocket upgrade', { status: 426 })
    return upgradeMqtt(req, ip, sockets, acceptor, rate)
  })
}

function serveOptions(host: string, port: number, tls: TlsConfig | undefined, reusePort: boolean, where: string): DenoServeOptions {
  return { hostname: host, port, ...(tls ? denoTls(tls, where) : {}), ...(reusePort ? { reusePort } : {}) }
}

/** `sockets`: the listener's open WebSockets, closed with it when it stops with `closeActive`. */
function serve(options: DenoServeOptions, handle: (req: Request, ip: string, sockets: Set<WebSocket>) => Response | Promise<Response>): Listener {
  const sockets = new Set<WebSocket>()
  const server = Deno.serve(
    {
      ...options,
      onListen: () => {}, // the broker logs where it listens; Deno would print a line of its own
      onError: () => Response.json({ error: 'internal_error', message: 'internal error' }, { status: 500 }),
    },
    (req, info) => handle(req, info.remoteAddr.hostname, sockets),
  )
  return {
    host: server.addr.hostname,
    port: server.addr.port,
    stop(closeActive) {
      void server.shutdown().catch(() => {})
      if (closeActive) for (const socket of sockets) socket.close(1001)
    },
  }
}

function isUpgrade(req: Request): boolean {
  return req.headers.get('upgrade')?.toLowerCase() === 'websocket'
}

/** Past this many bytes queued on a WebSocket, writes wait; below half of it, the connection drains. */
const HIGH_WATER = 1024 * 1024
const DRAIN_POLL_MS = 5

function upgradeMqtt(req: Request, remoteAddress: string, sockets: Set<WebSocket>, acceptor: Acceptor, rate?: RateConfig): Response {
  const protocol = mqttSubprotocol(req)
  if (!protocol) return new Response(NO_SUBPROTOCOL, { status: 400 }) // [MQTT-6.0.0-3]
  const { socket, response } = Deno.upgradeWebSocket(req, { protocol })
  socket.binaryType = 'arraybuffer'
  sockets.add(socket)
  let handler: ConnectionHandler | null = null
  // Deno's WebSocket has no drain event: while writes wait, bufferedAmount is watched until it falls.
  let watching: ReturnType<typeof setInterval> | undefined
  const stopWatching = () => {
    clearInterval(watching)
    watching = undefined
  }
  const connection: Connection = {
    remoteAddress,
    write(data) {
      if (socket.readyState !== WebSocket.OPEN) return 0
      if (socket.bufferedAmount > HIGH_WATER) {
        watching ??= setInterval(() => {
          if (socket.readyState !== WebSocket.OPEN) return stopWatching()
          if (socket.bufferedAmount > HIGH_WATER / 2) return
          stopWatching()
          handler?.drain()
        }, DRAIN_POLL_MS)
        return 0
      }
      socket.send(data) // the bytes are queued as they are now (WebSocket.send copies them)
      return data.length
    },
    end: () => socket.close(1000),
  }
  socket.addEventListener('open', () => {
    handler = acceptor.accept(connection, rate)
  })
  socket.addEventListener('message', (event) => {
    if (typeof event.data === 'string') return socket.close(1003, 'MQTT needs binary frames') // [MQTT-6.0.0-1]
    handler?.data(Buffer.from(event.data as ArrayBuffer))
  })
  socket.addEventListener('close', () => {
    sockets.delete(socket)
    stopWatching()
    handler?.closed()
    handler = null
  })
  return response
}

/** The console's files, read once from the package on first request (Bun imports them as files instead). */
const files = new Map<AssetName, Uint8Array>()
const require = createRequire(import.meta.url)
const PATHS: Record<AssetName, () => string | URL> = {
  'console.js': () => new URL('../../http/console/console.js', import.meta.url),
  'console.css': () => new URL('../../http/console/console.css', import.meta.url),
  'uplot.iife.min.js': () => require.resolve('uplot/dist/uPlot.iife.min.js'),
  'uplot.min.css': () => require.resolve('uplot/dist/uPlot.min.css'),
  'mqtt.min.js': () => require.resolve('mqtt/dist/mqtt.min.js'),
}

function consoleFile(name: AssetName): Uint8Array {
  let bytes = files.get(name)
  if (!bytes) files.set(name, (bytes = Deno.readFileSync(PATHS[name]())))
  return bytes
}
