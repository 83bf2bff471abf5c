/**
 * SUBSCRIBE: validate each filter, ask the plugins, add or replace the subscription [MQTT-3.8.4-3],
 * answer SUBACK with one code per filter in order [MQTT-3.8.4-6], then send matching retained messages
 * as Retain Handling asks.
 */
import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import { decide, type Verdict } from '../plugin.ts'
import type { QoS, SubscribePacket } from '../protocol/codec.ts'
import { Reason, refusalCode } from '../protocol/reason.ts'
import { parseSharedFilter, topicFilterError } from '../protocol/validate.ts'
import type { Session } from '../session.ts'
import { maySubscribe } from '../topics/acl.ts'
import { type Subscription, subscriptionKey } from '../topics/trie.ts'

export function handleSubscribe(client: Client, packet: SubscribePacket): void | Promise<void> {
  const broker = client.broker
  const v5 = client.version === 5
  const messageId = packet.messageId! // 1..65535 (check.ts)
  if (packet.subscriptions.length === 0) throw new MqttError(Reason.ProtocolError, 'SUBSCRIBE without topic filters') // [MQTT-3.8.3-2]
  const identifier = packet.properties?.subscriptionIdentifier ?? 0
  if (v5 && packet.properties?.subscriptionIdentifier === 0) {
    throw new MqttError(Reason.ProtocolError, 'subscription identifier 0') // MQTT 5.0 section 3.8.2.1.2
  }

  // Each requested filter becomes a subscription, or the SUBACK code that refuses it.
  const invalid = v5 ? Reason.TopicFilterInvalid : 0x80
  const requests: Array<Subscription | number> = packet.subscriptions.map((request) => {
    const shared = parseSharedFilter(request.topic)
    if (typeof shared === 'string') return invalid
    const filter = shared ? shared.filter : request.topic
    if (topicFilterError(filter, broker.limits)) return invalid
    if (shared && request.nl) throw new MqttError(Reason.ProtocolError, 'no local on a shared subscription') // [MQTT-3.8.3-4]
    const acl = client.granted?.acl
    if (acl && !maySubscribe(acl, filter)) return v5 ? Reason.NotAuthorized : 0x80 // the access granted at connect does not cover it
    return {
      clientId: client.clientId,
      filter,
      qos: request.qos as QoS,
      // A bridge's own subscriptions: no local and retain as published (see Client.bridge); not on a shared one [MQTT-3.8.3-4].
      noLocal: (v5 && request.nl === true) || (client.bridge && !shared),
      retainAsPublished: (v5 && request.rap === true) || client.bridge,
      retainHandling: v5 ? ((request.rh ?? 0) as 0 | 1 | 2) : 0,
      identifier,
      group: shared ? shared.group : undefined,
    }
  })

  const hooks = broker.plugins.authorizeSubscribe
  if (hooks.length === 0) return complete(client, messageId, requests, undefined)
  const verdicts = requests.map((r) => (typeof r === 'number' ? undefined : decide(hooks, client.info, { filter: r.filter, group: r.group, qos: r.qos }, broker.plugins.decisionError.authorizeSubscribe)))
  if (verdicts.some((v) => v instanceof Promise)) {
    return Promise.all(verdicts).then((settled) => complete(client, messageId, requests, settled))
  }
  complete(client, messageId, requests, verdicts as Array<Verdict | undefined>)
}

function complete(client: Client, messageId: number, requests: Array<Subscription | number>, verdicts: Array<Verdict | undefined> | undefined): void | Promise<void> {
  if (client.state !== 'connected') return
  const broker = client.broker
  const session = client.session!
  const granted: number[] = []
  const retainedFor: Subscription[] = []
  requests.forEach((sub, i) => {
    if (typeof sub === 'number') return granted.push(sub)
    const verdict = verdicts?.[i]
    if (verdict && !verdict.allowed) {
      broker.logger.debug('subscribe.denied', { clientId: client.clientId, filter: subscriptionKey(sub) })
      return granted.push(client.version === 5 ? refusalCode('suback', verdict.reasonCode, Reason.NotAuthorized) : 0x80)
    }
    if (session.subscriptions.size >= (client.granted?.maxSubscriptions ?? broker.limits.maxSubscriptionsPerClient) && !session.subscriptions.has(subscriptionKey(sub))) {
      return granted.push(client.version === 5 ? Reason.QuotaExceeded : 0x80)
    }
    const existed = broker.subscribe(session, sub)
    granted.push(sub.qos)
    // [MQTT-3.3.1-9..11] retained: rh 0 always, rh 1 for a new subscription, rh 2 never; never to a shared subscription.
    if (sub.group === undefined && (sub.retainHandling === 0 || (sub.retainHandling === 1 && !existed))) retainedFor.push(sub)
  })
  // SUBACK once the plugins have what the subscriptions changed: a persistent session's store, and in a cluster the
  // subscription on NATS, so that a message published anywhere after SUBACK reaches it. (A store that fails to write
  // is reported by the store; the subscription works in memory all the same.)
  const ready = broker.plugins.flushed()
  if (!ready) return acknowledge(client, session, messageId, granted, retainedFor)
  const acknowledged = () => acknowledge(client, session, messageId, granted, retainedFor)
  return ready.then(acknowledged, acknowledged)
}

function acknowledge(client: Client, session: Session, messageId: number, granted: number[], retainedFor: Subscription[]): void {
  if (client.state !== 'connected') return
  client.send({ cmd: 'suback', messageId, granted })
  for (const sub of retainedFor) client.broker.sendRetained(session, sub)
}
