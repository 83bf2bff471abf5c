/**
 * A durable first-in, first-out queue of text items in SQLite, for plugins that send what the broker routed
 * somewhere else (the webhook, the MQTT bridge). Items are written behind (write-behind.ts): one transaction at
 * the end of the event-loop turn, and `flushed()` is what the broker waits on before acknowledging a QoS 1/2
 * publish, so an acknowledged message is in the outbox. A sender takes items oldest first and removes them once
 * delivered; what it gives up on goes to a dead-letter table. The file survives restarts.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { openSqlite, type SqlDatabase } from '../src/runtime/sqlite.ts'
import { WriteBehind } from './write-behind.ts'

export interface OutboxItem {
  id: number
  item: string
  attempts: number
}

export class Outbox {
  readonly file: string
  private db: SqlDatabase | null = null
  private readonly writes: WriteBehind
  /** Items stored or queued to be: the bound is checked against it without a query. */
  private count = 0
  private woken: (() => void) | null = null

  constructor(
    file: string,
    /** Most items held; `add` refuses more. */
    private readonly maxItems = Infinity,
  ) {
    this.file = resolve(file)
    this.writes = new WriteBehind(
      (batch) => this.open().transaction(() => batch.forEach((op) => op()))(),
      0,
      () => this.woken?.(),
    )
  }

  /** Opens (or creates) the file; called by the first use. */
  open(): SqlDatabase {
    if (this.db) return this.db
    mkdirSync(dirname(this.file), { recursive: true })
    const db = openSqlite(this.file)
    db.exec('PRAGMA journal_mode = WAL')
    db.exec('PRAGMA synchronous = NORMAL')
    db.exec(`CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, event TEXT NOT NULL, attempts INTEGER NOT NULL, error TEXT, failed_at INTEGER NOT NULL);`)
    this.count = (db.query('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n
    this.db = db
    return db
  }

  /** Items waiting. */
  get size(): number {
    this.open()
    return this.count
  }

  /** Queues an item (written at the end of this turn); false, and nothing queued, when the outbox is full. */
  add(item: string): boolean {
    if (this.size >= this.maxItems) return false
    this.count++
    this.writes.queue(() => this.open().query('INSERT INTO outbox (event) VALUES (?)').run(item))
    return true
  }

  /** The oldest items, up to `limit`. */
  take(limit: number): OutboxItem[] {
    return this.open().query('SELECT id, event AS item, attempts FROM outbox ORDER BY id LIMIT ?').all(limit) as OutboxItem[]
  }

  /** Removes every item up to `lastId`: delivered. */
  done(lastId: number): void {
    this.count -= this.open().query('DELETE FROM outbox WHERE id <= ?').run(lastId).changes
  }

  /** Counts one more failed attempt on every item up to `lastId`. */
  attempted(lastId: number): void {
    this.open().query('UPDATE outbox SET attempts = attempts + 1 WHERE id <= ?').run(lastId)
  }

  /** Moves every item up to `lastId` to the dead-letter table, with why. */
  bury(lastId: number, error: string): void {
    const db = this.open()
    db.transaction(() => {
      db.query('INSERT INTO dead_letters (id, event, attempts, error, failed_at) SELECT id, event, attempts, ?, ? FROM outbox WHERE id <= ?').run(error, Date.now(), lastId)
      this.count -= db.query('DELETE FROM outbox WHERE id <= ?').run(lastId).changes
    })()
  }

  /** Resolves once an item is written (or `wake()` is called): a sender with nothing to send waits on it. */
  waitForItems(): Promise<void> {
    return new Promise<void>((resolve) => (this.woken = resolve)).finally(() => (this.woken = null))
  }

  /** Ends a `waitForItems()` now (the sender is stopping, or should look again). */
  wake(): void {
    this.woken?.()
  }

  /** Resolves when everything added so far is written; null when nothing is pending. */
  flushed(): Promise<void> | null {
    return this.writes.flushed()
  }

  /** Tells `listener` when writes start failing (with the error) and when they succeed again (null). */
  onFault(listener: (error: Error | null) => void): void {
    this.writes.onFault(listener)
  }

  /** Writes what is pending and closes the file. */
  close(): void {
    this.writes.flush()
    this.db?.close()
    this.db = null
  }
}
