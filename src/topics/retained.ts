/**
 * Retained messages, indexed as a trie of topic levels and walked by the subscriber's filter,
 * so a lookup touches only matching branches, never every retained message.
 */
import type { Message } from '../message.ts'

/**
 * The retained-message store. The broker keeps memory as the truth; a persistent store
 * (the SQLite plugin) mirrors writes behind it and loads them at start-up.
 */
export interface RetainedStore {
  /** Stores a retained message, or clears the topic when `message` is null. */
  set(topic: string, message: Message | null): void
  get(topic: string): Message | undefined
  /** Every retained message whose topic matches `filter`. */
  match(filter: string): Message[]
  readonly size: number
}

class Node {
  readonly children = new Map<string, Node>()
  message: Message | undefined = undefined
  constructor(readonly parent: Node | null, readonly level: string) {}
}

export class MemoryRetainedStore implements RetainedStore {
  private readonly root = new Node(null, '')
  private count = 0

  get size(): number {
    return this.count
  }

  set(topic: string, message: Message | null): void {
    if (message === null) return this.clear(topic)
    let node = this.root
    for (const level of topic.split('/')) {
      let child = node.children.get(level)
      if (!child) {
        child = new Node(node, level)
        node.children.set(level, child)
      }
      node = child
    }
    if (!node.message) this.count++
    node.message = message
  }

  get(topic: string): Message | undefined {
    let node: Node | undefined = this.root
    for (const level of topic.split('/')) {
      node = node.children.get(level)
      if (!node) return undefined
    }
    return node.message
  }

  match(filter: string): Message[] {
    const out: Message[] = []
    const levels = filter.split('/')
    // Each entry: a node reached after consuming `depth` levels of the filter.
    const stack: Array<[Node, number]> = [[this.root, 0]]
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!
      if (depth === levels.length) {
        if (node.message) out.push(node.message)
        continue
      }
      const level = levels[depth]!
      const atRoot = depth === 0
      if (level === '#') {
        // "a/#" includes "a" itself (section 4.7.1.2)
        if (node.message && !atRoot) out.push(node.message)
        collect(node, out, atRoot)
      } else if (level === '+') {
        for (const child of node.children.values()) {
          if (atRoot && child.level.startsWith('$')) continue // [MQTT-4.7.2-1]
          stack.push([child, depth + 1])
        }
      } else {
        const child = node.children.get(level)
        if (child) stack.push([child, depth + 1])
      }
    }
    return out
  }

  private clear(topic: string): void {
    let node: Node | undefined = this.root
    for (const level of topic.split('/')) {
      node = node.children.get(level)
      if (!node) return
    }
    if (!node.message) return
    node.message = undefined
    this.count--
    while (node.parent && !node.message && node.children.size === 0) {
      node.parent.children.delete(node.level)
      node = node.parent
    }
  }
}

/** All messages below `node` (not `node` itself); at the root, `$` topics are skipped. */
function collect(node: Node, out: Message[], skipDollar: boolean): void {
  const stack: Node[] = []
  for (const child of node.children.values()) if (!(skipDollar && child.level.startsWith('$'))) stack.push(child)
  while (stack.length > 0) {
    const n = stack.pop()!
    if (n.message) out.push(n.message)
    for (const child of n.children.values()) stack.push(child)
  }
}
