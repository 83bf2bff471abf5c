/**
 * sqlite({ path }): retained messages and persistent sessions on SQLite (bun:sqlite on Bun, node:sqlite on Deno).
 *
 * Memory stays the truth for matching and routing; this plugin is a write-behind mirror loaded at start-up.
 * Changes are queued in memory and written in one transaction per flush (every `flushIntervalMs`, or at the
 * end of the event-loop turn with 0), in WAL mode with prepared statements. The broker acknowledges a QoS 1/2
 * publish (PUBACK/PUBREC) only after the flush that holds it has committed, so an acknowledged message is on
 * disk: it survives `kill -9` of the broker (and, with `synchronous: 'full'`, the loss of power).
 */
import { openSqlite, type SqlDatabase, type SqlStatement } from '../src/runtime/sqlite.ts'
import { existsSync, mkdirSync, renameSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import {
  type Logger,
  type Message,
  type MessageProperties,
  type Plugin,
  type RetainedPersistence,
  type SessionPersistence,
  type StoredDelivery,
  type StoredSession,
  type Subscription,
  validatePluginOptions,
} from '../src/index.ts'
import { type Op, WriteBehind } from './write-behind.ts'

const Options = z.strictObject({
  /** Database file; its folder is created when missing. */
  path: z.string().min(1).default('./data/midge.db'),
  /** Keep retained messages. */
  retained: z.boolean().default(true),
  /** Keep persistent sessions (subscriptions, queued and unacknowledged QoS 1/2 messages). */
  sessions: z.boolean().default(true),
  /** Longest a change waits before it is written (0: at the end of the current event-loop turn). */
  flushIntervalMs: z.number().int().min(0).max(10_000).default(0),
  /** SQLite `synchronous`: 'normal' survives a crash of the broker process; 'full' also a crash of the machine. */
  synchronous: z.enum(['normal', 'full']).default('normal'),
  /**
   * A database that is not a database or is corrupt: 'fail' stops start-up and names the file (the default: never a
   * silent empty start); 'moveAside' renames it to `<path>.corrupt-<time>`, logs that, and starts with an empty one.
   */
  onCorrupt: z.enum(['fail', 'moveAside']).default('fail'),
  /** Largest the database file may grow, in bytes; past it writes fail as on a full disk (unset: no limit but the disk's). */
  maxSizeBytes: z.number().int().min(64 * 1024).optional(),
  /** How often the WAL is checkpointed into the database and freed pages are returned to the file system. */
  maintenanceIntervalMs: z.number().int().min(1000).max(3_600_000).default(60_000),
})

export type SqliteOptions = z.input<typeof Options>

const SCHEMA = `
CREATE TABLE IF NOT EXISTS retained (topic TEXT PRIMARY KEY, payload BLOB NOT NULL, qos INTEGER NOT NULL, properties TEXT, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (client_id TEXT PRIMARY KEY, expiry_interval INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (client_id TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (client_id, key));
CREATE TABLE IF NOT EXISTS deliveries (
  client_id TEXT NOT NULL, seq INTEGER NOT NULL, packet_id INTEGER NOT NULL, state TEXT NOT NULL, qos INTEGER NOT NULL,
  retain INTEGER NOT NULL, subscription_ids TEXT, topic TEXT NOT NULL, payload BLOB NOT NULL, message_qos INTEGER NOT NULL,
  message_retain INTEGER NOT NULL, properties TEXT, expires_at INTEGER NOT NULL, origin TEXT,
  PRIMARY KEY (client_id, seq));
CREATE TABLE IF NOT EXISTS received (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id));
`

export function sqlite(options: SqliteOptions = {}): Plugin {
  const config = validatePluginOptions('sqlite', Options, options)
  let db: SqlDatabase | null = null
  let statements: ReturnType<typeof prepare> | null = null
  let logger: Logger | undefined
  let maintenance: ReturnType<typeof setInterval> | undefined

  function open() {
    if (statements) return statements
    const file = resolve(config.path)
    mkdirSync(dirname(file), { recursive: true })
    try {
      db = openDatabase(file, config)
    } catch (error) {
      if (!isCorrupt(error) || config.onCorrupt === 'fail') throw new Error(cannotOpen(file, error))
      const aside = moveAside(file)
      logger?.warn('sqlite.moved_aside', { path: file, movedTo: aside, error: (error as Error).message })
      db = openDatabase(file, config)
    }
    statements = prepare(db)
    return statements
  }

  const writes = new WriteBehind((batch) => open().transaction(batch), config.flushIntervalMs)
  const queue = (op: Op) => writes.queue(op)
  const flushed = () => writes.flushed()

  const retainedStore: RetainedPersistence = {
    load() {
      const rows = open().loadRetained.all() as RetainedRow[]
      return rows.map((r) => ({
        topic: r.topic,
        payload: Buffer.from(r.payload),
        qos: r.qos as 0 | 1 | 2,
        retain: true,
        properties: decodeProperties(r.properties),
        expiresAt: r.expires_at,
        origin: undefined,
      }))
    },
    set(topic, message) {
      queue(() => {
        const s = open()
        if (message) s.saveRetained.run(topic, message.payload, message.qos, encodeProperties(message.properties), message.expiresAt)
        else s.deleteRetained.run(topic)
      })
    },
    flushed,
  }

  const sessionStore: SessionPersistence = {
    load() {
      const s = open()
      const sessions = new Map<string, StoredSession>()
      for (const r of s.loadSessions.all() as SessionRow[]) {
        sessions.set(r.client_id, { clientId: r.client_id, expiryInterval: r.expiry_interval, expiresAt: r.expires_at, subscriptions: [], deliveries: [], awaitingRelease: [] })
      }
      for (const r of s.loadSubscriptions.all() as { client_id: string; data: string }[]) {
        sessions.get(r.client_id)?.subscriptions.push(JSON.parse(r.data) as Subscription)
      }
      for (const r of s.loadDeliveries.all() as DeliveryRow[]) sessions.get(r.client_id)?.deliveries.push(toDelivery(r))
      for (const r of s.loadReceived.all() as { client_id: string; packet_id: number }[]) sessions.get(r.client_id)?.awaitingRelease.push(r.packet_id)
      return [...sessions.values()]
    },
    saveSession: (clientId, expiryInterval, expiresAt) => queue(() => open().saveSession.run(clientId, expiryInterval, expiresAt)),
    deleteSession: (clientId) =>
      queue(() => {
        const s = open()
        for (const st of [s.deleteSession, s.deleteSubscriptions, s.deleteDeliveries, s.deleteAllReceived]) st.run(clientId)
      }),
    saveSubscription: (clientId, key, sub) => queue(() => open().saveSubscription.run(clientId, key, JSON.stringify(sub))),
    deleteSubscription: (clientId, key) => queue(() => open().deleteSubscription.run(clientId, key)),
    saveDelivery: (clientId, d) =>
      queue(() => {
        const m = d.message
        open().saveDelivery.run(clientId, d.seq, d.packetId, d.state, d.qos, d.retain ? 1 : 0, d.subscriptionIds ? JSON.stringify(d.subscriptionIds) : null, m.topic, m.payload, m.qos, m.retain ? 1 : 0, encodeProperties(m.properties), m.expiresAt, m.origin ?? null)
      }),
    deleteDelivery: (clientId, seq) => queue(() => open().deleteDelivery.run(clientId, seq)),
    saveReceived: (clientId, packetId) => queue(() => open().saveReceived.run(clientId, packetId)),
    deleteReceived: (clientId, packetId) => queue(() => open().deleteReceived.run(clientId, packetId)),
    flushed,
  }

  return {
    name: 'sqlite',
    retainedStore: config.retained ? retainedStore : undefined,
    sessionStore: config.sessions ? sessionStore : undefined,
    start(ctx) {
      logger = ctx.logger
      open()
      const path = resolve(config.path)
      // Deleted rows leave free pages and the WAL grows between checkpoints: both go back to the file system here.
      maintenance = setInterval(() => {
        try {
          db?.exec('PRAGMA incremental_vacuum')
          db?.exec('PRAGMA wal_checkpoint(TRUNCATE)')
        } catch (error) {
          ctx.logger.warn('sqlite.maintenance_failed', { path, error: (error as Error).message })
        }
      }, config.maintenanceIntervalMs)
      maintenance.unref()
      // One line when writes start failing and one when they work again, however many messages meanwhile.
      writes.onFault((error) => {
        if (error) ctx.logger.error('sqlite.write_failed', { path, error: error.message, effect: 'QoS 1/2 publishes are not acknowledged until writes succeed again' })
        else ctx.logger.info('sqlite.write_recovered', { path })
      })
      ctx.logger.info('sqlite.opened', { path, retained: config.retained, sessions: config.sessions })
    },
    stop() {
      clearInterval(maintenance)
      writes.flush()
      db?.close()
      db = null
      statements = null
    },
  }
}

/** The retained store only: `sqlite({ path, sessions: false })`. */
export function sqliteRetained(options: Omit<SqliteOptions, 'retained' | 'sessions'> = {}): Plugin {
  return { ...sqlite({ ...options, sessions: false }), name: 'sqliteRetained' }
}

/** Opens the file and checks it is a sound database with the schema; throws the SQLite error if not. */
function openDatabase(file: string, config: { synchronous: 'normal' | 'full'; maxSizeBytes?: number | undefined }): SqlDatabase {
  const db = openSqlite(file)
  try {
    // Only takes effect on a new file (before the first table); an older file keeps full vacuum off.
    db.exec('PRAGMA auto_vacuum = INCREMENTAL')
    db.exec('PRAGMA journal_mode = WAL')
    db.exec(`PRAGMA synchronous = ${config.synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
    const check = db.query('PRAGMA quick_check').all() as Array<{ quick_check: string }>
    if (check.length !== 1 || check[0]!.quick_check !== 'ok') {
      throw Object.assign(new Error(`database disk image is malformed (${check.map((r) => r.quick_check).slice(0, 3).join('; ')})`), { code: 'SQLITE_CORRUPT' })
    }
    db.exec(SCHEMA)
    if (config.maxSizeBytes !== undefined) {
      const { page_size } = db.query('PRAGMA page_size').get() as { page_size: number }
      db.exec(`PRAGMA max_page_count = ${Math.max(1, Math.floor(config.maxSizeBytes / page_size))}`)
    }
    return db
  } catch (error) {
    db.close()
    throw error
  }
}

function isCorrupt(error: unknown): boolean {
  const code = (error as { code?: string }).code
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB'
}

/** What start-up says when the database cannot be used: the file, the cause, and what to do. */
function cannotOpen(file: string, error: unknown): string {
  const message = (error as Error).message
  const code = (error as { code?: string }).code
  if (isCorrupt(error)) {
    return `the database ${file} is not a sound SQLite database (${message}). Restore it from a backup, or move it aside to start with an empty one; sqlite({ onCorrupt: 'moveAside' }) does that at start.`
  }
  // Extended codes name the cause (SQLITE_READONLY_DIRECTORY, SQLITE_CANTOPEN_ISDIR, ...).
  if (code?.startsWith('SQLITE_READONLY') || code?.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') {
    return `the database ${file} cannot be written (${message}). Check that the broker's user may write the file and its folder.`
  }
  return `the database ${file} cannot be opened (${message}).`
}

/** Renames a corrupt database (and its WAL and shared-memory files) aside; returns the new name. */
function moveAside(file: string): string {
  const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
  renameSync(file, aside)
  for (const suffix of ['-wal', '-shm']) if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix)
  return aside
}

function prepare(db: SqlDatabase) {
  const q = (sql: string): SqlStatement => db.prepare(sql)
  const statements = {
    loadRetained: q('SELECT topic, payload, qos, properties, expires_at FROM retained'),
    saveRetained: q('INSERT OR REPLACE INTO retained (topic, payload, qos, properties, expires_at) VALUES (?, ?, ?, ?, ?)'),
    deleteRetained: q('DELETE FROM retained WHERE topic = ?'),
    loadSessions: q('SELECT client_id, expiry_interval, expires_at FROM sessions'),
    saveSession: q('INSERT OR REPLACE INTO sessions (client_id, expiry_interval, expires_at) VALUES (?, ?, ?)'),
    deleteSession: q('DELETE FROM sessions WHERE client_id = ?'),
    loadSubscriptions: q('SELECT client_id, data FROM subscriptions'),
    saveSubscription: q('INSERT OR REPLACE INTO subscriptions (client_id, key, data) VALUES (?, ?, ?)'),
    deleteSubscription: q('DELETE FROM subscriptions WHERE client_id = ? AND key = ?'),
    deleteSubscriptions: q('DELETE FROM subscriptions WHERE client_id = ?'),
    loadDeliveries: q('SELECT * FROM deliveries ORDER BY client_id, seq'),
    saveDelivery: q(
      'INSERT OR REPLACE INTO deliveries (client_id, seq, packet_id, state, qos, retain, subscription_ids, topic, payload, message_qos, message_retain, properties, expires_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    deleteDelivery: q('DELETE FROM deliveries WHERE client_id = ? AND seq = ?'),
    deleteDeliveries: q('DELETE FROM deliveries WHERE client_id = ?'),
    loadReceived: q('SELECT client_id, packet_id FROM received'),
    saveReceived: q('INSERT OR REPLACE INTO received (client_id, packet_id) VALUES (?, ?)'),
    deleteReceived: q('DELETE FROM received WHERE client_id = ? AND packet_id = ?'),
    deleteAllReceived: q('DELETE FROM received WHERE client_id = ?'),
  }
  const transaction = db.transaction((batch: Op[]) => {
    for (const op of batch) op()
  })
  return { ...statements, transaction: (batch: Op[]) => transaction(batch) }
}

interface RetainedRow {
  topic: string
  payload: Uint8Array
  qos: number
  properties: string | null
  expires_at: number
}
interface SessionRow {
  client_id: string
  expiry_interval: number
  expires_at: number
}
interface DeliveryRow {
  client_id: string
  seq: number
  packet_id: number
  state: StoredDelivery['state']
  qos: number
  retain: number
  subscription_ids: string | null
  topic: string
  payload: Uint8Array
  message_qos: number
  message_retain: number
  properties: string | null
  expires_at: number
  origin: string | null
}

function toDelivery(r: DeliveryRow): StoredDelivery {
  const message: Message = {
    topic: r.topic,
    payload: Buffer.from(r.payload),
    qos: r.message_qos as 0 | 1 | 2,
    retain: r.message_retain === 1,
    properties: decodeProperties(r.properties),
    expiresAt: r.expires_at,
    origin: r.origin ?? undefined,
  }
  return {
    seq: r.seq,
    packetId: r.packet_id,
    state: r.state,
    qos: r.qos as 0 | 1 | 2,
    retain: r.retain === 1,
    subscriptionIds: r.subscription_ids ? (JSON.parse(r.subscription_ids) as number[]) : undefined,
    message,
  }
}

/** Message properties as JSON; correlation data (bytes) as base64. */
function encodeProperties(p: MessageProperties | undefined): string | null {
  if (!p) return null
  const { correlationData, ...rest } = p
  return JSON.stringify(correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') })
}

function decodeProperties(text: string | null): MessageProperties | undefined {
  if (!text) return undefined
  const { correlationData, ...rest } = JSON.parse(text) as MessageProperties & { correlationData?: string }
  return correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') }
}
