/** What `midge init` writes: a commented config to edit, and a users file with one demo user. */
import { hashPassword } from './runtime/password.ts'

export const CONFIG_TEMPLATE = `// Midge configuration, written by \`midge init\`. Every field is optional; the README lists them all.
import { auth, defineConfig } from 'midge'

export default defineConfig({
  // MQTT on this machine only. To accept other machines, bind '0.0.0.0' and set allowAnonymous: false below.
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: 1883 }],
  log: { level: 'info' },
  // The HTTP API, /metrics and the web console on http://127.0.0.1:8080 (anonymous callers may read and publish).
  http: { host: '127.0.0.1', port: 8080, anonymousScopes: ['read', 'publish'] },
  plugins: [
    // Users and their password hashes in users.json (one demo user, password "change-me"; \`midge hash-password <p>\`
    // prints a hash), reloaded on SIGHUP. Anonymous clients are let in while MQTT listens on 127.0.0.1 only.
    auth({
      usersFile: './users.json',
      allowAnonymous: true,
      acl: [
        { user: '*', publish: ['#'], subscribe: ['#'] },
        { anonymous: true, publish: ['#'], subscribe: ['#'] },
      ],
    }),
    // Retained messages and persistent sessions across restarts:  import { sqlite } from 'midge'  and add
    // sqlite({ path: './data/midge.db' }),
  ],
})
`

export async function usersTemplate(): Promise<string> {
  return `${JSON.stringify({ demo: { password: await hashPassword('change-me') } }, null, 2)}\n`
}
