// Midge configuration: every field is optional; the README lists them all with their defaults.
// This default suits a laptop: it listens on 127.0.0.1 only and accepts anonymous clients there
// (like Mosquitto 2 with no listener configured). For production, bind '0.0.0.0' and set allowAnonymous: false.
import { auth } from './plugins/auth.ts'
import { sqlite } from './plugins/sqlite.ts'
import { webhook } from './plugins/webhook.ts'
import { defineConfig, hashPassword } from './src/index.ts'

// Demo users alice, bob and demo share one password: MIDGE_DEMO_PASSWORD, or "midge" for local use.
const demoPassword = await hashPassword(process.env.MIDGE_DEMO_PASSWORD ?? 'midge')

export default defineConfig({
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1883 }],
  log: { level: 'info' },
  limits: {
    maxPacketSize: 1024 * 1024,
    maxQueuedMessages: 1000,
  },
  sys: { intervalSeconds: 10 },
  // HTTP API, health, metrics and the UI page (with MQTT over WebSocket at /mqtt) on http://127.0.0.1:8080.
  // Like the MQTT listener, it lets anonymous callers read and publish on 127.0.0.1; MIDGE_ADMIN_TOKEN adds an admin token.
  http: {
    host: '127.0.0.1',
    port: 8080,
    anonymousScopes: ['read', 'publish'],
    publicMetrics: true,
    tokens: process.env.MIDGE_ADMIN_TOKEN ? [{ name: 'admin', token: process.env.MIDGE_ADMIN_TOKEN, scopes: ['read', 'publish', 'admin'] }] : [],
  },
  plugins: [
    auth({
      users: { alice: { password: demoPassword }, bob: { password: demoPassword }, demo: { password: demoPassword } },
      allowAnonymous: true,
      acl: [
        { user: '*', publish: ['#'], subscribe: ['#'] },
        { anonymous: true, publish: ['#'], subscribe: ['#'] },
      ],
    }),
    // Retained messages and persistent sessions survive restarts (and kill -9) in ./data/midge.db.
    sqlite({ path: './data/midge.db' }),
    // Every message is POSTed to WEBHOOK_URL when it is set.
    ...(process.env.WEBHOOK_URL ? [webhook({ url: process.env.WEBHOOK_URL, topics: ['#'], outbox: './data/webhook.db' })] : []),
    // To forward to another broker, import { bridge } from './plugins/bridge.ts' and add (README, "bridge"):
    // bridge({ name: 'cloud', remote: { url: 'mqtts://broker.example.com:8883' }, topics: [{ pattern: 'sensors/#', direction: 'out', qos: 1, remotePrefix: 'site-42/' }] }),
  ],
})
