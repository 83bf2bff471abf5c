/** The sessions' table (src/session-table.ts): what a Map by client id did, through growth, deletion and shrinking. */
import { describe, expect, test } from 'bun:test'
import { SessionTable } from '../src/session-table.ts'

const entry = (clientId: string, n = 0) => ({ clientId, n })

describe('SessionTable', () => {
  test('gets, replaces, deletes once, and counts', () => {
    const table = new SessionTable<{ clientId: string; n: number }>()
    expect(table.get('a')).toBeUndefined()
    expect(table.delete('a')).toBe(false)
    table.set(entry('a', 1))
    table.set(entry('', 2)) // an empty client id is a key like any other
    expect(table.set(entry('a', 3))?.n).toBe(1) // replaces, and says what it replaced
    expect([table.size, table.get('a')?.n, table.get('')?.n, table.has('b')]).toEqual([2, 3, 2, false])
    expect(table.delete('a')).toBe(true)
    expect(table.delete('a')).toBe(false)
    expect([table.size, table.get('a'), table.values().map((e) => e.clientId)]).toEqual([1, undefined, ['']])
  })

  test('agrees with a Map over 200,000 random operations, through growth past 10,000 entries and back', () => {
    const table = new SessionTable<{ clientId: string; n: number }>()
    const map = new Map<string, number>()
    let seed = 42
    let largest = 0
    const random = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
      return (seed >>> 8) % n // the low bits of this generator repeat with a short period
    }
    for (let step = 0; step < 200_000; step++) {
      // Grow for the first half, shrink in the second: every resize and every backward shift is exercised.
      const keys = step < 100_000 ? 30_000 : 3_000
      const id = `client-${random(keys)}`
      const op = random(step < 100_000 ? 4 : 2) // 2 and 3: set
      if (op === 0) {
        expect(table.delete(id)).toBe(map.delete(id))
      } else if (op === 1) {
        expect(table.get(id)?.n).toBe(map.get(id))
      } else {
        table.set(entry(id, step))
        map.set(id, step)
      }
      expect(table.size).toBe(map.size)
      largest = Math.max(largest, map.size)
    }
    expect(largest).toBeGreaterThan(10_000)
    for (const [id, n] of map) expect(table.get(id)?.n).toBe(n)
    expect(table.values().length).toBe(map.size)
    for (const id of [...map.keys()]) expect(table.delete(id)).toBe(true)
    expect([table.size, table.values()]).toEqual([0, []])
  })
})
