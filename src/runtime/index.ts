/**
 * The runtime under the broker: Bun (the first) or Deno. What differs between them is here and in the adapters
 * this loads: the listeners (TCP, TLS, WebSocket) and the HTTP server. The core knows neither runtime
 * (test/architecture.test.ts); SQLite and password hashing have their own small adapters beside this one.
 */
import type { Broker } from '../broker.ts'
import type { HttpConfig, TlsConfig } from '../config.ts'
import type { HttpOptions } from '../http/server.ts'
import type { BrokerView } from '../http/view.ts'
import type { RateConfig } from '../rate.ts'
import type { Acceptor } from '../transport/types.ts'
import { isDeno } from './detect.ts'

export { isDeno, runtimeName } from './detect.ts'

/** A bound listener: where it listens, and how to stop it (`closeActive`: drop its open connections too). */
export interface Listener {
  readonly host: string
  readonly port: number
  stop(closeActive: boolean): void
}

export interface Runtime {
  readonly name: 'bun' | 'deno'
  /** MQTT over TCP, or over TLS with `tls`. */
  listenTcp(acceptor: Acceptor, host: string, port: number, tls?: TlsConfig, reusePort?: boolean, rate?: RateConfig): Listener
  /** MQTT over WebSocket on a listener of its own, at `path`. */
  listenWebSocket(acceptor: Acceptor, host: string, port: number, path: string, tls?: TlsConfig, reusePort?: boolean, rate?: RateConfig): Listener
  /** The HTTP API and console, with MQTT over WebSocket at `config.websocketPath`. */
  listenHttp(broker: Broker, view: BrokerView, config: HttpConfig, options: HttpOptions): Listener
}

/** The adapter of the runtime this process is on (loaded only there: each imports what only its runtime has). */
export async function loadRuntime(): Promise<Runtime> {
  return isDeno ? (await import('./deno/index.ts')).deno : (await import('./bun.ts')).bun
}
