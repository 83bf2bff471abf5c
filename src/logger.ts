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

/** Where a logger's lines go, one call per line, without its newline. */
type Sink = (line: string) => void

/** Lines to stdout; without a sink of its own, each line is built with its newline (not copied once more to add it). */
export function createLogger(level: LogLevel, sink?: Sink): Logger {
  const min = LogLevels.indexOf(level)
  const write: Sink = sink ?? ((line) => process.stdout.write(line))
  const end = sink ? '}' : '}\n'
  const emit = (lvl: LogLevel) => {
    if (LogLevels.indexOf(lvl) < min) return () => {}
    const head = `","level":"${lvl}","event":`
    return (event: string, fields?: LogFields) => {
      // The line is put together around one JSON.stringify of the fields, with no replacer and no merged copy of
      // them: a connection storm writes a line per client at info, and each copy was garbage the process grew by.
      const json = fields === undefined ? '{}' : JSON.stringify(plain(fields))
      write(`{"time":"${new Date().toISOString()}${head}${JSON.stringify(event)}${json.length > 2 ? `,${json.slice(1, -1)}` : ''}${end}`)
    }
  }
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), isDebug: min === 0, isInfo: min <= 1 }
}

/** `fields`, or a copy with an Error as its message and a bigint as its digits where a field holds one. */
function plain(fields: LogFields): LogFields {
  for (const key in fields) {
    const value = fields[key]
    if (value instanceof Error || typeof value === 'bigint') {
      const copy: LogFields = {}
      for (const k in fields) {
        const v = fields[k]
        copy[k] = v instanceof Error ? v.message : typeof v === 'bigint' ? v.toString() : v
      }
      return copy
    }
  }
  return fields
}

/** A logger that adds `fields` to every line (e.g. `{ plugin: 'auth' }`). */
export function withFields(logger: Logger, fields: LogFields): Logger {
  const wrap = (fn: Logger['info']) => (event: string, more?: LogFields) => fn(event, { ...fields, ...more })
  return { debug: wrap(logger.debug), info: wrap(logger.info), warn: wrap(logger.warn), error: wrap(logger.error), isDebug: logger.isDebug, isInfo: logger.isInfo }
}
