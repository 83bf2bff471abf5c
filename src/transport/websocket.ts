/**
 * MQTT over WebSocket (MQTT 5.0 section 6): the `mqtt` subprotocol (or `mqttv3.1`), binary frames only.
 * Each frame's bytes go to the same per-connection parser as TCP, so packets may span frames and a frame
 * may hold several packets. Bun queues what `send` cannot write at once; we let it hold one write and then
 * keep the rest in the connection's outbound buffer until `drain`, as on TCP.
 */
import type { Server, ServerWebSocket, WebSocketHandler } from 'bun'
import type { TlsConfig } from '../config.ts'
import { bunTls } from './tls.ts'
import { mqttSubprotocol, NO_SUBPROTOCOL } from './subprotocol.ts'
import type { Acceptor, Connection, ConnectionHandler } from './types.ts'
import type { RateConfig } from '../rate.ts'

export interface WebSocketData {
  kind: 'mqtt'
  handler?: ConnectionHandler
}

/** Upgrades `req` if it asks for MQTT over WebSocket; returns a Response when it must be refused. */
export function upgradeMqtt(req: Request, server: Server<WebSocketData>): Response | undefined {
  const chosen = mqttSubprotocol(req)
  if (!chosen) return new Response(NO_SUBPROTOCOL, { status: 400 }) // [MQTT-6.0.0-3]
  if (server.upgrade(req, { headers: { 'Sec-WebSocket-Protocol': chosen }, data: { kind: 'mqtt' } })) return undefined
  return new Response('expected a WebSocket upgrade', { status: 426 })
}

export function mqttWebSocketHandler(acceptor: Acceptor, rate?: RateConfig): WebSocketHandler<WebSocketData> {
  return {
    maxPayloadLength: 16 * 1024 * 1024,
    open(ws) {
      ws.data.handler = acceptor.accept(wsConnection(ws), rate)
    },
    message(ws, message) {
      if (typeof message === 'string') {
        ws.close(1003, 'MQTT needs binary frames') // [MQTT-6.0.0-1]
        return
      }
      ws.data.handler?.data(message)
    },
    drain(ws) {
      ws.data.handler?.drain()
    },
    close(ws) {
      ws.data.handler?.closed()
    },
  }
}

function wsConnection(ws: ServerWebSocket<WebSocketData>): Connection {
  return {
    remoteAddress: ws.remoteAddress,
    write(data) {
      if (ws.getBufferedAmount() > 0) return 0 // Bun still holds an earlier write: wait for drain
      const status = ws.sendBinary(data)
      return status === 0 ? 0 : data.length // -1: queued by Bun (taken, with backpressure); >0: sent
    },
    end: () => ws.close(1000),
    pause: () => ws.pause?.(),
    resume: () => ws.resume?.(),
  }
}

export interface WebSocketListener {
  readonly host: string
  readonly port: number
  stop(closeActive: boolean): void
}

/** A listener of its own for MQTT over WebSocket (`ws://host:port/path`, or `wss://` with TLS). */
export function listenWebSocket(acceptor: Acceptor, host: string, port: number, path: string, tls?: TlsConfig, reusePort = false, rate?: RateConfig): WebSocketListener {
  const server = Bun.serve<WebSocketData>({
    hostname: host,
    port,
    reusePort,
    tls: tls ? bunTls(tls) : undefined,
    fetch(req, srv) {
      if (new URL(req.url).pathname !== path) return new Response('not found', { status: 404 })
      return upgradeMqtt(req, srv)
    },
    websocket: mqttWebSocketHandler(acceptor, rate),
  })
  return { host: server.hostname ?? host, port: server.port ?? port, stop: (closeActive) => void server.stop(closeActive) }
}
