/**
 * QoS 1/2 interest on JetStream. The stream stores each message under its topic's subject
 * (`<prefix>.m1.<subject>`, subjects.ts), and a node reads only the subjects of the filters its sessions hold: one
 * ordered consumer per subject, since nats-server 2.9 (Debian's) allows one filter subject per consumer. Filters
 * share subjects (`a/#` and `a` both read `t.a`): a subject is read once while any filter needs it. A message on
 * two subjects a node reads (`a/+` and `a/#` both match `a/b`) comes twice; it is routed once, by its stream sequence.
 *
 * Where a node stands, per subject: every message up to `processed` has been routed here. Core NATS tells a filtered
 * consumer's position only by the messages it delivers, so for a quiet subject `positionFor` asks the server
 * whether anything is pending (see there). That position is what a persistent session is recorded with, and a
 * node that takes the session over replays the stream from it.
 */
import { type Consumer, DeliverPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type OrderedConsumerOptions } from '@nats-io/jetstream'
import type { Logger } from '../logger.ts'
import { filterSubjects } from './subjects.ts'
import { setTimeout as sleep } from 'node:timers/promises'

/** How many recent stream sequences are remembered to route a message once though two subjects brought it. */
const RECENT = 65_536

/** One subject read by one ordered consumer from `begin(start)` on, restarted from where it stopped if it ends. */
class SubjectReader {
  /** Filters that need this subject. */
  refs = 1
  /** The highest stream sequence routed (or skipped as a second copy) from this subject; -1 until it begins. */
  processed = -1
  /** The consumer and delivery sequence of the last message handled (to tell whether the server has sent more). */
  private consumerName = ''
  private deliverySeq = 0
  private consumer: Consumer | null = null
  private messages: ConsumerMessages | null = null
  private stopped = false
  private started!: () => void
  /** Resolves once the reader consumes (or has failed to, and retries). */
  readonly ready = new Promise<void>((resolve) => (this.started = resolve))

  constructor(
    readonly subject: string,
    private readonly js: JetStreamClient,
    private readonly stream: string,
    private readonly take: (data: Uint8Array, seq: number) => void,
    private readonly logger: Logger,
  ) {}

  begin(start: number): void {
    if (this.stopped) return this.started()
    this.processed = start - 1
    void this.run(this.started)
  }

  private async run(started: () => void): Promise<void> {
    while (!this.stopped) {
      try {
        const options: Partial<OrderedConsumerOptions> = { filter_subjects: this.subject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.processed + 1 }
        const consumer = await this.js.consumers.get(this.stream, options)
        this.consumer = consumer
        this.messages = await consumer.consume()
        this.consumerName = ''
        this.deliverySeq = 0
        started()
        if (this.stopped) this.messages.stop()
        for await (const m of this.messages) {
          this.consumerName = m.info.consumer
          this.deliverySeq = m.info.deliverySequence
          if (m.seq > this.processed) {
            this.processed = m.seq
            this.take(m.data, m.seq)
          }
        }
      } catch (error) {
        if (!this.stopped) this.logger.warn('cluster.consumer_restart', { subject: this.subject, error: (error as Error).message })
      }
      started() // a reader that cannot start yet must not hold back whoever waits for readers to be in place
      if (!this.stopped) await sleep(200)
    }
  }

  /**
   * Up to where this subject is routed here, given the stream's `head` read just before: all of it when the server
   * has nothing pending for the consumer and has sent nothing this node has not handled; else what was handled.
   */
  async throughAt(head: number): Promise<number> {
    if (this.processed < 0) return head // not begun: it starts after the head, and nothing before mattered to it
    const consumer = this.consumer
    if (!consumer) return this.processed
    try {
      const info = await consumer.info(false)
      const handledAll = info.delivered.consumer_seq === this.deliverySeq && (this.deliverySeq === 0 || info.name === this.consumerName)
      return info.num_pending === 0 && handledAll ? Math.max(head, this.processed) : this.processed
    } catch {
      return this.processed
    }
  }

  /** Ends the current consumer: the reader makes a new one from where it stands (the server may have lost it). */
  restart(): void {
    this.messages?.stop()
  }

  stop(): void {
    this.stopped = true
    this.messages?.stop()
  }
}

export class StreamInterest {
  private readonly readers = new Map<string, SubjectReader>()
  /** The subjects each filter reads. */
  private readonly filters = new Map<string, string[]>()
  /** Stream sequences routed lately, oldest first in `order`, to drop a second copy. */
  private readonly recent = new Set<number>()
  private readonly order: number[] = []
  private orderAt = 0
  /** Readers made in this turn start here rather than at the stream's end (a session taken over was replayed up to it). */
  private floor: number | null = null
  /** Readers being made (each needs the stream's head first). */
  private readonly making = new Set<Promise<unknown>>()
  private closed = false
  /** Messages JetStream delivered to this node, second copies included. */
  delivered = 0

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    /** `<prefix>.m1` */
    private readonly root: string,
    /** Routes a message read from the stream (once per sequence). */
    private readonly route: (data: Uint8Array) => void,
    private readonly logger: Logger,
  ) {}

  /** The stream's last sequence now. */
  async head(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.last_seq
  }

  /** Starts (or stops) reading a filter's subjects, as the trie gains or loses the filter. */
  setInterest(filter: string, present: boolean): void {
    if (this.closed) return
    if (!present) {
      for (const subject of this.filters.get(filter) ?? []) {
        const reader = this.readers.get(subject)
        if (reader && --reader.refs === 0) {
          reader.stop()
          this.readers.delete(subject)
        }
      }
      this.filters.delete(filter)
      return
    }
    if (this.filters.has(filter)) return
    const subjects = filterSubjects(this.root, filter)
    this.filters.set(filter, subjects)
    const floor = this.floor
    for (const subject of subjects) {
      const held = this.readers.get(subject)
      if (held) {
        held.refs++
        continue
      }
      const reader = new SubjectReader(subject, this.js, this.stream, (data, seq) => this.take(data, seq), this.logger)
      this.readers.set(subject, reader)
      if (floor !== null) {
        reader.begin(floor)
        this.track(reader.ready)
        continue
      }
      // A fresh subscription reads what is stored from now on: after the stream's head.
      this.track(this.beginAtHead(reader))
    }
  }

  /** Begins a reader after the stream's head, asking again every second while NATS cannot say (it is away). */
  private async beginAtHead(reader: SubjectReader): Promise<void> {
    for (let failures = 0; !this.closed && this.readers.get(reader.subject) === reader; failures++) {
      try {
        reader.begin((await this.head()) + 1)
        return reader.ready
      } catch (error) {
        if (failures === 0) this.logger.warn('cluster.interest_waiting', { subject: reader.subject, error: (error as Error).message, effect: 'read from the stream once NATS answers' })
        await sleep(1000)
      }
    }
  }

  private track(making: Promise<unknown>): void {
    this.making.add(making)
    void making.finally(() => this.making.delete(making))
  }

  /** Readers made until the end of this turn start at `seq` (a session taken over was replayed up to just before it). */
  startFrom(seq: number): void {
    this.floor = this.floor === null ? seq : Math.min(this.floor, seq)
    setTimeout(() => (this.floor = null), 0) // after the microtasks that adopt the session

  }

  /** Resolves once every reader asked for so far reads from the stream. */
  async settled(): Promise<void> {
    while (this.making.size > 0) await Promise.all([...this.making])
  }

  /** The highest sequence routed here from these filters' subjects (0 when none is read). */
  routedFor(filters: string[]): number {
    let most = 0
    for (const filter of filters) for (const subject of filterSubjects(this.root, filter)) most = Math.max(most, this.readers.get(subject)?.processed ?? 0)
    return most
  }

  /**
   * A sequence up to which every message that matches these filters has been routed here: what a persistent
   * session with them is recorded with. The stream's head, unless a subject is not known to be caught up with it.
   */
  async positionFor(filters: string[]): Promise<number> {
    const head = await this.head()
    let position = head
    for (const filter of filters) {
      for (const subject of filterSubjects(this.root, filter)) {
        const reader = this.readers.get(subject)
        if (reader) position = Math.min(position, await reader.throughAt(head))
      }
    }
    return position
  }

  private take(data: Uint8Array, seq: number): void {
    this.delivered++
    if (this.recent.has(seq)) return
    if (this.order.length < RECENT) this.order.push(seq)
    else {
      this.recent.delete(this.order[this.orderAt]!)
      this.order[this.orderAt] = seq
      this.orderAt = (this.orderAt + 1) % RECENT
    }
    this.recent.add(seq)
    this.route(data)
  }

  /** NATS came back: every reader reads on with a new consumer. */
  restart(): void {
    for (const reader of this.readers.values()) reader.restart()
  }

  close(): void {
    this.closed = true
    for (const reader of this.readers.values()) reader.stop()
    this.readers.clear()
    this.filters.clear()
  }
}
