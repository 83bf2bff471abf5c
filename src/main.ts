/**
 * Process entry: `bun src/main.ts [--config path] [--port n] [--nodes n|auto]`.
 * Loads the config, starts the broker and shuts it down gracefully on SIGINT/SIGTERM. With `--nodes`, runs that many
 * nodes of the config as one cluster on this machine instead (nodes.ts).
 */
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { loadConfig } from './config.ts'
import { ConfigError } from './errors.ts'
import { createLogger } from './logger.ts'
import { createBroker } from './midge.ts'
import { asNode, nodePlace, runNodes } from './nodes.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' }, nodes: { type: 'string' } },
    strict: true,
  })
  const path = values.config ?? process.env.MQTT_CONFIG ?? 'mqtt.config.ts'
  const loaded = await loadConfig(path, { port: values.port ?? process.env.PORT, httpPort: process.env.HTTP_PORT })
  if (values.nodes !== undefined) {
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
