/** The Deno adapter: Deno.listen / Deno.listenTls for TCP and TLS, Deno.serve for HTTP and WebSocket. */
import type { Runtime } from '../types.ts'
import { listenHttp, listenWebSocket } from './http.ts'
import { listenTcp } from './tcp.ts'

export const deno: Runtime = { name: 'deno', listenTcp, listenWebSocket, listenHttp }
