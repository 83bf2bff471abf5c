/**
 * Password hashes that read the same on every runtime: argon2id (the default) and bcrypt, in the standard
 * encodings (`$argon2id$v=19$m=…`, `$2b$…`). On Bun they are Bun.password (native, in a worker thread); on
 * Deno, which has no password hashing of its own, hash-wasm (argon2 and bcrypt compiled to WebAssembly).
 * A hash made on either runtime verifies on the other.
 */
import { createHash } from 'node:crypto'
import { isDeno } from './detect.ts'

export type PasswordAlgorithm = 'argon2id' | 'bcrypt'

/** Bun.password's argon2id defaults, so a hash made on Deno costs what one made on Bun does. */
const ARGON2 = { memorySize: 65536, iterations: 2, parallelism: 1, hashLength: 32 }
const BCRYPT_COST = 10

export async function hashPassword(password: string, algorithm: PasswordAlgorithm = 'argon2id'): Promise<string> {
  if (password === '') throw new Error('hashPassword: the password is empty')
  if (!isDeno) return Bun.password.hash(password, algorithm === 'bcrypt' ? { algorithm, cost: BCRYPT_COST } : { algorithm })
  const wasm = await import('hash-wasm')
  const salt = crypto.getRandomValues(new Uint8Array(16))
  if (algorithm === 'bcrypt') return wasm.bcrypt({ password: bcryptInput(password), salt, costFactor: BCRYPT_COST, outputType: 'encoded' })
  return wasm.argon2id({ password, salt, ...ARGON2, outputType: 'encoded' })
}

/** Whether `password` matches `hash` (argon2id, argon2i, argon2d or bcrypt); false for a hash it cannot read. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (!isDeno) return Bun.password.verify(password, hash)
  const wasm = await import('hash-wasm')
  try {
    if (hash.startsWith('$argon2')) return await wasm.argon2Verify({ password, hash })
    if (/^\$2[aby]\$/.test(hash)) return await wasm.bcryptVerify({ password: bcryptInput(password), hash })
  } catch {
    // A malformed hash verifies nothing.
  }
  return false
}

/**
 * bcrypt reads at most 72 bytes: Bun.password passes a longer password's raw SHA-512 digest (64 bytes) instead,
 * so Deno does the same, and a long password's hash verifies on both runtimes.
 */
function bcryptInput(password: string): string | Uint8Array {
  const bytes = new TextEncoder().encode(password)
  if (bytes.length <= 72) return password
  return new Uint8Array(createHash('sha512').update(bytes).digest())
}
