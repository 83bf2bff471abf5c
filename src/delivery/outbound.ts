/**
 * One connection's outbound bytes. Packets queued during a tick are coalesced into one write
 * at the end of that tick (a microtask). Bun's `socket.write` may take only part of a buffer:
 * the rest waits here for `drain`, and while it waits, nothing more is written.
 */
import type { Connection } from '../transport/types.ts'

export class Outbound {
  private pending: Buffer[] = []
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
    /** Called when everything queued has been taken by the socket, so more can be queued. */
    private readonly onWritable: () => void,
  ) {
    this.flush = this.flush.bind(this)
  }

  /** Bytes accepted but not yet taken by the socket. */
  get bufferedBytes(): number {
    return this.pendingBytes + (this.backlog ? this.backlog.length : 0)
  }

  get blocked(): boolean {
    return this.backlog !== null
  }

  push(bytes: Buffer): void {
    if (this.closed) return
    this.pending.push(bytes)
    this.pendingBytes += bytes.length
    if (!this.scheduled && !this.backlog) {
      this.scheduled = true
      queueMicrotask(this.flush)
    }
  }

  /** Writes everything pending now (also used before closing the socket). */
  flush(): void {
    this.scheduled = false
    if (this.closed || this.backlog || this.pendingBytes === 0) return
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes)
    this.pending = []
    this.pendingBytes = 0
    this.write(data)
    if (!this.backlog) this.onWritable()
  }

  /** The socket can take more: write the backlog, then anything queued meanwhile. */
  drain(): void {
    if (!this.backlog) return
    const backlog = this.backlog
    this.backlog = null
    this.write(backlog)
    if (this.backlog) return
    if (this.pendingBytes > 0) this.flush()
    else this.onWritable()
  }

  close(): void {
    this.closed = true
    this.pending = []
    this.pendingBytes = 0
    this.backlog = null
  }

  private write(data: Uint8Array): void {
    const taken = this.conn.write(data)
    const n = taken > 0 ? taken : 0
    this.counter.bytesSent += n
    if (n < data.length) {
      this.backlog = data.subarray(n)
      if (this.blockedSince === 0) this.blockedSince = Date.now()
    } else {
      this.blockedSince = 0
    }
  }
}
