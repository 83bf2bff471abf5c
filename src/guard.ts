/**
 * The last line of defence: an exception or rejection nothing caught. Bun ends the process on either, so one
 * bug reached by one client (or one plugin) would take the broker down for everyone. While a broker listens, each
 * is logged as one line with its stack, and the process goes on serving. Every path the broker knows of handles
 * its own errors; a line from here is a bug to report.
 */
import type { Logger } from './logger.ts'

const loggers = new Set<Logger>()

function onUncaughtException(error: unknown): void {
  report('process.uncaught_exception', error)
}

function onUnhandledRejection(reason: unknown): void {
  report('process.unhandled_rejection', reason)
}

function report(event: string, error: unknown): void {
  const fields = { error: error instanceof Error ? (error.stack ?? error.message) : String(error) }
  for (const logger of loggers) logger.error(event, fields)
}

/** Logs uncaught exceptions and unhandled rejections through `logger` until the returned function is called. */
export function guardProcess(logger: Logger): () => void {
  if (loggers.size === 0) {
    process.on('uncaughtException', onUncaughtException)
    process.on('unhandledRejection', onUnhandledRejection)
  }
  loggers.add(logger)
  return () => {
    if (!loggers.delete(logger) || loggers.size > 0) return
    process.off('uncaughtException', onUncaughtException)
    process.off('unhandledRejection', onUnhandledRejection)
  }
}
