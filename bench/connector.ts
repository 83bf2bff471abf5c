/**
 * Opening connections on more than one thread (scenario 5). Each connection costs the generator ~50-65 µs of
 * CPU, most of it the kernel's share of the TCP handshake, so one thread is at a full core before a broker is;
 * a Worker per core shares the handshakes. Run as a Worker, this file opens and holds connections on request.
 */
import { BenchClient } from './client.ts'

declare const self: Worker // in a Worker, the global scope (Bun's docs: `declare var self: Worker`)

type Request = { op: 'connect'; port: number; prefix: string; from: number; count: number; lanes: number } | { op: 'close' }
type Reply = { op: 'connected'; opened: number } | { op: 'closed' }

/** Opens `count` connections keeping `lanes` handshakes under way (a new one starts as each is accepted). */
async function connectLanes(port: number, prefix: string, from: number, count: number, lanes: number): Promise<BenchClient[]> {
  const clients: BenchClient[] = []
  let next = 0
  const lane = async () => {
    while (next < count) clients.push(await BenchClient.connect(port, `${prefix}-${from + next++}`))
  }
  await Promise.all(Array.from({ length: Math.min(lanes, count) }, lane))
  return clients
}

/** The generator's connection threads: each opens its share of a batch and holds it until closeAll(). */
export class Connectors {
  private readonly workers: Worker[]

  constructor(threads: number) {
    this.workers = Array.from({ length: threads }, () => new Worker(new URL(import.meta.url).href))
  }

  /**
   * Opens `count` connections across the threads with `lanes` handshakes under way in all (100 stays within
   * Mosquitto's listen backlog of 100, past which it drops SYNs); resolves with how many opened.
   */
  async connect(port: number, prefix: string, count: number, lanes = 100): Promise<number> {
    const n = this.workers.length
    const replies = this.workers.map((worker, i) => {
      const share = Math.floor(count / n) + (i < count % n ? 1 : 0)
      const from = i * Math.floor(count / n) + Math.min(i, count % n)
      return this.ask(worker, { op: 'connect', port, prefix, from, count: share, lanes: Math.max(1, Math.round(lanes / n)) })
    })
    const done = await Promise.all(replies)
    return done.reduce((sum, r) => sum + (r.op === 'connected' ? r.opened : 0), 0)
  }

  /** Closes every connection the threads hold. */
  async closeHeld(): Promise<void> {
    await Promise.all(this.workers.map((worker) => this.ask(worker, { op: 'close' })))
  }

  /** Closes every held connection, then stops the threads. */
  async closeAll(): Promise<void> {
    await this.closeHeld()
    for (const worker of this.workers) worker.terminate()
  }

  private ask(worker: Worker, request: Request): Promise<Reply> {
    return new Promise((resolve) => {
      worker.addEventListener('message', (event: MessageEvent<Reply>) => resolve(event.data), { once: true })
      worker.postMessage(request)
    })
  }
}

// As a Worker: open connections on request, hold them, close them when told.
if (!Bun.isMainThread) {
  const held: BenchClient[] = []
  self.onmessage = async (event: MessageEvent<Request>) => {
    const request = event.data
    if (request.op === 'connect') {
      const opened = await connectLanes(request.port, request.prefix, request.from, request.count, request.lanes)
      held.push(...opened)
      postMessage({ op: 'connected', opened: opened.length } satisfies Reply)
    } else {
      // A reset, not a FIN: 20,000 connections closed per run would otherwise sit in TIME_WAIT for 60 s, and
      // the next broker's storm would pay for them (the kernel's port search and lookups, ~+15 µs per connect
      // on the generator and ~+10 on the broker after a few runs), so the order of brokers would bias the rate.
      for (const client of held) client.reset()
      held.length = 0
      await Bun.sleep(100) // let the resets go out before the thread is stopped
      postMessage({ op: 'closed' } satisfies Reply)
    }
  }
}
