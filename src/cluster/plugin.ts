/**
 * The cluster, as the broker sees it: a built-in plugin. Loading NATS waits until `start`, so a broker
 * without a `cluster` section never loads it. The work is in ./nats.ts.
 */
import type { ClusterConfig } from '../config.ts'
import type { Message } from '../message.ts'
import type { Plugin } from '../plugin.ts'
import { Reason } from '../protocol/reason.ts'
import type { ClusterQuestion, LocalAnswers, NodeAnswer } from './api.ts'
import type { ClusterHost, NatsFabric } from './nats.ts'

/**
 * The cluster plugin; a way to wait until this node's subscriptions, consumers and writes are in place in NATS; and
 * every node's answer to a question of the HTTP API (null while this node is not in the cluster).
 */
export type ClusterPlugin = Plugin & {
  settled(): Promise<void>
  gather(what: ClusterQuestion, data?: unknown): Promise<NodeAnswer[] | null>
}

export function clusterPlugin(broker: () => ClusterHost, config: ClusterConfig, answers: LocalAnswers): ClusterPlugin {
  let fabric: NatsFabric | null = null
  return {
    name: 'cluster',
    async start(ctx) {
      const { NatsFabric } = await import('./nats.ts')
      fabric = await NatsFabric.connect(broker(), config, ctx.logger, answers)
    },
    async stop() {
      await fabric?.close()
      fabric = null
    },
    // Memory answers lookups; the cluster's KV bucket is the shared, durable copy loaded at start.
    retainedStore: {
      load: () => fabric?.retained.load() ?? [],
      set: (topic, message) => fabric?.retained.store(topic, message),
      flushed: () => fabric?.flushed() ?? null,
    },
    authorizePublish(_client, message) {
      // A node cut off from NATS cannot deliver QoS 1/2 to the other nodes: it says so rather than accept it.
      if (message.qos > 0 && fabric && !fabric.connected) return { decision: 'deny', reasonCode: Reason.UnspecifiedError, reasonString: 'the cluster (NATS) is unavailable' }
      return 'abstain'
    },
    onPublish(message) {
      // The broker's own plugin is told the routed message itself, with the flag that it came from another node.
      if (!(message as Message).remote) fabric?.forward(message)
    },
    onConnect(client) {
      fabric?.sessions.announceConnect(client.clientId)
      fabric?.sessions.save(client.clientId)
    },
    onDisconnect(client) {
      fabric?.sessions.save(client.clientId) // still here only if persistent: served up to now
    },
    onSubscribe(client, subscription) {
      if (subscription.group !== undefined) fabric?.joinGroup(subscription.group, subscription.filter)
      fabric?.sessions.save(client.clientId)
    },
    onUnsubscribe(client) {
      fabric?.sessions.save(client.clientId)
    },
    onSessionEnd(clientId) {
      fabric?.sessions.drop(clientId)
    },
    fetchSession: (clientId) => fabric?.sessions.fetch(clientId) ?? Promise.resolve(null),
    flushed: () => fabric?.flushed() ?? null,
    metrics: () => fabric?.metrics() ?? {},
    settled: () => fabric?.settled() ?? Promise.resolve(),
    gather: (what, data) => (fabric?.connected ? fabric.api.gather(what, data) : Promise.resolve(null)),
  }
}
