/**
 * The cluster seen as one from the HTTP API: every node answers `<prefix>.api.<what>` (its clients, stats or metrics,
 * as its own API would) and any node can ask them all at once (NATS request/reply, gathering every answer that comes
 * until the answers stop). What a node answers is given by whoever wires the HTTP view (midge.ts).
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node'
import type { Logger } from '../logger.ts'

export type ClusterQuestion = 'clients' | 'stats' | 'metrics' | 'disconnect'
export const CLUSTER_QUESTIONS: readonly ClusterQuestion[] = ['clients', 'stats', 'metrics', 'disconnect']

/** What this node answers to each question (`data`: the question's own, e.g. which client to disconnect). */
export type LocalAnswers = (what: ClusterQuestion, data?: unknown) => unknown

export interface NodeAnswer {
  node: string
  data: unknown
}

/** After the first answer, the gathering ends once no other has come for this long (or at MAX_WAIT_MS). */
const STALL_MS = 250
const MAX_WAIT_MS = 3000

export class ClusterApi {
  private readonly subscriptions: Subscription[]

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    node: string,
    answers: LocalAnswers,
    private readonly logger: Logger,
  ) {
    this.subscriptions = CLUSTER_QUESTIONS.map((what) =>
      nc.subscribe(`${prefix}.api.${what}`, {
        callback: (error, msg) => {
          if (error) return
          try {
            msg.respond(JSON.stringify({ node, data: answers(what, msg.data.length > 0 ? msg.json() : undefined) }))
          } catch (failure) {
            this.logger.warn('cluster.api_answer_failed', { what, error: (failure as Error).message })
          }
        },
      }),
    )
  }

  /** Every node's answer (this node's included), in node order. */
  async gather(what: ClusterQuestion, data?: unknown): Promise<NodeAnswer[]> {
    const replies = await this.nc.requestMany(`${this.prefix}.api.${what}`, data === undefined ? '' : JSON.stringify(data), { strategy: 'stall', stall: STALL_MS, maxWait: MAX_WAIT_MS })
    const out: NodeAnswer[] = []
    for await (const reply of replies) {
      try {
        const answer = reply.json<NodeAnswer>()
        if (typeof answer?.node === 'string') out.push(answer)
      } catch {
        // Not an answer of this version: left out (the other nodes' answers stand).
      }
    }
    return out.sort((a, b) => a.node.localeCompare(b.node))
  }

  close(): void {
    for (const s of this.subscriptions) s.unsubscribe()
  }
}
