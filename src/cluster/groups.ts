/**
 * Share groups across nodes. A node with a member of `$share/{group}/{filter}` joins the group's NATS queue group on
 * the filter's QoS 0 subjects (one node per message, at most once) and pulls from the group's durable JetStream consumers
 * (one per subject of the filter) for QoS 1/2 (one node per message, acknowledged only once delivered to a member here, so a node that dies or has no
 * member left lets JetStream give the message to another: at least once).
 */
import { createHash } from 'node:crypto'
import type { NatsConnection } from '@nats-io/transport-node'
import { AckPolicy, type ConsumerMessages, DeliverPolicy, type JetStreamClient, jetstreamManager } from '@nats-io/jetstream'
import type { Logger } from '../logger.ts'
import type { Message } from '../message.ts'
import { filterMatches } from '../topics/trie.ts'
import { filterSubjects } from './subjects.ts'
import { eachFrame, frameMessage } from './wire.ts'

/** Delivers a message to one member of a share group on this node; false when the group has none here. */
export type DeliverShared = (message: Message, group: string, filter: string) => boolean

export class ShareGroups {
  /** The groups with members on this node (queue subscription and JetStream consumer), by queue name. */
  private readonly joined = new Map<string, { stop: Array<() => void> }>()
  /** Joins whose JetStream consumer is not consuming yet. */
  private readonly joining = new Set<Promise<void>>()

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly stream: string,
    private readonly prefix: string,
    private readonly deliverShared: DeliverShared,
    private readonly logger: Logger,
  ) {}

  /** A member of this group is on this node: take part in the group's cluster-wide delivery (once per group). */
  join(group: string, filter: string): void {
    const queue = Buffer.from(`${group}\n${filter}`).toString('base64url')
    if (this.joined.has(queue)) return
    // QoS 0: a queue subscription on the filter's subjects (a topic matches only one of them: no second copy).
    const subs = filterSubjects(`${this.prefix}.m0`, filter).map((subject) =>
      this.nc.subscribe(subject, {
        queue,
        callback: (error, msg) => {
          if (!error) this.receive(queue, group, filter, msg.data)
        },
      }),
    )
    const entry = { stop: subs.map((sub) => () => sub.unsubscribe()) }
    this.joined.set(queue, entry)
    // QoS 1/2: a durable consumer per subject of the filter (nats-server 2.9 takes one filter subject per consumer).
    for (const subject of filterSubjects(`${this.prefix}.m1`, filter)) {
      const consuming = this.consume(queue, subject, entry)
      const ready = consuming.then(
        () => void this.joining.delete(ready),
        () => void this.joining.delete(ready),
      )
      this.joining.add(ready)
      consuming
        .then((messages) => this.deliver(messages, queue, group, filter))
        .catch((error: Error) => this.logger.error('cluster.share_consumer_failed', { group, filter, error: error.message }))
    }
  }

  /** Resolves once every group joined so far consumes from its JetStream consumer. */
  async settled(): Promise<void> {
    while (this.joining.size > 0) await Promise.race(this.joining)
  }

  /** Leaves every group (the node is closing). */
  leaveAll(): void {
    for (const queue of [...this.joined.keys()]) this.leave(queue)
  }

  /** Makes (or finds) the group's durable consumer of one subject and starts consuming from it. */
  private async consume(queue: string, subject: string, entry: { stop: Array<() => void> }): Promise<ConsumerMessages> {
    const durable = `share_${createHash('sha256').update(`${queue}\n${subject}`).digest('hex').slice(0, 24)}`
    const jsm = await jetstreamManager(this.nc)
    try {
      await jsm.consumers.info(this.stream, durable)
    } catch {
      await jsm.consumers.add(this.stream, { durable_name: durable, filter_subject: subject, deliver_policy: DeliverPolicy.New, ack_policy: AckPolicy.Explicit, ack_wait: 10 * 1e9, inactive_threshold: 60 * 1e9 }) // gone a minute after the last member leaves
    }
    const consumer = await this.js.consumers.get(this.stream, durable)
    const messages = await consumer.consume()
    entry.stop.push(() => messages.stop())
    return messages
  }

  private async deliver(messages: ConsumerMessages, queue: string, group: string, filter: string): Promise<void> {
    for await (const m of messages) {
      const message = frameMessage(m.data)
      if (!message || !filterMatches(filter, message.topic)) {
        m.ack() // not for this group
        continue
      }
      if (this.deliverShared(message, group, filter)) m.ack()
      else {
        m.nak() // another node of the group takes it
        this.leave(queue)
      }
    }
  }

  private receive(queue: string, group: string, filter: string, data: Uint8Array): void {
    eachFrame(data, (bytes) => {
      const message = frameMessage(bytes)
      if (!message || !filterMatches(filter, message.topic)) return
      if (!this.deliverShared(message, group, filter)) this.leave(queue)
    })
  }

  /** No member here any more: leave the group, so NATS and JetStream pick a node that has one. */
  private leave(queue: string): void {
    for (const stop of this.joined.get(queue)?.stop ?? []) stop()
    this.joined.delete(queue)
  }
}
