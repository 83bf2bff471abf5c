/**
 * Structured logging: one JSON line per event worth knowing, to stderr-free stdout.
 * Quiet per message: the hot path never logs at `info`.
 */
export const LogLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LogLevels)[number]
export type LogFields = Record<string, unknown>

export interface Logger {
  debug(event: string, fields?: LogFields): void
  info(event: string, fields?: LogFields): void
  warn(event: string, fields?: LogFields): void
  error(event: string, fields?: LogFields): void
  /** Whether debug / info lines are written: check before building the fields of a frequent line. */
  isDebug: boolean
  isInfo: boolean
}

type Sink = (line: string) => void

export function createLogger(level: LogLevel, sink: Sink = (line) => process.stdout.write(line + '\n')): Logger {
  const min = LogLevels.indexOf(level)
  const emit = (lvl: LogLevel) => {
    if (LogLevels.indexOf(lvl) < min) return () => {}
    return (event: string, fields?: LogFields) => {
      sink(JSON.stringify({ time: new Date().toISOString(), level: lvl, event, ...fields }, replacer))
    }
  }
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), isDebug: min === 0, isInfo: min <= 1 }
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message
  if (typeof value === 'bigint') return value.toString()
  return value
}

/** A logger that adds `fields` to every line (e.g. `{ plugin: 'auth' }`). */
export function withFields(logger: Logger, fields: LogFields): Logger {
  const wrap = (fn: Logger['info']) => (event: string, more?: LogFields) => fn(event, { ...fields, ...more })
  return { debug: wrap(logger.debug), info: wrap(logger.info), warn: wrap(logger.warn), error: wrap(logger.error), isDebug: logger.isDebug, isInfo: logger.isInfo }
}
