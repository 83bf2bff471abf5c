/**
 * The part of Deno's API the Deno adapter uses, typed here: the project type-checks against Bun's types only, and
 * this module is loaded only under Deno (runtime/index.ts).
 */
export interface DenoAddr {
  readonly hostname: string
  readonly port: number
}

export interface DenoConn {
  readonly remoteAddr: DenoAddr
  read(into: Uint8Array): Promise<number | null>
  write(data: Uint8Array): Promise<number>
  close(): void
  setNoDelay?(noDelay?: boolean): void
}

export interface DenoListener extends AsyncIterable<DenoConn> {
  readonly addr: DenoAddr
  close(): void
}

export interface DenoServeOptions {
  hostname: string
  port: number
  cert?: string
  key?: string
  reusePort?: boolean
  onListen?(addr: DenoAddr): void
  onError?(error: unknown): Response | Promise<Response>
}

export interface DenoHttpServer {
  readonly addr: DenoAddr
  shutdown(): Promise<void>
}

export interface DenoApi {
  listen(options: { hostname: string; port: number; transport?: 'tcp'; reusePort?: boolean }): DenoListener
  listenTls(options: { hostname: string; port: number; cert: string; key: string; transport?: 'tcp' }): DenoListener
  serve(options: DenoServeOptions, handler: (req: Request, info: { remoteAddr: DenoAddr }) => Response | Promise<Response>): DenoHttpServer
  upgradeWebSocket(req: Request, options?: { protocol?: string; idleTimeout?: number }): { socket: WebSocket; response: Response }
  readFileSync(path: string | URL): Uint8Array
}

export const Deno = (globalThis as unknown as { Deno: DenoApi }).Deno
