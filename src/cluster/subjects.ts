/**
 * MQTT topics as NATS subjects, so that NATS can do the matching between nodes (interest-based routing, issue 20).
 * Each topic level becomes one subject token; `+` becomes `*`; `#` becomes `>` plus a subscription to its parent
 * level (`a/#` matches `a` too, section 4.7.1.2). As in nats-server's own MQTT support, `/` becomes `.`; unlike it,
 * the mapping is total, since these subjects are Midge's own: every valid topic has a subject, and back.
 *
 * - A level's characters that NATS reserves or refuses (`.`, `*`, `>`, whitespace and control characters) and `%`
 *   itself are written `%XX` (their hex code); an empty level, which NATS refuses, is the token `%`.
 * - Topics starting with `$` go under another root than the rest: a filter whose first level is a wildcard is
 *   subscribed under the plain root only, so it never matches a `$` topic [MQTT-4.7.2-1].
 */

/** The root token of ordinary topics, and of topics starting with `$`. */
const PLAIN = 't'
const DOLLAR = 's'

/** The subject of a topic name, under `prefix` (e.g. `midge.<cluster>.m0`). */
export function topicSubject(prefix: string, topic: string): string {
  let subject = `${prefix}.${topic.charCodeAt(0) === 0x24 ? DOLLAR : PLAIN}`
  let from = 0
  for (;;) {
    let to = topic.indexOf('/', from)
    if (to === -1) to = topic.length
    subject += `.${token(topic, from, to)}`
    if (to === topic.length) return subject
    from = to + 1
  }
}

/** The subjects to subscribe to for a topic filter: one, or two for a filter ending in `#` below the first level. */
export function filterSubjects(prefix: string, filter: string): string[] {
  const levels = filter.split('/')
  const first = levels[0]!
  const root = `${prefix}.${first.charCodeAt(0) === 0x24 ? DOLLAR : PLAIN}` // a wildcard first level: the plain root only
  const tokens = levels.map((level) => (level === '+' ? '*' : level === '#' ? '>' : token(level, 0, level.length)))
  const subject = `${root}.${tokens.join('.')}`
  if (levels.length > 1 && levels[levels.length - 1] === '#') return [subject, `${root}.${tokens.slice(0, -1).join('.')}`]
  return [subject]
}

/** The topic name a subject made by topicSubject stands for. */
export function subjectTopic(prefix: string, subject: string): string {
  const tokens = subject.slice(prefix.length + 3).split('.') // past `<prefix>.t.` or `<prefix>.s.`
  return tokens.map((t) => (t === '%' ? '' : t.includes('%') ? t.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))) : t)).join('/')
}

/** One level as a token: reserved characters escaped, an empty level as `%`. */
function token(text: string, from: number, to: number): string {
  if (from === to) return '%'
  let i = from
  while (i < to && !reserved(text.charCodeAt(i))) i++
  if (i === to) return from === 0 && to === text.length ? text : text.slice(from, to)
  let out = text.slice(from, i)
  for (; i < to; i++) {
    const c = text.charCodeAt(i)
    out += reserved(c) ? `%${c.toString(16).toUpperCase().padStart(2, '0')}` : text[i]
  }
  return out
}

/** `%`, `.`, `*`, `>`, space, and control characters: what a subject token cannot hold as is. */
function reserved(c: number): boolean {
  return c <= 0x20 || c === 0x7f || c === 0x25 || c === 0x2e || c === 0x2a || c === 0x3e
}
