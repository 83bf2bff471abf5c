/**
 * The runtime under the broker: Bun (the first) or Deno. What differs between them is here and in the adapters
 * this loads: the listeners (TCP, TLS, WebSocket) and the HTTP server. The core knows neither runtime
 * (test/architecture.test.ts); SQLite and password hashing have their own small adapters beside this one.
 */
import { isDeno } from './detect.ts'
import type { Runtime } from './types.ts'

export { isDeno, runtimeName } from './detect.ts'
export type { Listener, Runtime } from './types.ts'

/** The adapter of the runtime this process is on (loaded only there: each imports what only its runtime has). */
export async function loadRuntime(): Promise<Runtime> {
  return isDeno ? (await import('./deno/index.ts')).deno : (await import('./bun.ts')).bun
}
