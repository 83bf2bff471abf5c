/**
 * SQLite for the store plugins on either runtime: bun:sqlite on Bun, node:sqlite on Deno, behind the few calls
 * the plugins make (exec, prepared statements, cached queries, transactions, close). Both bind positional `?`
 * parameters, take Uint8Array as BLOB and give BLOBs back as Uint8Array.
 */
import { isDeno } from './detect.ts'

export type SqlValue = string | number | bigint | null | Uint8Array

export interface SqlStatement {
  run(...params: SqlValue[]): { changes: number }
  get(...params: SqlValue[]): unknown
  all(...params: SqlValue[]): unknown[]
}

export interface SqlDatabase {
  exec(sql: string): void
  prepare(sql: string): SqlStatement
  /** A statement prepared once per database and kept. */
  query(sql: string): SqlStatement
  /** `fn` in one transaction: committed when it returns, rolled back when it throws. */
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void
  close(): void
}

/**
 * Opens (creating) the database file. Errors carry SQLite's result code name in `code` (SQLITE_CORRUPT,
 * SQLITE_READONLY, ...), as bun:sqlite's do.
 */
export function openSqlite(file: string): SqlDatabase {
  return isDeno ? openNodeSqlite(file) : openBunSqlite(file)
}

function builtin<T>(name: string): T {
  // getBuiltinModule: synchronous, and no import for the other runtime's bundler or module graph to chase.
  return (process as unknown as { getBuiltinModule(id: string): T }).getBuiltinModule(name)
}

function openBunSqlite(file: string): SqlDatabase {
  const { Database } = builtin<typeof import('bun:sqlite')>('bun:sqlite')
  // strict: `?` parameters bind without prefixes, and a missing one is an error. bun:sqlite has the same shape.
  return new Database(file, { create: true, strict: true }) as unknown as SqlDatabase
}

interface NodeDatabase {
  exec(sql: string): void
  prepare(sql: string): SqlStatement
  close(): void
}

function openNodeSqlite(file: string): SqlDatabase {
  const { DatabaseSync } = builtin<{ DatabaseSync: new (path: string) => NodeDatabase }>('node:sqlite')
  const db = withCodes(() => new DatabaseSync(file))
  const cached = new Map<string, SqlStatement>()
  const prepare = (sql: string): SqlStatement => {
    const statement = withCodes(() => db.prepare(sql))
    return {
      run: (...params) => withCodes(() => statement.run(...params)),
      get: (...params) => withCodes(() => statement.get(...params)),
      all: (...params) => withCodes(() => statement.all(...params)),
    }
  }
  return {
    exec: (sql) => withCodes(() => db.exec(sql)),
    prepare,
    query(sql) {
      let statement = cached.get(sql)
      if (!statement) cached.set(sql, (statement = prepare(sql)))
      return statement
    },
    transaction:
      (fn) =>
      (...args) => {
        db.exec('BEGIN')
        try {
          fn(...args)
          withCodes(() => db.exec('COMMIT'))
        } catch (error) {
          try {
            db.exec('ROLLBACK')
          } catch {
            // SQLite rolled back already (a failed COMMIT of a full disk does)
          }
          throw error
        }
      },
    close: () => db.close(),
  }
}

/** SQLite's primary result codes, by number, for the names bun:sqlite puts in `code`. */
const CODES: Record<number, string> = {
  1: 'SQLITE_ERROR',
  3: 'SQLITE_PERM',
  5: 'SQLITE_BUSY',
  8: 'SQLITE_READONLY',
  10: 'SQLITE_IOERR',
  11: 'SQLITE_CORRUPT',
  13: 'SQLITE_FULL',
  14: 'SQLITE_CANTOPEN',
  19: 'SQLITE_CONSTRAINT',
  23: 'SQLITE_AUTH',
  26: 'SQLITE_NOTADB',
}

/** SQLite's own text for those codes (sqlite3_errstr), for a node:sqlite that gives the text only (Deno's). */
const BY_MESSAGE: Array<[string, string]> = [
  ['file is not a database', 'SQLITE_NOTADB'],
  ['database disk image is malformed', 'SQLITE_CORRUPT'],
  ['attempt to write a readonly database', 'SQLITE_READONLY'],
  ['unable to open database file', 'SQLITE_CANTOPEN'],
  ['database or disk is full', 'SQLITE_FULL'],
  ['access permission denied', 'SQLITE_PERM'],
  ['database is locked', 'SQLITE_BUSY'],
  ['disk I/O error', 'SQLITE_IOERR'],
]

/**
 * node:sqlite's errors say `code: 'ERR_SQLITE_ERROR'`, with the number in `errcode` (Node) or only SQLite's text
 * (Deno): give them the name instead, as the store plugins read it.
 */
function withCodes<T>(fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    const errcode = (error as { errcode?: unknown }).errcode
    const message = error instanceof Error ? error.message : ''
    const code = typeof errcode === 'number' ? (CODES[errcode & 0xff] ?? `SQLITE_${errcode & 0xff}`) : BY_MESSAGE.find(([text]) => message.includes(text))?.[1]
    if (code) Object.assign(error as object, { code })
    throw error
  }
}
