/** The broker's list of connections (src/client-list.ts): what a Set did, with removal while iterating. */
import { describe, expect, test } from 'bun:test'
import { ClientList, type Listed } from '../src/client-list.ts'

const item = (name: string) => ({ name, prevInList: null, nextInList: null }) as Listed & { name: string }

describe('ClientList', () => {
  test('adds, counts, deletes once, and iterates in order', () => {
    const list = new ClientList<Listed & { name: string }>()
    const [a, b, c] = [item('a'), item('b'), item('c')]
    expect(list.delete(a)).toBe(false) // never added
    for (const x of [a, b, c]) list.add(x)
    expect([list.size, [...list].map((x) => x.name)]).toEqual([3, ['a', 'b', 'c']])
    expect(list.delete(b)).toBe(true)
    expect(list.delete(b)).toBe(false)
    expect(list.delete(a)).toBe(true) // the head
    expect(list.delete(c)).toBe(true) // the tail
    expect([list.size, [...list]]).toEqual([0, []])
    list.add(item('d'))
    expect([...list].map((x) => x.name)).toEqual(['d'])
  })

  test('iterating while clients are removed (the one iterated, and others) visits each remaining one once', () => {
    const list = new ClientList<Listed & { name: string }>()
    const all = 'abcdefgh'.split('').map(item)
    for (const x of all) list.add(x)
    const seen: string[] = []
    for (const x of list) {
      seen.push(x.name)
      list.delete(x) // as the sweep closes a client it stands on
      if (x.name === 'c') list.delete(all[4]!) // and one further on (e)
      if (x.name === 'f') list.delete(all[5]!) // already gone: nothing
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'f', 'g', 'h'])
    expect(list.size).toBe(0)
  })
})
