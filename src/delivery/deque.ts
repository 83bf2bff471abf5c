/**
 * A FIFO queue on a ring buffer: push and shift in constant time (Array#shift moves every element, which
 * hurts once a session has queued many thousands of messages).
 */
export class Deque<T> {
  /** Storage, allocated on the first push (most sessions never queue anything). */
  private items: (T | undefined)[] = EMPTY as T[]
  private head = 0
  private count = 0

  get length(): number {
    return this.count
  }

  push(item: T): void {
    if (this.count === this.items.length) this.grow()
    this.items[(this.head + this.count) & (this.items.length - 1)] = item
    this.count++
  }

  /** The oldest item, without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head]
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined
    const item = this.items[this.head]
    this.items[this.head] = undefined
    this.head = (this.head + 1) & (this.items.length - 1)
    this.count--
    return item
  }

  private grow(): void {
    const next: (T | undefined)[] = new Array(Math.max(16, this.items.length * 2))
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) & (this.items.length - 1)]
    this.items = next
    this.head = 0
  }
}

const EMPTY: never[] = []
