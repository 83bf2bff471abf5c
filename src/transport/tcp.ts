/** The TCP transport: Bun.listen with raw sockets, each socket's handler kept in `socket.data`. */
import type { Acceptor, ConnectionHandler } from './types.ts'

export interface TcpListener {
  readonly host: string
  readonly port: number
  /** Stops accepting; with `closeActive`, also drops every open socket at once. */
  stop(closeActive: boolean): void
}

export function listenTcp(acceptor: Acceptor, host: string, port: number): TcpListener {
  const server = Bun.listen<ConnectionHandler>({
    hostname: host,
    port,
    socket: {
      open(socket) {
        socket.data = acceptor.accept(socket)
      },
      data(socket, bytes) {
        socket.data.data(bytes)
      },
      drain(socket) {
        socket.data.drain()
      },
      close(socket, error) {
        socket.data.closed(error)
      },
      error(socket, error) {
        socket.data.closed(error)
      },
    },
  })
  return {
    host: server.hostname,
    port: server.port,
    stop: (closeActive) => server.stop(closeActive),
  }
}
