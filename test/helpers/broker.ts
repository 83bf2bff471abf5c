/** Starts a real broker on 127.0.0.1 and an ephemeral port, with its log lines captured. */
import { type CreateBrokerOptions, createBroker, type ListenAddress, type Midge, type UserConfig } from '../../src/index.ts'
import { createLogger } from '../../src/logger.ts'

export interface TestBroker {
  midge: Midge
  /** Port of the first (TCP) listener. */
  port: number
  addresses: ListenAddress[]
  url: string
  /** Parsed log lines, newest last. */
  logs: Array<Record<string, unknown>>
  close(): Promise<void>
}

type TestConfig = Omit<UserConfig, 'listeners'> & { listeners?: UserConfig['listeners'] }

/** `options.clock`: a ManualClock (helpers/clock.ts) for a test that moves time by hand. */
export async function startBroker(config: TestConfig = {}, options: Pick<CreateBrokerOptions, 'clock'> = {}): Promise<TestBroker> {
  const logs: Array<Record<string, unknown>> = []
  const logger = createLogger(config.log?.level ?? 'debug', (line) => logs.push(JSON.parse(line)))
  const midge = createBroker(
    { sys: { intervalSeconds: 0 }, ...config, listeners: [{ type: 'tcp', host: '127.0.0.1', port: 0 }, ...(config.listeners ?? [])] },
    { logger, clock: options.clock },
  )
  const addresses = await midge.listen()
  const port = addresses[0]!.port
  return { midge, port, addresses, url: `mqtt://127.0.0.1:${port}`, logs, close: () => midge.close() }
}

/** Waits until `predicate` holds, polling each event-loop turn; fails after `ms`. */
export async function until(predicate: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

/**
 * Records what the runtime reports for this process while a test runs: warnings (e.g. a timer armed with NaN),
 * uncaught exceptions and unhandled rejections. A robustness test fails on any of them.
 */
export function watchProcess(): { problems: string[]; stop(): void } {
  const problems: string[] = []
  const warning = (w: Error) => problems.push(`warning ${w.name}: ${w.message}\n${w.stack ?? ''}`)
  const uncaught = (e: unknown) => problems.push(`uncaught exception: ${(e as Error)?.stack ?? String(e)}`)
  const rejection = (e: unknown) => problems.push(`unhandled rejection: ${(e as Error)?.stack ?? String(e)}`)
  process.on('warning', warning)
  process.on('uncaughtException', uncaught)
  process.on('unhandledRejection', rejection)
  return {
    problems,
    stop() {
      process.off('warning', warning)
      process.off('uncaughtException', uncaught)
      process.off('unhandledRejection', rejection)
    },
  }
}
