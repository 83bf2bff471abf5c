/** The Bun adapter: Bun.listen for TCP and TLS, Bun.serve for HTTP and WebSocket. */
import { listenHttp } from '../http/server.ts'
import { listenTcp } from '../transport/tcp.ts'
import { listenWebSocket } from '../transport/websocket.ts'
import type { Runtime } from './types.ts'

export const bun: Runtime = { name: 'bun', listenTcp, listenWebSocket, listenHttp }
