/**
 * Password hashes that read the same on every runtime: argon2id (the default) and bcrypt, in the standard
 * encodings (`$argon2id$v=19$m=…`, `$2b$…`). On Bun they are Bun.password (native, in Bun's thread pool). Deno has
 * no password hashing, so there they are hash-wasm's WebAssembly (password-wasm.ts) in a worker thread, as a
 * verification is ~0.2 s of CPU. A hash made on either runtime verifies on the other.
 */
import { Worker } from 'node:worker_threads'
import { isDeno } from './detect.ts'
import type { PasswordAlgorithm } from './password-wasm.ts'
import type { PasswordAnswer, PasswordTask } from './password-worker.ts'

export type { PasswordAlgorithm } from './password-wasm.ts'

export async function hashPassword(password: string, algorithm: PasswordAlgorithm = 'argon2id'): Promise<string> {
  if (password === '') throw new Error('hashPassword: the password is empty')
  if (!isDeno) return Bun.password.hash(password, algorithm === 'bcrypt' ? { algorithm, cost: 10 } : { algorithm })
  return (await inWorker({ op: 'hash', password, algorithm })) as string
}

/** Whether `password` matches `hash` (argon2id, argon2i, argon2d or bcrypt); false for a hash it cannot read. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (!isDeno) return Bun.password.verify(password, hash)
  return (await inWorker({ op: 'verify', password, hash })) as boolean
}

let worker: Worker | null = null
let nextId = 0
const pending = new Map<number, { resolve(value: string | boolean): void; reject(error: Error): void }>()

/** One worker, made on first use; it holds the process open only while it has work (ref'd while requests wait). */
function inWorker(request: PasswordTask): Promise<string | boolean> {
  if (!worker) {
    const started = new Worker(new URL('./password-worker.ts', import.meta.url))
    started.on('message', (answer: PasswordAnswer) => {
      const waiting = pending.get(answer.id)
      pending.delete(answer.id)
      if (pending.size === 0) started.unref()
      if ('error' in answer) waiting?.reject(new Error(answer.error))
      else waiting?.resolve(answer.result)
    })
    started.on('error', (error) => {
      // The worker died: every request waiting fails, and the next one starts a new worker.
      worker = null
      for (const waiting of pending.values()) waiting.reject(error instanceof Error ? error : new Error(String(error)))
      pending.clear()
    })
    worker = started
  }
  const id = ++nextId
  const promise = new Promise<string | boolean>((resolve, reject) => pending.set(id, { resolve, reject }))
  worker.ref()
  worker.postMessage({ ...request, id })
  return promise
}
