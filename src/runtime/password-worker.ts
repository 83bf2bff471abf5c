/** The password worker (Deno): hashes and verifies off the event loop, one request at a time, answering by id. */
import { parentPort } from 'node:worker_threads'
import { wasmHash, wasmVerify } from './password-wasm.ts'

/** What the worker is asked (a request adds the id its answer carries). */
export type PasswordTask = { op: 'hash'; password: string; algorithm: 'argon2id' | 'bcrypt' } | { op: 'verify'; password: string; hash: string }
export type PasswordRequest = PasswordTask & { id: number }
export type PasswordAnswer = { id: number; result: string | boolean } | { id: number; error: string }

parentPort?.on('message', async (request: PasswordRequest) => {
  try {
    const result = request.op === 'hash' ? await wasmHash(request.password, request.algorithm) : await wasmVerify(request.password, request.hash)
    parentPort!.postMessage({ id: request.id, result } satisfies PasswordAnswer)
  } catch (error) {
    parentPort!.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) } satisfies PasswordAnswer)
  }
})
