/**
 * Sessions by client id, in one open-addressed table (linear probing, deletion by backward shift: no tombstones).
 *
 * A Map was the largest per-connection cost left: past 16,384 entries JSC's Map took ~200 B of process memory per
 * entry (measured at 19,000), a null-prototype object ~105 B, this table 12 B per slot (a reference and the key's
 * hash) at a load of 3/8 to 3/4. A lookup hashes the client id's characters (~1 ns each), where a Map reuses the
 * string's cached hash: routing does not look sessions up per message (a route keeps each client's session, see
 * ClientMatch.session), so lookups are the connect path's and a few others'.
 */

/** What the table holds: anything keyed by its own client id. */
export interface Keyed {
  readonly clientId: string
}

const MIN_SLOTS = 16 // a power of 2

export class SessionTable<T extends Keyed> {
  private slots: (T | undefined)[] = new Array<T | undefined>(MIN_SLOTS).fill(undefined)
  /** Each slot's key hash (0 when empty), so a probe compares strings only when the hashes agree. */
  private hashes = new Int32Array(MIN_SLOTS)
  private count = 0

  get size(): number {
    return this.count
  }

  get(clientId: string): T | undefined {
    const mask = this.slots.length - 1
    const hash = hashOf(clientId)
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const found = this.slots[i]
      if (found === undefined) return undefined
      if (this.hashes[i] === hash && found.clientId === clientId) return found
    }
  }

  has(clientId: string): boolean {
    return this.get(clientId) !== undefined
  }

  /** Holds `item` under its client id, in place of any other with that id; returns the one it replaced. */
  set(item: T): T | undefined {
    if ((this.count + 1) * 4 > this.slots.length * 3) this.resize(this.slots.length * 2)
    const mask = this.slots.length - 1
    const hash = hashOf(item.clientId)
    let i = hash & mask
    for (; ; i = (i + 1) & mask) {
      const found = this.slots[i]
      if (found === undefined) break
      if (this.hashes[i] === hash && found.clientId === item.clientId) {
        this.slots[i] = item
        return found
      }
    }
    this.slots[i] = item
    this.hashes[i] = hash
    this.count++
    return undefined
  }

  /** Removes what is held under `clientId`; false when nothing was. */
  delete(clientId: string): boolean {
    const mask = this.slots.length - 1
    const hash = hashOf(clientId)
    let i = hash & mask
    for (; ; i = (i + 1) & mask) {
      const found = this.slots[i]
      if (found === undefined) return false
      if (this.hashes[i] === hash && found.clientId === clientId) break
    }
    // Backward shift: every later entry of the run that may sit in the freed slot moves into it.
    for (let j = (i + 1) & mask; this.slots[j] !== undefined; j = (j + 1) & mask) {
      const home = this.hashes[j]! & mask
      // The entry at j may move to i unless its home lies cyclically within (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        this.slots[i] = this.slots[j]
        this.hashes[i] = this.hashes[j]!
        i = j
      }
    }
    this.slots[i] = undefined
    this.hashes[i] = 0
    this.count--
    // A storm of connections gone: give the table's memory back.
    if (this.slots.length > MIN_SLOTS && this.count * 8 < this.slots.length) this.resize(this.slots.length / 2)
    return true
  }

  /** Everything held, as a list of its own (the table may change while the caller goes through it). */
  values(): T[] {
    const out: T[] = []
    for (const item of this.slots) if (item !== undefined) out.push(item)
    return out
  }

  private resize(size: number): void {
    const slots = this.slots
    const hashes = this.hashes
    this.slots = new Array<T | undefined>(size).fill(undefined)
    this.hashes = new Int32Array(size)
    const mask = size - 1
    for (let k = 0; k < slots.length; k++) {
      const item = slots[k]
      if (item === undefined) continue
      let i = hashes[k]! & mask
      while (this.slots[i] !== undefined) i = (i + 1) & mask
      this.slots[i] = item
      this.hashes[i] = hashes[k]!
    }
  }
}

/**
 * A random start for every process: client ids come from the network, and with a hash anyone can compute, ids made
 * to share their low bits would pile up in one run of slots and make every connect walk it.
 */
const SEED = crypto.getRandomValues(new Uint32Array(1))[0]!

/** FNV-1a over the UTF-16 code units from a random basis, with a final mix so that the slot depends on every character. */
function hashOf(key: string): number {
  let hash = 0x811c9dc5 ^ SEED
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  return hash ^ (hash >>> 13)
}
