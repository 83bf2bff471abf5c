/**
 * argon2id and bcrypt in WebAssembly (hash-wasm), with Bun.password's parameters and encodings, for runtimes
 * without password hashing of their own (Deno). Run in a worker (password-worker.ts): a verification takes
 * ~0.2 s of CPU, which the event loop must not wait on.
 */
import { createHash } from 'node:crypto'
import { argon2id, argon2Verify, bcrypt, bcryptVerify } from 'hash-wasm'

export type PasswordAlgorithm = 'argon2id' | 'bcrypt'

/** Bun.password's argon2id defaults, so a hash made on Deno costs what one made on Bun does. */
const ARGON2 = { memorySize: 65536, iterations: 2, parallelism: 1, hashLength: 32 }
const BCRYPT_COST = 10

export function wasmHash(password: string, algorithm: PasswordAlgorithm): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16))
  if (algorithm === 'bcrypt') return bcrypt({ password: bcryptInput(password), salt, costFactor: BCRYPT_COST, outputType: 'encoded' })
  return argon2id({ password, salt, ...ARGON2, outputType: 'encoded' })
}

export async function wasmVerify(password: string, hash: string): Promise<boolean> {
  try {
    if (hash.startsWith('$argon2')) return await argon2Verify({ password, hash })
    if (/^\$2[aby]\$/.test(hash)) return await bcryptVerify({ password: bcryptInput(password), hash })
  } catch {
    // A malformed hash verifies nothing.
  }
  return false
}

/**
 * bcrypt reads at most 72 bytes: Bun.password passes a longer password's raw SHA-512 digest (64 bytes) instead,
 * so this does the same, and a long password's hash verifies on both runtimes.
 */
function bcryptInput(password: string): string | Uint8Array {
  if (new TextEncoder().encode(password).length <= 72) return password
  return new Uint8Array(createHash('sha512').update(password).digest())
}
