/**
 * Write-behind batching for plugins that keep things in SQLite: changes are queued in memory and applied
 * together (one transaction) at the end of the event-loop turn, or every `intervalMs`. `flushed()` tells
 * a caller when what it queued is written, which is what the broker waits on before acknowledging.
 */
export type Op = () => void

export class WriteBehind {
  private ops: Op[] = []
  private waiting: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | null = null
  private timer: ReturnType<typeof setTimeout> | null = null
  /** The error of the last batch while writes fail; null while they succeed. */
  private fault: Error | null = null
  private faultListener: (error: Error | null) => void = () => {}

  constructor(
    /** Applies a batch of changes in one transaction; throws if it could not. */
    private readonly apply: (batch: Op[]) => void,
    private readonly intervalMs: number,
    /** Called after each batch is written (e.g. to wake a sender). */
    private readonly afterWrite: () => void = () => {},
  ) {}

  queue(op: Op): void {
    this.ops.push(op)
    if (!this.timer) this.timer = setTimeout(() => this.flush(), this.intervalMs)
  }

  /** Writes every queued change now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const batch = this.ops
    const waiting = this.waiting
    this.ops = []
    this.waiting = null
    if (batch.length === 0) return waiting?.resolve()
    try {
      this.apply(batch)
    } catch (error) {
      // The batch is not written: whoever waits on it (an acknowledgement) is told so, and nothing it held is
      // taken as stored. Memory stays the truth while the broker runs.
      const first = this.fault === null
      this.fault = error instanceof Error ? error : new Error(String(error))
      if (first) this.faultListener(this.fault)
      waiting?.reject(this.fault)
      return
    }
    if (this.fault) {
      this.fault = null
      this.faultListener(null)
    }
    waiting?.resolve()
    this.afterWrite()
  }

  /** Tells `listener` when writes start failing (with the error) and when they succeed again (null): once each, not per batch. */
  onFault(listener: (error: Error | null) => void): void {
    this.faultListener = listener
  }

  /** The error writes fail with now, or null. */
  get failing(): Error | null {
    return this.fault
  }

  /** Resolves when everything queued so far is written; null when nothing is queued. */
  flushed(): Promise<void> | null {
    if (this.ops.length === 0) return null
    if (!this.waiting) {
      let resolve!: () => void
      let reject!: (e: unknown) => void
      const promise = new Promise<void>((res, rej) => {
        resolve = res
        reject = rej
      })
      this.waiting = { promise, resolve, reject }
    }
    return this.waiting.promise
  }
}
