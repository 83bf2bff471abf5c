/**
 * One connection's outbound bytes. Packets queued during a tick are coalesced into one write at the end of
 * that tick: every connection written to in a tick is flushed by one shared microtask (a fan-out to 200
 * subscribers schedules one, not 200). Bun's `socket.write` may take only part of a buffer: the rest waits
 * here for `drain`, and while it waits, nothing more is written.
 */
import type { Connection } from '../transport/types.ts'

/**
 * Past this many pending bytes, write at once instead of waiting for the end of the tick, so a burst
 * within one tick goes to the kernel as it comes and `bufferedBytes` counts only what the socket refused.
 */
const INLINE_FLUSH_BYTES = 64 * 1024

/** Who owns the buffer: told when everything queued has been taken by the socket, so more can be queued. */
export interface OutboundOwner {
  onWritable(): void
  /** Writing or what followed it threw: the owner ends the connection (it must not throw itself). */
  onFlushError(error: unknown): void
  /** The time, by the clock the slow-consumer deadline is read with. */
  now(): number
}

/**
 * Where a flush joins the packets a tick queued: one buffer for every connection, reused, since a transport keeps
 * nothing of what it is handed to write (Connection.write). A new buffer per flush cost an allocation, and its
 * first touch, for every write of many packets. Holds a flush that waited for the inline limit; larger joins
 * (a packet that alone is larger) get a buffer of their own.
 */
const joined = Buffer.allocUnsafeSlow(2 * INLINE_FLUSH_BYTES)

function join(list: Buffer[], total: number): Uint8Array {
  if (total > joined.length) return Buffer.concat(list, total)
  let at = 0
  for (let i = 0; i < list.length; i++) {
    joined.set(list[i]!, at)
    at += list[i]!.length
  }
  return joined.subarray(0, total)
}

/** Connections with bytes pending until the end of this tick, flushed by one microtask. */
const due: Outbound[] = []
let flushScheduled = false

function flushDue(): void {
  flushScheduled = false
  // A flush may queue more (a pumped session): those join `due` and are flushed in this same loop.
  for (let i = 0; i < due.length; i++) {
    try {
      due[i]!.endOfTick()
    } catch (error) {
      // A bug in one connection's flush must not leave the others unflushed, nor reach the process: its owner ends it.
      due[i]!.owner.onFlushError(error)
    }
  }
  due.length = 0
}

export class Outbound {
  /** The one buffer pending, while there is only one (an idle connection never needs a list: CONNACK, a PINGRESP). */
  private one: Buffer | null = null
  /** Every buffer pending, once a tick queues more than one; kept for reuse once made. */
  private many: Buffer[] | null = null
  private pendingBytes = 0
  private backlog: Uint8Array | null = null
  private scheduled = false
  private closed = false
  /** When the socket last refused bytes and has not drained since; 0 when not blocked. */
  blockedSince = 0
  constructor(
    private readonly conn: Connection,
    /** Counts the bytes the socket has taken (the broker's `bytesSent`). */
    private readonly counter: { bytesSent: number },
    readonly owner: OutboundOwner,
  ) {}

  /** Bytes accepted but not yet taken by the socket. */
  get bufferedBytes(): number {
    return this.pendingBytes + (this.backlog ? this.backlog.length : 0)
  }

  push(bytes: Buffer): void {
    if (this.closed) return
    if (this.pendingBytes === 0) {
      this.one = bytes
    } else {
      const list = (this.many ??= [])
      if (this.one) {
        list.push(this.one)
        this.one = null
      }
      list.push(bytes)
    }
    this.pendingBytes += bytes.length
    if (this.backlog) return
    if (this.pendingBytes >= INLINE_FLUSH_BYTES) {
      this.flush()
    } else if (!this.scheduled) {
      this.scheduled = true
      due.push(this)
      if (!flushScheduled) {
        flushScheduled = true
        queueMicrotask(flushDue)
      }
    }
  }

  /** End of the tick: write what the tick queued, then let the session queue more if the socket took it all. */
  endOfTick(): void {
    this.scheduled = false
    this.flush()
    if (!this.backlog && !this.closed) this.owner.onWritable()
  }

  /** Writes everything pending now (also used before closing the socket). */
  flush(): void {
    if (this.closed || this.backlog || this.pendingBytes === 0) return
    const data = this.one ?? join(this.many!, this.pendingBytes)
    this.one = null
    if (this.many) this.many.length = 0
    this.pendingBytes = 0
    this.write(data)
  }

  /** The socket can take more: write the backlog, then anything queued meanwhile. */
  drain(): void {
    if (!this.backlog) return
    const backlog = this.backlog
    this.backlog = null
    this.write(backlog)
    if (this.backlog) return
    this.flush()
    if (!this.backlog) this.owner.onWritable()
  }

  close(): void {
    this.closed = true
    this.one = null
    this.many = null
    this.pendingBytes = 0
    this.backlog = null
  }

  private write(data: Uint8Array): void {
    const taken = this.conn.write(data)
    const n = taken > 0 ? taken : 0
    this.counter.bytesSent += n
    if (n < data.length) {
      const rest = data.subarray(n)
      // What remains of a join is copied: the next flush reuses that buffer. A PUBLISH forwarded as received is a
      // view of a read: kept while the socket is blocked, it would pin that whole read, so it is copied when it is
      // less than half of the memory it would keep.
      this.backlog = rest.buffer === joined.buffer || rest.length * 2 < rest.buffer.byteLength ? new Uint8Array(rest) : rest
      if (this.blockedSince === 0) this.blockedSince = this.owner.now()
    } else {
      this.blockedSince = 0
    }
  }
}
