#!/usr/bin/env node
// The `midge` command of the npm package (`npx midge`, `bunx midge`): Midge runs on Bun. Under Bun it starts in
// this process; under Node it runs the Bun this package depends on (or one on PATH) with the same arguments.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const main = fileURLToPath(new URL('../src/main.ts', import.meta.url))
if (process.versions.bun) {
  await import(main)
} else {
  let bun = 'bun'
  try {
    bun = createRequire(import.meta.url).resolve('bun/bin/bun.exe')
  } catch {}
  const child = spawn(bun, [main, ...process.argv.slice(2)], { stdio: 'inherit' })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  // Whoever started this may go without a signal reaching it (npm exec does not pass its SIGTERM on): then the
  // broker stops too, rather than run on unowned.
  const parent = process.ppid
  setInterval(() => process.ppid !== parent && child.kill('SIGTERM'), 500).unref()
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
  child.on('error', (error) => {
    console.error(`midge: could not run Bun (${error.message}); install it (https://bun.sh) or reinstall this package`)
    process.exit(1)
  })
}
