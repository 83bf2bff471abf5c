/**
 * The two brokers every robustness test runs against: the bare broker, and the default config's plugin set
 * (what `npm start` runs) plus what exercises its asynchronous paths.
 *
 * "plugins": auth with ACLs (anonymous clients allowed, as in mqtt.config.ts; `forbidden/#` denied), a decision
 * plugin that answers late (after a timer, so packets are held while it decides), sqlite (acks wait for the
 * flush) and a webhook to a local HTTP receiver (its outbox is flushed before acks too).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { auth } from '../../plugins/auth.ts'
import { sqlite } from '../../plugins/sqlite.ts'
import { webhook } from '../../plugins/webhook.ts'
import type { Plugin, UserConfig } from '../../src/index.ts'
import { startBroker, type TestBroker } from './broker.ts'

type TestConfig = Parameters<typeof startBroker>[0]
type TestOptions = Parameters<typeof startBroker>[1]

/** A broker of a profile; with plugins, where its sqlite database is. */
export type ProfileBroker = TestBroker & { dbPath?: string }

export interface Profile {
  name: 'bare' | 'plugins'
  start(config?: TestConfig, options?: TestOptions): Promise<ProfileBroker>
}

/** Answers every decision with 'abstain' after a timer: the broker holds the client's later packets meanwhile. */
export function lateDecisions(delayMs = 1): Plugin {
  const late = () => new Promise<'abstain'>((resolve) => setTimeout(() => resolve('abstain'), delayMs))
  return { name: 'late-decisions', authenticate: late, authorizePublish: late, authorizeSubscribe: late }
}

/** A real HTTP receiver on 127.0.0.1 that accepts every webhook batch and counts its events. */
export function webhookReceiver() {
  const received = { batches: 0, events: 0 }
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const body = (await req.json()) as { events: unknown[] }
      received.batches++
      received.events += body.events.length
      return new Response('ok')
    },
  })
  return { received, url: `http://127.0.0.1:${server.port}/hook`, stop: () => server.stop(true) }
}

/** The default config's plugins (see mqtt.config.ts), with their files in `dir` and the webhook posting to `url`. */
export function defaultPlugins(dir: string, url: string): Plugin[] {
  return [
    auth({
      users: { alice: { password: 'secret' } },
      allowPlainTextPasswords: true,
      allowAnonymous: true,
      acl: [
        { user: '*', publish: ['#'], subscribe: ['#'], deny: { publish: ['forbidden/#'], subscribe: ['forbidden/#'] } },
        { anonymous: true, publish: ['#'], subscribe: ['#'], deny: { publish: ['forbidden/#'], subscribe: ['forbidden/#'] } },
      ],
    }),
    lateDecisions(),
    // Checkpoint and vacuum every second (the default is a minute), so short runs can see the file stay flat.
    sqlite({ path: join(dir, 'midge.db'), maintenanceIntervalMs: 1000 }),
    webhook({ url, topics: ['#'], outbox: join(dir, 'webhook.db'), retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 } }),
  ]
}

export const bare: Profile = { name: 'bare', start: (config, options) => startBroker(config, options) }

export const withPlugins: Profile = {
  name: 'plugins',
  async start(config: TestConfig = {}, options?: TestOptions) {
    const dir = mkdtempSync(join(tmpdir(), 'midge-profile-'))
    const receiver = webhookReceiver()
    const plugins: UserConfig['plugins'] = [...defaultPlugins(dir, receiver.url), ...(config.plugins ?? [])]
    const b = await startBroker({ ...config, plugins }, options)
    return {
      ...b,
      dbPath: join(dir, 'midge.db'),
      async close() {
        await b.close()
        receiver.stop()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  },
}

/** Every robustness test runs once per profile. */
export const profiles: Profile[] = [bare, withPlugins]
