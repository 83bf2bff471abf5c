// Midge configuration. Every field is optional; the README lists them all with their defaults.
import { defineConfig } from './src/index.ts'

export default defineConfig({
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1883 }],
  log: { level: 'info' },
  limits: {
    maxPacketSize: 1024 * 1024,
    maxQueuedMessages: 1000,
  },
  sys: { intervalSeconds: 10 },
})
