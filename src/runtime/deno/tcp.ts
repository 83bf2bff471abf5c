/**
 * MQTT over TCP and TLS on Deno.listen / Deno.listenTls. Deno's connections are read and written with promises;
 * the core's Connection is synchronous, so each connection keeps one write in flight: a write while one is in
 * flight takes nothing, and the outbound buffer waits for `drain`, as it does for a full Bun socket.
 */
import { readFileSync } from 'node:fs'
import type { TlsConfig } from '../../config.ts'
import { ConfigError } from '../../errors.ts'
import type { RateConfig } from '../../rate.ts'
import type { Acceptor, Connection, ConnectionHandler } from '../../transport/types.ts'
import type { Listener } from '../types.ts'
import { Deno, type DenoConn } from './api.ts'

/**
 * The read buffer. A read holds its buffer while it waits, so an idle connection holds one: it starts small, a
 * read that fills it doubles it (up to MAX_READ) and reads that come back small shrink it again. Each read is
 * copied out, as the buffer is read into again.
 */
const MIN_READ = 1024
const MAX_READ = 64 * 1024

export function listenTcp(acceptor: Acceptor, host: string, port: number, tls?: TlsConfig, reusePort = false, rate?: RateConfig): Listener {
  const listener = tls
    ? Deno.listenTls({ hostname: host, port, transport: 'tcp', ...denoTls(tls, 'a TCP listener') })
    : Deno.listen({ hostname: host, port, transport: 'tcp', ...(reusePort ? { reusePort } : {}) })
  const open = new Set<DenoConn>()
  void (async () => {
    for await (const conn of listener) serveConnection(conn, acceptor, rate, open)
  })().catch(() => {}) // the listener was closed
  return {
    host: listener.addr.hostname,
    port: listener.addr.port,
    stop(closeActive) {
      closeQuietly(listener)
      if (closeActive) for (const conn of open) closeQuietly(conn)
    },
  }
}

/** A listener's TLS files for Deno (PEM text). Client certificates are Bun's only: refused with the reason. */
export function denoTls(tls: TlsConfig, where: string): { cert: string; key: string } {
  if (tls.requestCert || tls.ca || tls.certificateAsUsername) {
    throw new ConfigError(`${where}: tls.requestCert, tls.ca and tls.certificateAsUsername (client certificates) need Bun; Deno's TLS listeners do not verify client certificates`)
  }
  return { cert: readFileSync(tls.cert, 'utf8'), key: readFileSync(tls.key, 'utf8') }
}

function serveConnection(conn: DenoConn, acceptor: Acceptor, rate: RateConfig | undefined, open: Set<DenoConn>): void {
  open.add(conn)
  try {
    conn.setNoDelay?.(true) // small MQTT packets go out at once, as on Bun
  } catch {
    // a TLS connection before its handshake has no socket option to set
  }
  let writing = false
  let ending = false
  let gone = false
  let paused = false
  let wake: (() => void) | null = null
  let handler: ConnectionHandler | null = null

  const finish = (error?: unknown) => {
    if (gone) return
    gone = true
    open.delete(conn)
    closeQuietly(conn)
    wake?.()
    handler?.closed(error instanceof Error ? error : undefined)
  }
  const connection: Connection = {
    remoteAddress: conn.remoteAddr.hostname,
    write(data) {
      if (gone || ending || writing) return 0
      writing = true
      writeAll(conn, data.slice()).then(
        () => {
          writing = false
          if (ending) finish()
          else if (!gone) handler?.drain()
        },
        finish,
      )
      return data.length
    },
    end() {
      ending = true
      if (!writing) finish()
    },
    pause() {
      paused = true
    },
    resume() {
      paused = false
      wake?.()
    },
  }
  handler = acceptor.accept(connection, rate)
  void (async () => {
    let buffer = new Uint8Array(MIN_READ)
    while (!gone) {
      if (paused) await new Promise<void>((resolve) => (wake = resolve))
      wake = null
      if (gone) break
      const n = await conn.read(buffer)
      if (n === null) break
      handler.data(Buffer.from(buffer.subarray(0, n)))
      if (n === buffer.length && n < MAX_READ) buffer = new Uint8Array(n * 2)
      else if (n < buffer.length / 4 && buffer.length > MIN_READ) buffer = new Uint8Array(buffer.length / 2)
    }
  })().then(() => finish(), finish)
}

async function writeAll(conn: DenoConn, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length; ) at += await conn.write(data.subarray(at))
}

function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close()
  } catch {
    // closed already
  }
}
