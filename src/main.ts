/**
 * Process entry: `midge [--config path] [--port n] [--nodes n|auto]`, `midge init`, `midge --version`, `midge --help`
 * (`bun src/main.ts ...` from a checkout, the `midge` command of the npm package, or the single executable).
 * Loads the config, starts the broker and shuts it down gracefully on SIGINT/SIGTERM. With `--nodes`, runs that many
 * nodes of the config as one cluster on this machine instead (nodes.ts).
 */
import { existsSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfig, resolveWithOverrides } from './config.ts'
import { ConfigError } from './errors.ts'
import { createLogger } from './logger.ts'
import { createBroker } from './midge.ts'
import { asNode, nodePlace, runNodes } from './nodes.ts'
import { VERSION } from './sys.ts'
import { isDeno } from './runtime/detect.ts'
import { hashPassword } from './runtime/password.ts'
import { CONFIG_TEMPLATE, usersTemplate } from './templates.ts'
import { embedded } from './embedded.ts'

const HELP = `midge ${VERSION}: an MQTT 3.1.1 and 5.0 broker, configured and extended in TypeScript

usage: midge [options]          start a broker from ./mqtt.config.ts (or built-in defaults when there is none)
       midge init               write a commented mqtt.config.ts and a users.json here
       midge types              (the single executable) write midge.d.ts and tsconfig.json here, for an editor
       midge hash-password <p>  print an argon2id hash of a password, for users.json
       midge --version | --help

options:
  -c, --config <path>   the config file (or MQTT_CONFIG)
  -p, --port <n>        port of the first TCP listener (or PORT)
      --nodes <n|auto>  run n nodes (auto: one per core) as one cluster on a local NATS
docs: https://github.com/midge-mqtt/midge#readme`

/** Without a config file: MQTT on 127.0.0.1:1883 and the HTTP API and console on 127.0.0.1:8080, as `midge init` writes. */
const DEFAULTS = { listeners: [{ type: 'tcp' as const, host: '127.0.0.1', port: 1883 }], http: { host: '127.0.0.1', port: 8080, anonymousScopes: ['read' as const, 'publish' as const] } }

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' }, nodes: { type: 'string' }, version: { type: 'boolean', short: 'v' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.version) return void console.log(VERSION)
  if (values.help) return void console.log(HELP)
  if (positionals[0] === 'init') return init()
  if (positionals[0] === 'types') return types(true)
  if (positionals[0] === 'hash-password') {
    if (!positionals[1]) throw new ConfigError('usage: midge hash-password <password>')
    return void console.log(await hashPassword(positionals[1]))
  }
  if (positionals.length > 0) throw new ConfigError(`unknown command ${positionals[0]} (try midge --help)`)

  // A config imports the API and the bundled plugins as 'midge', whether or not the package is installed beside it.
  // (On Deno, the checkout's deno.json maps the name, and an installed package resolves as any other.)
  if (!isDeno) {
    Bun.plugin({
      name: 'midge',
      setup(build) {
        // Loaded only when a config asks for it: a broker whose config does not name 'midge' carries none of the plugins.
        build.module('midge', async () => ({ exports: await import('./package.ts'), loader: 'object' }))
      },
    })
  }
  const named = values.config ?? process.env.MQTT_CONFIG
  const path = named ?? 'mqtt.config.ts'
  const overrides = { port: values.port ?? process.env.PORT, httpPort: process.env.HTTP_PORT }
  let loaded
  if (named === undefined && !existsSync(path)) {
    loaded = resolveWithOverrides(DEFAULTS, overrides)
    createLogger(loaded.log.level).info('config.default', { reason: `no ${resolve(path)}`, hint: 'midge init writes one to edit' })
  } else {
    loaded = await loadConfig(path, overrides)
  }
  if (values.nodes !== undefined) {
    if (isDeno) throw new ConfigError('--nodes needs Bun (it runs each node as a Bun process sharing the ports); on Deno, start one broker per cluster node')
    const count = values.nodes === 'auto' ? availableParallelism() : Number(values.nodes)
    if (!Number.isInteger(count) || count < 1 || count > 256) throw new ConfigError(`--nodes: expected a number of nodes (1-256) or "auto", got ${values.nodes}`)
    return runNodes(path, count, loaded, createLogger(loaded.log.level), values.port ? ['--port', values.port] : [])
  }
  const place = nodePlace()
  const config = place ? asNode(loaded, place) : loaded
  const midge = createBroker(config)
  await midge.listen()

  let stopping = false
  const stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    midge.logger.info('broker.signal', { signal })
    await midge.close()
    process.exit(0)
  }
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGTERM', () => void stop('SIGTERM'))
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) console.error(error.message)
  else console.error('midge: failed to start:', error instanceof Error ? error.message : error)
  process.exit(1)
})

/** `midge init`: a commented config and a users file to start from, here; never over existing files. */
async function init(): Promise<void> {
  const files: Array<[string, string]> = [
    ['mqtt.config.ts', CONFIG_TEMPLATE],
    ['users.json', await usersTemplate()],
  ]
  const existing = files.filter(([name]) => existsSync(name)).map(([name]) => name)
  if (existing.length > 0) throw new ConfigError(`midge init: ${existing.join(' and ')} already here; nothing written`)
  for (const [name, text] of files) writeFileSync(name, text)
  console.log(`wrote ${files.map(([name]) => resolve(name)).join(' and ')}\nstart with: midge   (or bun src/main.ts in a checkout)`)
  await types(false)
}

/**
 * The single executable carries the `midge` module's types: written here as midge.d.ts, with a tsconfig.json that
 * maps the name to it (never over one that exists), an editor checks the config with no node_modules. The npm
 * package and a checkout have their types where the module is.
 */
async function types(asked: boolean): Promise<void> {
  if (!embedded.typesFile) {
    if (asked) throw new ConfigError('midge types: only the single executable carries its types; from the npm package or a checkout, the editor finds them where `midge` resolves')
    return
  }
  writeFileSync('midge.d.ts', await Bun.file(embedded.typesFile).text())
  const wrote = [resolve('midge.d.ts')]
  if (!existsSync('tsconfig.json')) {
    writeFileSync('tsconfig.json', `${JSON.stringify(EDITOR_TSCONFIG, null, 2)}\n`)
    wrote.push(resolve('tsconfig.json'))
  }
  console.log(`wrote ${wrote.join(' and ')} (the types of 'midge', for an editor)`)
}

/** What an editor needs to check a config beside the executable: 'midge' is midge.d.ts, and no other types. */
const EDITOR_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'ESNext',
    moduleResolution: 'bundler',
    strict: true,
    noEmit: true,
    allowImportingTsExtensions: true,
    types: [],
    paths: { midge: ['./midge.d.ts'] },
  },
  include: ['mqtt.config.ts'],
}
