/**
 * Every session of the broker and its life: opened by CONNECT (or taken over from a live connection), kept when
 * its connection goes, ended when it expires or a clean start replaces it. The will is published here, after its
 * delay or when the session ends. Persistent sessions are mirrored to the session store and loaded back from it.
 */
import type { Clock, Timer } from './clock.ts'
import type { Events } from './events.ts'
import type { Limits } from './limits.ts'
import type { Message } from './message.ts'
import type { StoredSession } from './plugin.ts'
import { publish, type PublishTarget } from './publish.ts'
import { Reason } from './protocol/reason.ts'
import { type Attachment, type Delivery, NEVER_EXPIRES, Session } from './session.ts'
import { SessionTable } from './session-table.ts'
import { type SubscriptionTrie, subscriptionKey } from './topics/trie.ts'

/** What the sessions need of the broker: its limits, plugins, subscriptions and events, and publishing (wills). */
export interface SessionsHost extends PublishTarget {
  readonly limits: Limits
  readonly subscriptions: SubscriptionTrie
  readonly events: Events
  /** The broker is shutting down: no will is published, no expiry written. */
  readonly closing: boolean
  readonly clock: Clock
}

export class Sessions {
  private readonly byId = new SessionTable<Session>()

  constructor(private readonly host: SessionsHost) {}

  get(clientId: string): Session | undefined {
    return this.byId.get(clientId)
  }

  has(clientId: string): boolean {
    return this.byId.has(clientId)
  }

  get size(): number {
    return this.byId.size
  }

  /** Every session, as a list of its own. */
  values(): Session[] {
    return this.byId.values()
  }

  /** Restores the persistent sessions the session store kept: subscriptions, queued and in-flight messages. */
  async load(): Promise<number> {
    const store = this.host.plugins.sessionStore
    if (!store) return 0
    const now = this.host.clock.now()
    let loaded = 0
    for (const stored of await store.load()) {
      if (stored.expiresAt !== 0 && stored.expiresAt <= now) {
        store.deleteSession(stored.clientId)
        continue
      }
      const session = this.adopt(stored)
      // A session that was connected when the broker stopped starts its expiry now.
      const expiresAt = stored.expiresAt || (session.expiryInterval === NEVER_EXPIRES ? 0 : now + session.expiryInterval * 1000)
      this.scheduleExpiry(session, expiresAt)
      loaded++
    }
    return loaded
  }

  /** Makes a stored session (from a store at start-up, or from another node) a live session of this broker. */
  adopt(stored: StoredSession): Session {
    const session = new Session(stored.clientId, stored.expiryInterval)
    for (const sub of stored.subscriptions) {
      this.host.subscriptions.add(sub)
      session.setSubscription(subscriptionKey(sub), sub)
    }
    for (const d of stored.deliveries) {
      const awaiting = d.state === 'queued' ? undefined : d.state
      const delivery: Delivery = { message: { ...d.message, owned: true }, qos: d.qos, retain: d.retain, subscriptionIds: d.subscriptionIds, seq: d.seq, awaiting }
      session.lastSeq = Math.max(session.lastSeq, d.seq)
      if (d.state === 'queued') {
        session.pushQueued(delivery)
      } else {
        session.setInflight(d.packetId, delivery)
      }
    }
    if (stored.awaitingRelease.length > 0) session.awaitingRelease = new Set(stored.awaitingRelease)
    this.hold(session)
    return session
  }

  /** Drops a session that now lives on another node: no will, no store writes (that node has it). */
  forget(clientId: string): void {
    const session = this.byId.get(clientId)
    if (!session || session.client) return
    this.clearTimers(session)
    session.will = undefined
    for (const sub of session.subscriptions.values()) this.host.subscriptions.remove(sub)
    this.release(session)
  }

  /** Finds or creates the session for a connecting client, taking over a live connection with the same id. */
  open(client: Attachment, clientId: string, cleanStart: boolean, expiryInterval: number): { session: Session; present: boolean } {
    let session = this.byId.get(clientId)
    const live = session?.client
    if (live) {
      // The session goes on with the new connection, opened before any will delay elapsed: the will is not
      // published (MQTT 5.0 section 3.1.2.5; Mosquitto does the same). A session that ends with the old
      // connection, or is replaced by a clean start, publishes it as the old connection closes [MQTT-3.1.4-3].
      if (!cleanStart && session!.persistent) session!.will = undefined
      live.disconnect(Reason.SessionTakenOver, 'session taken over') // [MQTT-3.1.4-3]
    }
    session = this.byId.get(clientId)
    if (session) {
      this.clearTimers(session)
      session.will = undefined // a new connection before the will delay cancels the will [MQTT-3.1.3-9]
      if (cleanStart) {
        this.end(session) // [MQTT-3.1.2-4]
        session = undefined
      }
    }
    const present = session !== undefined
    session ??= new Session(clientId, expiryInterval)
    session.expiryInterval = expiryInterval
    session.client = client
    this.hold(session)
    // A new session that does not outlive its connection was never stored, and is not now (memory is the truth:
    // a stored session of this client id was loaded at start, or ended above): no store write per clean connect.
    if (present || session.persistent) this.store(session, 0)
    return { session, present }
  }

  /** MQTT 5 DISCONNECT may change the session expiry interval. */
  setExpiry(session: Session, expiryInterval: number): void {
    session.expiryInterval = Math.min(expiryInterval, this.host.limits.maxSessionExpirySeconds)
    this.store(session, 0)
  }

  /** The session's connection is gone: the will is published or scheduled, and the session's expiry starts. */
  detach(session: Session): void {
    session.client = null
    const will = session.will
    if (will && !this.host.closing) {
      // [MQTT-3.1.2-8] published after the will delay, or when the session ends if that is sooner.
      if (will.delaySeconds === 0 || session.expiryInterval === 0) this.publishWill(session)
      else session.willTimer = this.timer(() => this.publishWill(session), will.delaySeconds * 1000)
    }
    if (session.expiryInterval === 0) return this.end(session)
    this.scheduleExpiry(session, session.expiryInterval === NEVER_EXPIRES ? 0 : this.host.clock.now() + session.expiryInterval * 1000)
  }

  /** Ends a session: its will (if still pending) is published and its subscriptions removed. */
  end(session: Session): void {
    if (this.byId.get(session.clientId) !== session) return
    this.clearTimers(session)
    this.publishWill(session)
    for (const sub of session.subscriptions.values()) this.host.subscriptions.remove(sub)
    session.clearSubscriptions()
    this.release(session)
    // Only a persistent session is in the store (one that stopped being persistent was deleted from it then).
    if (session.persistent) this.host.plugins.sessionStore?.deleteSession(session.clientId)
    if (this.host.events.listeners.sessionEnded.length > 0) this.host.events.emit('sessionEnded', session.clientId)
  }

  /** Holds `session` as its client id's (one held before it under that id is marked as no longer held). */
  private hold(session: Session): void {
    const before = this.byId.set(session)
    if (before && before !== session) before.held = false
    session.held = true
  }

  /** Lets `session` go: routes that kept it look its client id up again, and its messages go with it. */
  private release(session: Session): void {
    this.byId.delete(session.clientId)
    session.held = false
    session.discardMessages()
  }

  /** Stops every session's timers (the broker is closing). */
  stopTimers(): void {
    for (const session of this.byId.values()) this.clearTimers(session)
  }

  private clearTimers(session: Session): void {
    this.host.clock.clear(session.willTimer)
    this.host.clock.clear(session.expiryTimer)
    session.willTimer = undefined
    session.expiryTimer = undefined
  }

  /**
   * A timer for a session: will delay or expiry. Every delay comes from a client's numbers, checked on the way in;
   * one that still is not a finite number of milliseconds would make the runtime warn and fire at once, so it is 0.
   */
  private timer(fn: () => void, ms: number): Timer {
    return this.host.clock.setTimeout(fn, Number.isFinite(ms) && ms > 0 ? ms : 0)
  }

  /** Ends the session at `expiresAt` (epoch ms; 0 = never) and records that in the session store. */
  private scheduleExpiry(session: Session, expiresAt: number): void {
    if (expiresAt !== 0) session.expiryTimer = this.timer(() => this.end(session), expiresAt - this.host.clock.now())
    if (!this.host.closing) this.store(session, expiresAt)
  }

  /** Writes a session's expiry to the session store (or removes it once it is no longer persistent). */
  private store(session: Session, expiresAt: number): void {
    const store = this.host.plugins.sessionStore
    if (!store) return
    if (session.persistent) store.saveSession(session.clientId, session.expiryInterval, expiresAt)
    else store.deleteSession(session.clientId)
  }

  private publishWill(session: Session): void {
    const will = session.will
    // On the broker's own shutdown no will is sent: the clients did not fail, the server went away.
    if (!will || this.host.closing) return
    session.will = undefined
    this.host.clock.clear(session.willTimer)
    session.willTimer = undefined
    const message: Message = { ...will.message, expiresAt: will.expirySeconds === undefined ? 0 : this.host.clock.now() + will.expirySeconds * 1000 }
    publish(this.host, message, null) // checked when the will arrived in CONNECT
  }
}
