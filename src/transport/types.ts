import type { RateConfig } from '../rate.ts'

/**
 * The whole contract between a transport (TCP, later WebSocket) and the broker core.
 * A transport calls `acceptor.accept(conn)` for each new connection and then feeds the returned handler.
 */
export interface Connection {
  /**
   * Writes as much of `data` as the socket takes now; returns the bytes taken (-1 or 0 when it takes none). Nothing
   * of `data` may be kept after the call (what a transport queues, it copies): the broker reuses the buffer.
   */
  write(data: Uint8Array): number
  /** Closes the connection after flushing what the socket already took. */
  end(): void
  readonly remoteAddress: string
  /** Stops reading from the peer (optional: a transport without it is read regardless). */
  pause?(): void
  resume?(): void
  /** With TLS `certificateAsUsername`: the client certificate's CN, used as the MQTT username. */
  readonly certificateUsername?: string
}

export interface ConnectionHandler {
  data(bytes: Buffer): void
  /** The socket can take more bytes. */
  drain(): void
  /** The connection is gone; called once. */
  closed(error?: Error): void
}

export interface Acceptor {
  /** `rate`: the listener's inbound rate limits for its clients, when it has its own. */
  accept(conn: Connection, rate?: RateConfig): ConnectionHandler
}
