/**
 * Topic name and filter rules, MQTT 5.0 section 4.7 (same rules in 3.1.1 section 4.7).
 * Each returns an error text or null when valid.
 */
export interface TopicLimits {
  maxTopicLevels: number
  maxTopicLength: number
}

function commonTopicError(topic: string, limits: TopicLimits): string | null {
  if (topic.length === 0) return 'empty topic' // [MQTT-4.7.3-1]
  if (Buffer.byteLength(topic) > limits.maxTopicLength) return tooLong(limits)
  if (topic.includes('\u0000')) return 'topic contains U+0000' // [MQTT-4.7.3-2]
  return null
}

/**
 * `clean`: the topic's bytes are known to be ASCII without '+', '#' or U+0000 (the decoder saw them: codec.ts
 * topicClean), so only the limits are left to check.
 */
export function topicNameError(topic: string, limits: TopicLimits, clean = false): string | null {
  // Native scans rather than a loop over the characters: a client publishing over many topics has each checked,
  // and this is a third of the time. Levels are counted, and UTF-8 measured, only when the limit could be reached.
  if (topic.length === 0) return 'empty topic' // [MQTT-4.7.3-1]
  if (!clean) {
    if (topic.indexOf('+') !== -1 || topic.indexOf('#') !== -1) return 'wildcards are not allowed in a topic name' // [MQTT-3.3.2-2]
    if (topic.indexOf('\u0000') !== -1) return 'topic contains U+0000' // [MQTT-4.7.3-2]
  }
  // A UTF-16 unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is 4).
  if (topic.length * 3 > limits.maxTopicLength && Buffer.byteLength(topic) > limits.maxTopicLength) return tooLong(limits)
  // A topic of n characters has at most n + 1 levels.
  if (topic.length >= limits.maxTopicLevels && levelsOf(topic) > limits.maxTopicLevels) return tooDeep(limits)
  return null
}

/**
 * topicNameError for a topic still in bytes: `length` bytes of `bytes` from `from`, which the decoder found to be
 * ASCII without '+', '#' or U+0000 (codec.ts PublishPacket.topicAt), so only the limits are left to check.
 */
export function topicBytesError(bytes: Uint8Array, from: number, length: number, limits: TopicLimits): string | null {
  if (length === 0) return 'empty topic' // [MQTT-4.7.3-1]
  if (length > limits.maxTopicLength) return tooLong(limits)
  if (length >= limits.maxTopicLevels) {
    let levels = 1
    for (let i = from; i < from + length; i++) if (bytes[i] === 0x2f) levels++
    if (levels > limits.maxTopicLevels) return tooDeep(limits)
  }
  return null
}

const tooLong = (limits: TopicLimits) => `topic longer than ${limits.maxTopicLength} bytes`
const tooDeep = (limits: TopicLimits) => `more than ${limits.maxTopicLevels} topic levels`

function levelsOf(topic: string): number {
  let levels = 1
  for (let at = topic.indexOf('/'); at !== -1; at = topic.indexOf('/', at + 1)) levels++
  return levels
}

export function topicFilterError(filter: string, limits: TopicLimits): string | null {
  const common = commonTopicError(filter, limits)
  if (common) return common
  const levels = filter.split('/')
  if (levels.length > limits.maxTopicLevels) return tooDeep(limits)
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return '"#" must be the last level, alone' // [MQTT-4.7.1-1]
    }
    if (level.includes('+') && level !== '+') return '"+" must occupy a whole level' // [MQTT-4.7.1-2]
  }
  return null
}

export interface SharedFilter {
  group: string
  filter: string
}

/** Parses `$share/{group}/{filter}`; returns null for an ordinary filter, a string on error. MQTT 5.0 section 4.8.2. */
export function parseSharedFilter(filter: string): SharedFilter | string | null {
  if (!filter.startsWith('$share/')) return null
  const slash = filter.indexOf('/', 7)
  if (slash === -1) return 'a shared subscription needs $share/{group}/{filter}' // [MQTT-4.8.2-1]
  const group = filter.slice(7, slash)
  if (group.length === 0 || group.includes('+') || group.includes('#')) return 'invalid share name' // [MQTT-4.8.2-2]
  const inner = filter.slice(slash + 1)
  if (inner.length === 0) return 'a shared subscription needs a topic filter' // [MQTT-4.8.2-1]
  return { group, filter: inner }
}
