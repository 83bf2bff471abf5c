// Midge as the benchmark runs it: one TCP listener, no plugins, quiet logs, no $SYS.
import { defineConfig } from '../src/index.ts'

export default defineConfig({
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1884 }],
  log: { level: 'warn' },
  sys: { intervalSeconds: 0 },
  // Queues as unbounded as the schema allows, like the mosquitto-nq run (max_queued_messages 0), so QoS 1 is not dropped.
  limits: { maxQueuedMessages: 10_000_000, maxQueuedBytes: 2 ** 31 },
})
