import { describe, expect, test } from 'bun:test'
import type { Message } from '../src/message.ts'
import { RouteCache, RouteMatches } from '../src/delivery/matches.ts'
import { MemoryRetainedStore } from '../src/topics/retained.ts'
import { filterMatches, type ShareGroup, type Subscription, SubscriptionTrie } from '../src/topics/trie.ts'
import { topicFilterError, topicNameError } from '../src/protocol/validate.ts'

/** A small seeded PRNG (mulberry32) so failures reproduce. */
function rng(seed: number) {
  return () => {
    seed |= 0
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const words = ['a', 'b', 'c', '$sys', '', 'x']
function randomTopic(r: () => number): string {
  const n = 1 + Math.floor(r() * 4)
  return Array.from({ length: n }, () => words[Math.floor(r() * words.length)]).join('/')
}
function randomFilter(r: () => number): string {
  const n = 1 + Math.floor(r() * 4)
  const levels = Array.from({ length: n }, () => (r() < 0.25 ? '+' : words[Math.floor(r() * words.length)]!))
  if (r() < 0.3) levels[n - 1] = '#'
  return levels.join('/')
}
/** The matcher as section 4.7 reads, level by level on split strings: what the trie, the retained index and filterMatches must agree with. */
function referenceMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false // [MQTT-4.7.2-1]
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

const sub = (clientId: string, filter: string): Subscription => ({ clientId, filter, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0, identifier: 0, group: undefined })
const limits = { maxTopicLevels: 128, maxTopicLength: 65535 }

describe('subscription trie', () => {
  test('(section 4.7) matches exactly what the reference matcher matches, on 3,000 random topics against 300 random filters', () => {
    const r = rng(42)
    const trie = new SubscriptionTrie()
    const filters = Array.from({ length: 300 }, () => randomFilter(r)).filter((f) => topicFilterError(f, limits) === null)
    filters.forEach((f, i) => trie.add(sub(`c${i}`, f)))
    for (let n = 0; n < 3000; n++) {
      const topic = randomTopic(r)
      if (topicNameError(topic, limits)) continue
      const got: string[] = []
      trie.match(topic, { subscription: (s) => got.push(s.clientId), group: () => {} })
      const want = filters.flatMap((f, i) => (referenceMatches(f, topic) ? [`c${i}`] : []))
      expect(got.sort()).toEqual(want.sort())
    }
    // Half the subscriptions go (nodes lose children, some down to one): the rest still match as the reference says.
    filters.forEach((f, i) => i % 2 === 0 && trie.remove(sub(`c${i}`, f)))
    for (let n = 0; n < 3000; n++) {
      const topic = randomTopic(r)
      if (topicNameError(topic, limits)) continue
      const got: string[] = []
      trie.match(topic, { subscription: (s) => got.push(s.clientId), group: () => {} })
      const want = filters.flatMap((f, i) => (i % 2 === 1 && referenceMatches(f, topic) ? [`c${i}`] : []))
      expect(got.sort()).toEqual(want.sort())
    }
  })

  test('(section 4.7) filterMatches, which walks the strings in place, agrees with the reference on 200,000 random pairs', () => {
    const r = rng(7)
    for (let n = 0; n < 200_000; n++) {
      const f = randomFilter(r)
      const t = randomTopic(r)
      if (referenceMatches(f, t) !== filterMatches(f, t)) expect(`${f} vs ${t}: ${filterMatches(f, t)}`).toBe(`${f} vs ${t}: ${referenceMatches(f, t)}`)
    }
    for (const [f, t, want] of [['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS', true], ['a/#', 'a', true], ['a/+', 'a', false], ['a/+', 'a/', true], ['+', '', true], ['a//b', 'a//b', true], ['ab', 'a', false], ['a', 'ab', false]] as const) {
      expect(filterMatches(f, t)).toBe(want)
    }
  })

  test('a route kept for one topic holds for another only when the trie cannot tell them apart (the levels its walk decided on)', () => {
    // Words that share characters ('a', 'ab') and empty levels: a prefix must end at a level's end, not inside one.
    const local = ['a', 'ab', 'b', '', '$x']
    const pick = (r: () => number) => local[Math.floor(r() * local.length)]!
    const topicOf = (r: () => number, n: number) => Array.from({ length: n }, () => pick(r)).join('/')
    const r = rng(11)
    let heldByPrefix = 0
    let refused = 0
    for (let round = 0; round < 300; round++) {
      const trie = new SubscriptionTrie()
      const filters = Array.from({ length: 1 + Math.floor(r() * 5) }, () => {
        const levels = Array.from({ length: 1 + Math.floor(r() * 3) }, () => (r() < 0.25 ? '+' : pick(r)))
        if (r() < 0.4) levels[levels.length - 1] = '#'
        return levels.join('/')
      }).filter((f) => topicFilterError(f, limits) === null)
      filters.forEach((f, i) => trie.add(sub(`c${i}`, f)))
      for (let n = 0; n < 60; n++) {
        const routed = topicOf(r, 1 + Math.floor(r() * 4))
        const matches = new RouteMatches()
        matches.reset(undefined)
        const cache = new RouteCache()
        cache.keep(routed, 1, matches, trie.match(routed, matches))
        // Others: random topics, and the routed one cut short or carried on (where a kept prefix is put to the test).
        const levels = routed.split('/')
        const cut = levels.slice(0, 1 + Math.floor(r() * levels.length)).join('/')
        for (const other of [topicOf(r, 1 + Math.floor(r() * 4)), cut, `${cut}/${pick(r)}`, `${cut}${pick(r)}`, `${routed}/${pick(r)}`]) {
          if (topicNameError(other, limits)) continue
          if (!cache.holds(other, 1)) {
            refused++
            continue
          }
          if (other !== routed) heldByPrefix++
          const kept = cache.clients.slice(0, cache.clientCount).map((m) => m.clientId)
          const want = filters.flatMap((f, i) => (referenceMatches(f, other) ? [`c${i}`] : []))
          if (kept.sort().join() !== want.sort().join()) expect(`${filters.join(' ')}: ${routed} -> ${other}: ${kept}`).toBe(`${filters.join(' ')}: ${routed} -> ${other}: ${want}`)
        }
        expect(cache.holds(routed, 2)).toBe(false) // another version of the subscriptions: nothing holds
      }
    }
    // Both ways are taken, many times: routes reused for other topics, and refused.
    expect(heldByPrefix).toBeGreaterThan(1000)
    expect(refused).toBeGreaterThan(1000)
  })

  test('onInterest tells when a filter gains its first ordinary subscription and loses its last; filters() lists them', () => {
    const trie = new SubscriptionTrie()
    const told: string[] = []
    trie.onInterest = (filter, present) => void told.push(`${present ? '+' : '-'}${filter}`)
    trie.add(sub('c1', 'a/+'))
    trie.add(sub('c2', 'a/+')) // a second client: the filter was held already
    trie.add({ ...sub('c1', 'a/+'), qos: 1 }) // a replacement
    trie.add({ ...sub('c3', 'jobs/#'), group: 'g' }) // shared: the cluster serves those through their groups
    trie.add(sub('c3', '#'))
    expect(trie.filters().sort()).toEqual(['#', 'a/+'])
    trie.remove(sub('c1', 'a/+'))
    trie.remove(sub('c2', 'a/+'))
    trie.remove(sub('c3', '#'))
    expect(told).toEqual(['+a/+', '+#', '-a/+', '-#'])
    expect(trie.filters()).toEqual([])
  })

  test('removing subscriptions prunes the trie back to empty', () => {
    const trie = new SubscriptionTrie()
    const subs = ['a/b', 'a/+', 'a/#', '#', '+/+/c'].map((f, i) => sub(`c${i}`, f))
    for (const s of subs) trie.add(s)
    expect(trie.size).toBe(5)
    for (const s of subs) expect(trie.remove(s)).toBe(true)
    expect(trie.remove(subs[0]!)).toBe(false)
    expect(trie.size).toBe(0)
    expect((trie as unknown as { root: { children: Map<string, unknown> } }).root.children.size).toBe(0)
  })

  test('shared groups are reported once per group', () => {
    const trie = new SubscriptionTrie()
    trie.add({ ...sub('a', 'x/+'), group: 'g' })
    trie.add({ ...sub('b', 'x/+'), group: 'g' })
    trie.add({ ...sub('c', 'x/#'), group: 'h' })
    const groups: ShareGroup[] = []
    trie.match('x/y', { subscription: () => {}, group: (g) => groups.push(g) })
    expect(groups.map((g) => g.members.map((m) => m.clientId).join(',')).sort()).toEqual(['a,b', 'c'])
  })
})

describe('retained index', () => {
  const msg = (topic: string): Message => ({ topic, payload: Buffer.from(topic), qos: 0, retain: true, properties: undefined, expiresAt: 0, origin: undefined })

  test('lookup by filter returns what the reference matcher selects, for random filters', () => {
    const r = rng(7)
    const store = new MemoryRetainedStore()
    const topics = new Set<string>()
    for (let i = 0; i < 500; i++) {
      const t = randomTopic(r)
      if (topicNameError(t, limits)) continue
      topics.add(t)
      store.set(t, msg(t))
    }
    expect(store.size).toBe(topics.size)
    for (let n = 0; n < 500; n++) {
      const f = randomFilter(r)
      if (topicFilterError(f, limits)) continue
      const got = store.match(f).map((m) => m.topic).sort()
      const want = [...topics].filter((t) => referenceMatches(f, t)).sort()
      expect(got).toEqual(want)
    }
  })

  test('clearing a topic removes it and prunes empty levels', () => {
    const store = new MemoryRetainedStore()
    store.set('a/b/c', msg('a/b/c'))
    store.set('a', msg('a'))
    store.set('a/b/c', null)
    expect(store.size).toBe(1)
    expect(store.match('a/#').map((m) => m.topic)).toEqual(['a'])
    expect(store.get('a/b/c')).toBeUndefined()
  })
})

describe('topic validation', () => {
  test('[MQTT-4.7.1-1, -2] wildcard placement in filters', () => {
    for (const ok of ['#', '+', 'a/#', '+/+/#', 'a/+/b', '/', '$SYS/#']) expect(topicFilterError(ok, limits)).toBeNull()
    for (const bad of ['a#', 'a/#/b', 'a/b+', '#/a', '', 'a\u0000b']) expect(topicFilterError(bad, limits)).not.toBeNull()
  })
  test('[MQTT-3.3.2-2] topic names carry no wildcards; limits on length and levels', () => {
    expect(topicNameError('a/b', limits)).toBeNull()
    expect(topicNameError('a/+', limits)).not.toBeNull()
    expect(topicNameError('a/#', limits)).not.toBeNull()
    expect(topicNameError('a/b/c', { maxTopicLevels: 2, maxTopicLength: 100 })).toContain('levels')
    expect(topicNameError('abcdef', { maxTopicLevels: 2, maxTopicLength: 5 })).toContain('longer')
  })
  test('limits at their edges: levels of slashes only, length in UTF-8 bytes, U+0000 and empty [MQTT-4.7.3-1, -2]', () => {
    const tight = { maxTopicLevels: 3, maxTopicLength: 6 }
    expect(topicNameError('//', tight)).toBeNull() // 3 levels, all empty
    expect(topicNameError('///', tight)).toContain('levels') // 4
    expect(topicNameError('a/b/c', tight)).toBeNull()
    expect(topicNameError('a/b/c/d', { maxTopicLevels: 3, maxTopicLength: 100 })).toContain('levels')
    expect(topicNameError('aé/b', tight)).toBeNull() // 5 bytes
    expect(topicNameError('ééé', tight)).toBeNull() // 6 bytes in 3 characters
    expect(topicNameError('éééa', tight)).toContain('longer') // 7 bytes in 4 characters
    expect(topicNameError('😀😀', { maxTopicLevels: 3, maxTopicLength: 7 })).toContain('longer') // 8 bytes in 4 UTF-16 units
    expect(topicNameError('a\u0000b', limits)).toContain('U+0000')
    expect(topicNameError('', limits)).toBe('empty topic')
    expect(topicNameError('a+b', limits)).toContain('wildcards')
  })
})

describe('deque', () => {
  test('keeps FIFO order across growth and wrap-around', async () => {
    const { Deque } = await import('../src/delivery/deque.ts')
    const q = new Deque<number>()
    const model: number[] = []
    const r = rng(3)
    for (let i = 0; i < 10_000; i++) {
      if (r() < 0.6) {
        q.push(i)
        model.push(i)
      } else {
        expect(q.shift()).toBe(model.shift())
      }
      expect(q.length).toBe(model.length)
      expect(q.peek()).toBe(model[0])
    }
  })
})
