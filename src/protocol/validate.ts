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
  if (Buffer.byteLength(topic) > limits.maxTopicLength) return `topic longer than ${limits.maxTopicLength} bytes`
  if (topic.includes('\u0000')) return 'topic contains U+0000' // [MQTT-4.7.3-2]
  return null
}

export function topicNameError(topic: string, limits: TopicLimits): string | null {
  // One pass over the characters (a client publishing to many topics has each checked): levels, wildcards, U+0000,
  // and whether every character is ASCII (then its UTF-8 length is its length).
  let levels = 1
  let ascii = true
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i)
    if (c === 47 /* / */) levels++
    else if (c === 43 /* + */ || c === 35 /* # */) return 'wildcards are not allowed in a topic name' // [MQTT-3.3.2-2]
    else if (c === 0) return 'topic contains U+0000' // [MQTT-4.7.3-2]
    else if (c >= 0x80) ascii = false
  }
  if (topic.length === 0) return 'empty topic' // [MQTT-4.7.3-1]
  if ((ascii ? topic.length : Buffer.byteLength(topic)) > limits.maxTopicLength) return `topic longer than ${limits.maxTopicLength} bytes`
  if (levels > limits.maxTopicLevels) return `more than ${limits.maxTopicLevels} topic levels`
  return null
}

export function topicFilterError(filter: string, limits: TopicLimits): string | null {
  const common = commonTopicError(filter, limits)
  if (common) return common
  const levels = filter.split('/')
  if (levels.length > limits.maxTopicLevels) return `more than ${limits.maxTopicLevels} topic levels`
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
