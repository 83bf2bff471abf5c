/**
 * The broker's time: what keep alive, the CONNECT timeout, session expiry, will delay, message and retained expiry,
 * bans and the sweep read. The system clock is the default; a test gives the broker a clock it moves by hand, so no
 * test waits seconds of real time for an expiry.
 */
export type Timer = unknown

export interface Clock {
  /** Epoch milliseconds. */
  now(): number
  /** Runs `fn` once after `ms`; the timer does not keep the process alive. */
  setTimeout(fn: () => void, ms: number): Timer
  /** Runs `fn` every `ms`; the timer does not keep the process alive. */
  setInterval(fn: () => void, ms: number): Timer
  /** Stops a timer made by either (undefined is ignored). */
  clear(timer: Timer | undefined): void
}

/** setTimeout cannot wait longer than this (~24.8 days). */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

export const systemClock: Clock = {
  now: Date.now,
  setTimeout(fn, ms) {
    // A longer wait (a session expiry of up to 136 years in MQTT 5) is "not within this process's life": never fires.
    const timer = setTimeout(ms > MAX_TIMEOUT_MS ? () => {} : fn, Math.min(ms, MAX_TIMEOUT_MS))
    timer.unref()
    return timer
  },
  setInterval(fn, ms) {
    const timer = setInterval(fn, ms)
    timer.unref()
    return timer
  },
  clear(timer) {
    if (timer !== undefined) clearTimeout(timer as ReturnType<typeof setTimeout>)
  },
}
