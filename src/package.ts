/**
 * The package's public entry (`import { defineConfig, auth, sqlite } from 'midge'`): the embedding and plugin API,
 * and the bundled plugins. A config file imports it by name from the npm package, a checkout, or the single
 * executable (main.ts registers the name at run time).
 */
export * from './index.ts'
export { auth, type AuthOptions } from '../plugins/auth.ts'
export { bridge, type BridgeOptions } from '../plugins/bridge.ts'
export { httpAuth, type HttpAuthOptions } from '../plugins/http-auth.ts'
export { jwt, type JwtOptions } from '../plugins/jwt.ts'
export { sqlite, type SqliteOptions } from '../plugins/sqlite.ts'
export { webhook, type WebhookOptions } from '../plugins/webhook.ts'
