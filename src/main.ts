/**
 * Process entry: `bun src/main.ts [--config path] [--port n]`.
 * Loads the config, starts the broker and shuts it down gracefully on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util'
import { loadConfig } from './config.ts'
import { ConfigError } from './errors.ts'
import { createBroker } from './midge.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' } },
    strict: true,
  })
  const path = values.config ?? process.env.MQTT_CONFIG ?? 'mqtt.config.ts'
  const config = await loadConfig(path, { port: values.port ?? process.env.PORT, httpPort: process.env.HTTP_PORT })
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
