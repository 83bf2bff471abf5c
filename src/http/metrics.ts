/** GET /metrics in the Prometheus text format, and the event-loop lag it reports. */
import type { BrokerView } from './view.ts'

/** Measures how late a 100 ms timer fires: the event loop's lag. */
export function startLagMonitor(): { lagSeconds(): number; stop(): void } {
  const interval = 100
  let expected = performance.now() + interval
  let lag = 0
  const timer = setInterval(() => {
    const now = performance.now()
    lag = Math.max(0, now - expected) / 1000
    expected = now + interval
  }, interval)
  timer.unref()
  return { lagSeconds: () => lag, stop: () => clearInterval(timer) }
}

/** Several nodes' /metrics as one: each sample labelled with its node, each family's HELP and TYPE once. */
export function mergeMetrics(answers: ReadonlyArray<{ node: string; data: unknown }>): string {
  const families = new Map<string, { head: string[]; samples: string[] }>()
  for (const { node, data } of answers) {
    if (typeof data !== 'string') continue
    let family: { head: string[]; samples: string[] } | undefined
    for (const line of data.split('\n')) {
      if (line === '') continue
      if (line.startsWith('# ')) {
        const name = line.split(' ')[2]!
        family = families.get(name)
        if (!family) families.set(name, (family = { head: [], samples: [] }))
        if (family.head.length < 2) family.head.push(line)
        continue
      }
      const brace = line.indexOf('{')
      const space = line.indexOf(' ')
      const label = `node="${node.replace(/["\\]/g, '_')}"`
      const labelled = brace !== -1 && brace < space ? `${line.slice(0, brace + 1)}${label},${line.slice(brace + 1)}` : `${line.slice(0, space)}{${label}}${line.slice(space)}`
      family?.samples.push(labelled)
    }
  }
  return [...families.values()].flatMap((f) => [...f.head, ...f.samples]).join('\n') + '\n'
}

export function prometheus(view: BrokerView, lagSeconds: number): string {
  const s = view.stats()
  const g = view.gauges()
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge', help: string, samples: Array<[string, number]>) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
  }
  const byQoS = (values: readonly number[]): Array<[string, number]> => values.map((v, qos) => [`{qos="${qos}"}`, v])
  metric('midge_connections', 'gauge', 'Clients connected now.', [['', s.clientsConnected]])
  metric('midge_sessions', 'gauge', 'Sessions held (connected and persistent offline).', [['', s.sessions]])
  metric('midge_messages_received_total', 'counter', 'PUBLISH packets received, by QoS.', byQoS(g.receivedByQoS))
  metric('midge_messages_sent_total', 'counter', 'PUBLISH packets sent, by QoS.', byQoS(g.sentByQoS))
  metric('midge_messages_dropped_total', 'counter', 'Messages not delivered to a client (buffer or queue full, too large, expired).', [['', s.messagesDropped]])
  metric('midge_rate_limited_total', 'counter', 'Times a client went over its inbound rate limit (reading paused, or disconnected).', [['', s.rateLimited]])
  metric('midge_payload_refused_total', 'counter', 'PUBLISHes refused for a payload over the limit.', [['', s.payloadRefused]])
  metric('midge_bytes_received_total', 'counter', 'Bytes read from clients.', [['', s.bytesReceived]])
  metric('midge_bytes_sent_total', 'counter', 'Bytes written to clients.', [['', s.bytesSent]])
  metric('midge_retained_messages', 'gauge', 'Retained messages held.', [['', s.retained]])
  metric('midge_subscriptions', 'gauge', 'Subscriptions held.', [['', s.subscriptions]])
  metric('midge_queued_messages', 'gauge', 'Messages waiting in session queues.', [['', g.queued]])
  metric('midge_inflight_messages', 'gauge', 'QoS 1/2 messages sent and not yet acknowledged.', [['', g.inflight]])
  metric('midge_event_loop_lag_seconds', 'gauge', 'How late a 100 ms timer last fired.', [['', lagSeconds]])
  metric('midge_uptime_seconds', 'gauge', 'Seconds since the broker started.', [['', s.uptimeSeconds]])
  for (const [plugin, values] of g.plugins) {
    for (const [key, value] of Object.entries(values)) {
      const name = `midge_plugin_${plugin}_${key}`.replace(/[^a-zA-Z0-9_]/g, '_').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase()
      metric(name, 'gauge', `Reported by the ${plugin} plugin.`, [['', value]])
    }
  }
  return lines.join('\n') + '\n'
}
