/** The TCP transport (with optional TLS): Bun.listen with raw sockets, each socket's handler kept in `socket.data`. */
import type { TlsConfig } from '../config.ts'
import { bunTls, commonName } from './tls.ts'
import type { Acceptor, Connection, ConnectionHandler } from './types.ts'
import type { RateConfig } from '../rate.ts'

export interface TcpListener {
  readonly host: string
  readonly port: number
  /** Stops accepting; with `closeActive`, also drops every open socket at once. */
  stop(closeActive: boolean): void
}

export function listenTcp(acceptor: Acceptor, host: string, port: number, tls?: TlsConfig, reusePort = false, rate?: RateConfig): TcpListener {
  const server = Bun.listen<ConnectionHandler>({
    hostname: host,
    port,
    // Bun takes reusePort on listen as on connect (bun-types declares it on connect options only).
    ...({ reusePort } as object),
    tls: tls ? bunTls(tls) : undefined,
    socket: {
      open(socket) {
        // No setNoDelay here: Bun sets TCP_NODELAY on every accepted socket already (small MQTT packets go out at once).
        let conn: Connection = socket
        if (tls?.certificateAsUsername) {
          // The socket is the connection; only a certificate-named one needs a wrapper carrying the name,
          // read when CONNECT arrives (the handshake is not finished when the socket opens).
          conn = {
            write: (d) => socket.write(d),
            end: () => socket.end(),
            remoteAddress: socket.remoteAddress,
            pause: () => socket.pause(),
            resume: () => socket.resume(),
            get certificateUsername() {
              return commonName(socket.getPeerCertificate() as { subject?: { CN?: string } })
            },
          }
        }
        socket.data = acceptor.accept(conn, rate)
      },
      data(socket, bytes) {
        socket.data.data(bytes)
      },
      drain(socket) {
        socket.data.drain()
      },
      close(socket, error) {
        socket.data?.closed(error)
      },
      error(socket, error) {
        socket.data?.closed(error)
      },
      handshake(socket, success, error) {
        // A TLS client that fails verification never reaches MQTT; the close that follows cleans up.
        if (!success) socket.data?.closed(error ?? new Error('TLS handshake failed'))
      },
    },
  })
  return {
    host: server.hostname,
    port: server.port,
    stop: (closeActive) => server.stop(closeActive),
  }
}
