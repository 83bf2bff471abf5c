/** `$SYS/broker/...` topics, published retained on an interval, named as Mosquitto names them. */
import type { Broker } from './broker.ts'
import { isExpired } from './message.ts'
import { publish } from './publish.ts'

export const VERSION = '0.1.0'

export function sysTopics(broker: Broker): Record<string, string> {
  const { stats } = broker
  return {
    ...(broker.nodeId ? { '$SYS/broker/node': broker.nodeId } : {}),
    '$SYS/broker/version': `midge ${VERSION}`,
    '$SYS/broker/uptime': `${Math.floor((broker.clock.now() - broker.startedAt) / 1000)} seconds`,
    '$SYS/broker/clients/connected': String(broker.connectedCount),
    '$SYS/broker/clients/total': String(broker.sessions.size),
    '$SYS/broker/messages/received': String(stats.messagesReceived),
    '$SYS/broker/messages/sent': String(stats.messagesSent),
    '$SYS/broker/messages/dropped': String(stats.messagesDropped),
    '$SYS/broker/bytes/received': String(stats.bytesReceived),
    '$SYS/broker/bytes/sent': String(stats.bytesSent),
    '$SYS/broker/subscriptions/count': String(broker.subscriptions.size),
    '$SYS/broker/retained messages/count': String(broker.retained.size),
    ...pluginFigures(broker),
  }
}

/** What each plugin reports as metrics (the same figures as `/metrics`): `$SYS/broker/plugins/<plugin>/<name>`. */
function pluginFigures(broker: Broker): Record<string, string> {
  const out: Record<string, string> = {}
  for (const plugin of broker.plugins.plugins) {
    if (!plugin.metrics) continue
    for (const [name, value] of Object.entries(plugin.metrics())) out[`$SYS/broker/plugins/${plugin.name}/${name}`] = String(value)
  }
  return out
}

/** Publishes the $SYS topics now and every `intervalSeconds`; returns a function that stops it. */
export function startSysPublisher(broker: Broker, intervalSeconds: number): () => void {
  if (intervalSeconds === 0) return () => {}
  const publish = () => {
    // A node's figures under $SYS/nodes/<node>/... expire after three intervals: a node that is gone (even by kill -9)
    // drops out of every node's view, and of the $SYS/cluster totals, instead of counting for ever.
    const nodeExpiry = broker.clock.now() + 3 * intervalSeconds * 1000
    for (const [topic, value] of Object.entries(sysTopics(broker))) {
      send(broker, topic, value)
      // In a cluster each node's figures are also published under $SYS/nodes/<node>/..., which every node sees.
      if (broker.nodeId) send(broker, `$SYS/nodes/${broker.nodeId}/${topic.slice('$SYS/broker/'.length)}`, value, nodeExpiry)
    }
    if (broker.nodeId) for (const [topic, value] of Object.entries(clusterTotals(broker))) send(broker, topic, value)
  }
  publish()
  const timer = setInterval(publish, intervalSeconds * 1000)
  timer.unref()
  return () => clearInterval(timer)
}

function send(broker: Broker, topic: string, value: string, expiresAt = 0): void {
  const message = { topic, payload: Buffer.from(value), qos: 0 as const, retain: true, properties: undefined, expiresAt, origin: undefined }
  publish(broker, message, null)
}

/** Counters summed over every live node's latest $SYS/nodes/<node>/... figures: $SYS/cluster/... (and the node count). */
export function clusterTotals(broker: Broker): Record<string, string> {
  const counters = ['clients/connected', 'clients/total', 'messages/received', 'messages/sent', 'messages/dropped', 'bytes/received', 'bytes/sent', 'subscriptions/count']
  const now = broker.clock.now()
  const live = (filter: string) => broker.retained.match(filter).filter((m) => !isExpired(m, now))
  const out: Record<string, string> = { '$SYS/cluster/nodes': String(live('$SYS/nodes/+/node').length) }
  for (const counter of counters) {
    let sum = 0
    for (const m of live(`$SYS/nodes/+/${counter}`)) sum += Number(m.payload.toString()) || 0
    out[`$SYS/cluster/${counter}`] = String(sum)
  }
  return out
}
