/** A clock a test moves by hand: the broker's expiries, keep alive and sweep run when the test says time has passed. */
import type { Clock, Timer } from '../../src/clock.ts'

interface Pending {
  at: number
  fn: () => void
  /** Repeats every this many ms (setInterval); 0 for once. */
  every: number
}

export class ManualClock implements Clock {
  private time: number
  private readonly timers = new Set<Pending>()

  constructor(start = Date.now()) {
    this.time = start
  }

  now(): number {
    return this.time
  }

  setTimeout(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, 0)
  }

  setInterval(fn: () => void, ms: number): Timer {
    return this.add(fn, ms, Math.max(1, ms))
  }

  clear(timer: Timer | undefined): void {
    this.timers.delete(timer as Pending)
  }

  /** Moves time on by `ms`, running every timer that comes due on the way, in time order, each at its own time. */
  advance(ms: number): void {
    const end = this.time + ms
    for (;;) {
      let next: Pending | undefined
      for (const t of this.timers) if (t.at <= end && (!next || t.at < next.at)) next = t
      if (!next) break
      this.time = Math.max(this.time, next.at)
      if (next.every > 0) next.at += next.every
      else this.timers.delete(next)
      next.fn()
    }
    this.time = end
  }

  private add(fn: () => void, ms: number, every: number): Pending {
    const timer = { at: this.time + Math.max(0, ms), fn, every }
    this.timers.add(timer)
    return timer
  }
}
