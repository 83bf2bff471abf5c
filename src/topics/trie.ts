/**
 * The subscription trie: one node per topic level; a node's `+` and `#` children are fields of their own.
 * A topic is split once and the trie walked iteratively; each matching node's subscriptions are
 * handed to the caller, who merges them per client.
 */
import type { QoS } from '../protocol/codec.ts'

export interface Subscription {
  clientId: string
  /** The topic filter, without any `$share/{group}/` prefix. */
  filter: string
  qos: QoS
  noLocal: boolean
  retainAsPublished: boolean
  retainHandling: 0 | 1 | 2
  /** MQTT 5 subscription identifier, 0 when none. */
  identifier: number
  /** Share name of a `$share/{group}/...` subscription, else undefined. */
  group: string | undefined
}

/** Members of one shared subscription group on one filter, chosen round-robin. */
export class ShareGroup {
  readonly members: Subscription[] = []
  next = 0
}

class TrieNode {
  /** Children by exact level; the `+` and `#` children are fields of their own, so the walk reads them without a lookup. */
  readonly children = new Map<string, TrieNode>()
  plus: TrieNode | null = null
  hash: TrieNode | null = null
  subscriptions: Map<string, Subscription> | null = null
  groups: Map<string, ShareGroup> | null = null
  /** The exact child while there is only one (most levels under a prefix have one): the walk compares, no lookup. */
  only: TrieNode | null = null
  constructor(readonly parent: TrieNode | null, readonly level: string) {}

  child(level: string): TrieNode | undefined {
    if (level === '+') return this.plus ?? undefined
    if (level === '#') return this.hash ?? undefined
    return this.children.get(level)
  }

  addChild(level: string): TrieNode {
    const child = new TrieNode(this, level)
    if (level === '+') this.plus = child
    else if (level === '#') this.hash = child
    else {
      this.children.set(level, child)
      this.only = this.children.size === 1 ? child : null
    }
    return child
  }

  removeChild(level: string): void {
    if (level === '+') this.plus = null
    else if (level === '#') this.hash = null
    else {
      this.children.delete(level)
      this.only = this.children.size === 1 ? this.children.values().next().value! : null
    }
  }

  get empty(): boolean {
    return this.children.size === 0 && !this.plus && !this.hash && !this.subscriptions?.size && !this.groups?.size
  }
}

export interface MatchVisitor {
  subscription(sub: Subscription): void
  group(group: ShareGroup): void
}

export class SubscriptionTrie {
  private readonly root = new TrieNode(null, '')
  private count = 0
  /** Changes whenever a subscription is added, replaced or removed: what any topic matches may have changed. */
  version = 0
  /**
   * Told when a filter gains its first ordinary (not shared) subscription, and when it loses its last: the
   * filters this broker has interest in, each once (the cluster subscribes to them on NATS).
   */
  onInterest: ((filter: string, present: boolean) => void) | null = null

  /** Number of subscriptions held (shared ones included). */
  get size(): number {
    return this.count
  }

  /** Adds or replaces the client's subscription on `sub.filter`. */
  add(sub: Subscription): void {
    this.version++
    let node = this.root
    for (const level of sub.filter.split('/')) node = node.child(level) ?? node.addChild(level)
    if (sub.group === undefined) {
      node.subscriptions ??= new Map()
      if (!node.subscriptions.has(sub.clientId)) this.count++
      node.subscriptions.set(sub.clientId, sub)
      if (node.subscriptions.size === 1 && this.onInterest) this.onInterest(sub.filter, true)
      return
    }
    node.groups ??= new Map()
    let group = node.groups.get(sub.group)
    if (!group) {
      group = new ShareGroup()
      node.groups.set(sub.group, group)
    }
    const at = group.members.findIndex((m) => m.clientId === sub.clientId)
    if (at === -1) {
      group.members.push(sub)
      this.count++
    } else group.members[at] = sub
  }

  /** Removes the client's subscription; returns whether there was one. */
  remove(sub: Pick<Subscription, 'filter' | 'clientId' | 'group'>): boolean {
    const { clientId, group } = sub
    let node: TrieNode | undefined = this.root
    for (const level of sub.filter.split('/')) {
      node = node.child(level)
      if (!node) return false
    }
    let removed = false
    if (group === undefined) {
      removed = node.subscriptions?.delete(clientId) ?? false
      if (removed && node.subscriptions!.size === 0 && this.onInterest) this.onInterest(sub.filter, false)
    } else {
      const g = node.groups?.get(group)
      const at = g ? g.members.findIndex((m) => m.clientId === clientId) : -1
      if (g && at !== -1) {
        g.members.splice(at, 1)
        if (g.next > at) g.next--
        if (g.members.length === 0) node.groups!.delete(group)
        removed = true
      }
    }
    if (!removed) return false
    this.version++
    this.count--
    // Prune empty branches so churn does not grow the trie.
    while (node.parent && node.empty) {
      node.parent.removeChild(node.level)
      node = node.parent
    }
    return true
  }

  /** Every filter with at least one ordinary (not shared) subscription. */
  filters(): string[] {
    const out: string[] = []
    const visit = (node: TrieNode, path: string | null) => {
      if (node.subscriptions?.size) out.push(path!)
      const join = (level: string) => (path === null ? level : `${path}/${level}`)
      for (const [level, child] of node.children) visit(child, join(level))
      if (node.plus) visit(node.plus, join('+'))
      if (node.hash) visit(node.hash, join('#'))
    }
    visit(this.root, null)
    return out
  }

  /** The share group `name` on exactly `filter`, if it has members. */
  group(filter: string, name: string): ShareGroup | undefined {
    let node: TrieNode | undefined = this.root
    for (const level of filter.split('/')) {
      node = node.child(level)
      if (!node) return undefined
    }
    return node.groups?.get(name)
  }

  /**
   * Calls the visitor for every subscription and share group whose filter matches `topic`. Returns how much of the
   * topic decided the matches (see walk): every topic with the same levels up to that index has the same ones.
   */
  match(topic: string, visitor: MatchVisitor): number {
    // The frontier is kept in one array reused from call to call (a new one only if a visitor matches again meanwhile).
    const frontier = this.frontier ?? []
    this.frontier = null
    try {
      return this.walk(topic, visitor, frontier)
    } finally {
      this.frontier = frontier
    }
  }

  private frontier: TrieNode[] | null = []

  /**
   * Level by level: the frontier's nodes for this level sit at [start, end) of `nodes`, and the next level's are
   * appended after them (entries are overwritten, never cleared: setting an array's length costs more than a walk).
   *
   * Returns where the matches were decided. When the frontier runs out at some level, no filter reaches past it:
   * what follows that level cannot change the matches, so the end of the level is returned (a topic under
   * `fleet/#` is decided by its first two levels, whatever device follows). When the topic runs out first, the
   * last nodes' own subscriptions match it, and a longer topic would go on to their children: -1, the whole topic.
   */
  private walk(topic: string, visitor: MatchVisitor, nodes: TrieNode[]): number {
    const dollar = topic.charCodeAt(0) === 36 /* $ */
    const root = this.root
    // The first level, from the root alone (most walks end within a level or two).
    let to = topic.indexOf('/')
    if (to === -1) to = topic.length
    let count = 0
    if (!dollar) {
      // [MQTT-4.7.2-1] wildcards in the first level never match a topic starting with `$`.
      if (root.hash) visit(root.hash, visitor)
      if (root.plus) nodes[count++] = root.plus
    }
    let exact = root.only
    if (exact) {
      if (!sameLevel(exact.level, topic, 0, to)) exact = null
    } else if (root.children.size > 0) exact = root.children.get(topic.slice(0, to)) ?? null
    if (exact) nodes[count++] = exact
    let start = 0
    let end = count
    while (start < end && to < topic.length) {
      const from = to + 1
      to = topic.indexOf('/', from)
      if (to === -1) to = topic.length
      let level: string | null = null
      for (let i = start; i < end; i++) {
        const node = nodes[i]!
        if (node.hash) visit(node.hash, visitor)
        if (node.plus) nodes[count++] = node.plus
        const only = node.only
        if (only) {
          if (sameLevel(only.level, topic, from, to)) nodes[count++] = only
        } else if (node.children.size > 0) {
          const child = node.children.get((level ??= topic.slice(from, to)))
          if (child) nodes[count++] = child
        }
      }
      start = end
      end = count
    }
    // The frontier ran out at the level ending at `to`, or else the topic ran out first and the last nodes match it.
    const decidedAt = start === end ? to : -1
    for (let i = start; i < end; i++) {
      const node = nodes[i]!
      visit(node, visitor)
      // "sport/#" also matches "sport" (section 4.7.1.2)
      if (node.hash) visit(node.hash, visitor)
    }
    // Let go of the nodes walked: a node removed meanwhile is not pinned.
    for (let i = 0; i < count; i++) nodes[i] = undefined!
    return decidedAt
  }
}

/** Whether `level` is the topic's characters from `from` to `to`. */
function sameLevel(level: string, topic: string, from: number, to: number): boolean {
  if (level.length !== to - from) return false
  for (let i = 0; i < level.length; i++) if (level.charCodeAt(i) !== topic.charCodeAt(from + i)) return false
  return true
}

function visit(node: TrieNode, visitor: MatchVisitor): void {
  // for-of rather than forEach: JSC's optimizing tiers drop the iterator object, and a Map of one subscription is
  // gone through in ~8 ns against forEach's ~22 (forEach calls back across the builtin for each entry).
  const subscriptions = node.subscriptions
  if (subscriptions !== null) for (const sub of subscriptions.values()) visitor.subscription(sub)
  const groups = node.groups
  if (groups !== null) for (const group of groups.values()) visitor.group(group)
}

/**
 * Whether `topic` matches `filter` (`+` one level, `#` the rest, the parent level included; no leading wildcard
 * matches a `$` topic [MQTT-4.7.2-1]). Walks both strings in place: no arrays, no substrings (ACLs and the
 * cluster ask this for every message).
 */
export function filterMatches(filter: string, topic: string): boolean {
  const fl = filter.length
  const tl = topic.length
  if (tl > 0 && topic.charCodeAt(0) === DOLLAR) {
    const first = filter.charCodeAt(0)
    if ((first === PLUS || first === HASH) && (fl === 1 || filter.charCodeAt(1) === SLASH)) return false
  }
  let f = 0 // start of the filter's level
  let t = 0 // start of the topic's level; past its end once the topic has no level left
  for (;;) {
    let fe = filter.indexOf('/', f)
    if (fe === -1) fe = fl
    if (fe - f === 1 && filter.charCodeAt(f) === HASH) return true
    if (t > tl) return false
    let te = topic.indexOf('/', t)
    if (te === -1) te = tl
    if (!(fe - f === 1 && filter.charCodeAt(f) === PLUS)) {
      if (fe - f !== te - t) return false
      for (let i = 0; i < fe - f; i++) if (filter.charCodeAt(f + i) !== topic.charCodeAt(t + i)) return false
    }
    if (fe === fl) return te === tl
    f = fe + 1
    t = te + 1
  }
}

/**
 * Whether `topic` has the same levels as `other` up to `end`, the end of one of `other`'s levels: the same first
 * `end` characters, then the topic ends or a level does. (Where a route or an ACL answer decided by those levels
 * holds for another topic: RouteCache, the auth plugin.)
 */
export function sameLevelsUpTo(other: string, end: number, topic: string): boolean {
  if (topic.length < end || (topic.length > end && topic.charCodeAt(end) !== SLASH)) return false
  for (let i = 0; i < end; i++) if (topic.charCodeAt(i) !== other.charCodeAt(i)) return false
  return true
}

/**
 * sameLevelsUpTo for a topic still in bytes: `length` ASCII bytes of `bytes` from `from` (LazyTopicMessage). An `end`
 * of -1 asks for the whole of `other`: the same topic.
 */
export function sameLevelsInBytes(other: string, end: number, bytes: Uint8Array, from: number, length: number): boolean {
  if (end < 0) {
    if (length !== other.length) return false
    end = length
  } else if (length < end || (length > end && bytes[from + end] !== SLASH)) {
    return false
  }
  for (let i = 0; i < end; i++) if (bytes[from + i] !== other.charCodeAt(i)) return false
  return true
}

const DOLLAR = 0x24
const PLUS = 0x2b
const HASH = 0x23
const SLASH = 0x2f

/** The key a session files a subscription under: the filter as the client sent it. */
export function subscriptionKey(sub: Pick<Subscription, 'filter' | 'group'>): string {
  return sub.group === undefined ? sub.filter : `$share/${sub.group}/${sub.filter}`
}
