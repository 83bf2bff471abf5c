/** The HTTP listener: one Bun.serve for the Hono app and (at `websocketPath`) MQTT over WebSocket. */
import type { Broker } from '../broker.ts'
import type { HttpConfig } from '../config.ts'
import { bunTls } from '../transport/tls.ts'
import { mqttWebSocketHandler, upgradeMqtt, type WebSocketData } from '../transport/websocket.ts'
import { type AppOptions, createHttpApp } from './app.ts'
import { CONSOLE_FILES } from './console/files.ts'
import type { BrokerView } from './view.ts'

export interface HttpListener {
  readonly host: string
  readonly port: number
  stop(closeActive: boolean): void
}

/** What the HTTP app needs from whoever starts it (the runtime adapter adds how its files are read). */
export type HttpOptions = Omit<AppOptions, 'asset'>

export function listenHttp(broker: Broker, view: BrokerView, config: HttpConfig, options: HttpOptions): HttpListener {
  const app = createHttpApp(view, config, { ...options, asset: (name) => Bun.file(CONSOLE_FILES[name]) })
  const wsPath = config.websocketPath
  const server = Bun.serve<WebSocketData>({
    hostname: config.host,
    port: config.port,
    reusePort: config.reusePort,
    tls: config.tls ? bunTls(config.tls) : undefined,
    maxRequestBodySize: broker.limits.maxPacketSize + 64 * 1024,
    fetch(req, srv) {
      if (wsPath !== false && req.headers.get('upgrade')?.toLowerCase() === 'websocket' && new URL(req.url).pathname === wsPath) {
        return upgradeMqtt(req, srv)
      }
      return app.fetch(req, { ip: srv.requestIP(req)?.address ?? 'unknown' })
    },
    websocket: mqttWebSocketHandler(broker),
  })
  return {
    host: server.hostname ?? config.host,
    port: server.port ?? config.port,
    stop(closeActive) {
      void server.stop(closeActive)
    },
  }
}
