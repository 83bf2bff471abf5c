/**
 * MQTT topics as NATS subjects (src/cluster/subjects.ts): NATS must match exactly what MQTT matches (section 4.7),
 * checked against a model of NATS matching on random topics and filters, then on a real nats-server.
 */
import { describe, expect, test } from 'bun:test'
import { connect } from '@nats-io/transport-node'
import { filterSubjects, subjectTopic, topicSubject } from '../src/cluster/subjects.ts'
import { filterMatches } from '../src/topics/trie.ts'
import { natsServerPath, startNats } from './helpers/nats.ts'

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function natsMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.')
  const s = subject.split('.')
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i
    if (i >= s.length) return false
    if (p[i] !== '*' && p[i] !== s[i]) return false
  }
  return p.length === s.length
}

/** A seeded PRNG (mulberry32) so a failure reproduces. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// Levels with everything NATS treats specially: dots, its wildcards, spaces, %, escapes look-alikes, $, non-ASCII.
const words = ['a', 'b', '', '$sys', 'x.y', '*', '>', 'two words', '%', '%2E', 'tab\there', 'ü温', '.', '$']
const pick = <T>(r: () => number, list: T[]) => list[Math.floor(r() * list.length)]!
const randomTopic = (r: () => number) => Array.from({ length: 1 + Math.floor(r() * 4) }, () => pick(r, words)).join('/')
function randomFilter(r: () => number): string {
  const n = 1 + Math.floor(r() * 4)
  const levels = Array.from({ length: n }, () => (r() < 0.25 ? '+' : pick(r, words.filter((w) => w !== '*' && w !== '>'))))
  if (r() < 0.3) levels[n - 1] = '#'
  return levels.join('/')
}
const PREFIX = 'midge.test.m0'

describe('MQTT topics as NATS subjects', () => {
  test('(section 4.7) a filter\'s subjects match a topic\'s subject exactly when the filter matches the topic, on 100,000 random pairs', () => {
    const r = rng(11)
    for (let n = 0; n < 100_000; n++) {
      const f = randomFilter(r)
      const t = randomTopic(r)
      const nats = filterSubjects(PREFIX, f).some((s) => natsMatches(s, topicSubject(PREFIX, t)))
      if (nats !== filterMatches(f, t)) expect(`${JSON.stringify(f)} vs ${JSON.stringify(t)}: ${nats}`).toBe(`${JSON.stringify(f)} vs ${JSON.stringify(t)}: ${filterMatches(f, t)}`)
    }
  })

  test('every subject is valid for NATS (no empty token, no space, no wildcard in a topic) and gives its topic back', () => {
    const r = rng(12)
    for (let n = 0; n < 20_000; n++) {
      const t = randomTopic(r)
      const subject = topicSubject(PREFIX, t)
      for (const token of subject.split('.')) expect(token.length > 0 && !/[\s*>]/.test(token)).toBe(true)
      expect(subjectTopic(PREFIX, subject)).toBe(t)
    }
    expect(topicSubject(PREFIX, 'sensors/x.y/ /')).toBe(`${PREFIX}.t.sensors.x%2Ey.%20.%`)
    expect(filterSubjects(PREFIX, 'a/#')).toEqual([`${PREFIX}.t.a.>`, `${PREFIX}.t.a`]) // a/# also matches a [MQTT-4.7.1-1]
    expect(filterSubjects(PREFIX, '#')).toEqual([`${PREFIX}.t.>`]) // never a $ topic [MQTT-4.7.2-1]
    expect(filterSubjects(PREFIX, '$SYS/#')).toEqual([`${PREFIX}.s.$SYS.>`, `${PREFIX}.s.$SYS`])
  })

  test.skipIf(!natsServerPath)('a real nats-server delivers each topic to exactly the filters that match it', async () => {
    const server = await startNats()
    const nc = await connect({ servers: server.url })
    try {
      const filters = ['#', '+', 'a/#', 'a/+', '+/b', 'x.y/#', '$SYS/#', '+/+/+', 'two words/+', '/#', 'a//b']
      const topics = ['a', 'a/b', 'a//b', 'x.y/z', '$SYS/broker', 'two words/ok', '/lead', 'a/b/', 'ü温/b', '%/b']
      const got = new Map<string, Set<string>>(filters.map((f) => [f, new Set()]))
      for (const f of filters) for (const s of filterSubjects(PREFIX, f)) nc.subscribe(s, { callback: (_e, m) => void got.get(f)!.add(subjectTopic(PREFIX, m.subject)) })
      await nc.flush()
      for (const t of topics) nc.publish(topicSubject(PREFIX, t), t)
      await nc.flush() // every publish is back through the server to our subscriptions by now
      for (const f of filters) expect([...got.get(f)!].sort()).toEqual(topics.filter((t) => filterMatches(f, t)).sort())
    } finally {
      await nc.close()
      await server.close()
    }
  })
})
