/** Which runtime this is. Bun and Deno are told apart by their globals; everything else about them is in the adapters. */
export const isDeno = typeof (globalThis as { Deno?: unknown }).Deno === 'object'
export const runtimeName: 'bun' | 'deno' = isDeno ? 'deno' : 'bun'
