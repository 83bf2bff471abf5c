// Midge as the benchmark runs it: one TCP listener, no plugins, quiet logs, no $SYS.
import { defineConfig } from '../src/index.ts'

export default defineConfig({
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1884 }],
  log: { level: 'warn' },
  sys: { intervalSeconds: 0 },
  limits: { maxQueuedMessages: 100_000, maxQueuedBytes: 256 * 1024 * 1024 },
})
