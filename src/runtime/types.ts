/** What a runtime adapter (bun.ts, deno/) provides: the listeners and the HTTP server. */
import type { Broker } from '../broker.ts'
import type { HttpConfig, TlsConfig } from '../config.ts'
import type { HttpOptions } from '../http/server.ts'
import type { BrokerView } from '../http/view.ts'
import type { RateConfig } from '../rate.ts'
import type { Acceptor } from '../transport/types.ts'

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
