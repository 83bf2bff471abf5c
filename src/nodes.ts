/**
 * Every core of a machine: `bun src/main.ts --nodes N` (or `--nodes auto`, one per core). Bun runs JavaScript on one
 * thread, so one process uses one core; N processes clustered on NATS use N. This process supervises them: it
 * starts a local nats-server with JetStream (unless the config names a cluster's NATS; its store is ./data/nats, or
 * MIDGE_NATS_STORE), then N nodes on the same
 * config, each told its place through the environment (MIDGE_NODE=i/N, MIDGE_NATS=url). On Linux the nodes share
 * every port (SO_REUSEPORT: the kernel spreads connections); elsewhere node i listens on each port + i. A node that
 * exits is started again; SIGINT/SIGTERM stops them all, then NATS.
 */
import { mkdirSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import type { ResolvedConfig } from './config.ts'
import { ConfigError } from './errors.ts'
import type { Logger } from './logger.ts'

/** This process's place among the nodes of `--nodes`, from the environment the supervisor set. */
export interface NodePlace {
  index: number
  count: number
  /** The local NATS the supervisor started (none when the config names its cluster's NATS). */
  nats: string | undefined
}

export function nodePlace(env: Record<string, string | undefined> = process.env): NodePlace | null {
  const match = /^(\d+)\/(\d+)$/.exec(env.MIDGE_NODE ?? '')
  if (!match) return null
  return { index: Number(match[1]), count: Number(match[2]), nats: env.MIDGE_NATS || undefined }
}

/** Ports are shared (SO_REUSEPORT) where the kernel spreads connections over the listeners: Linux. */
export const sharesPorts = process.platform === 'linux'

/** The config as node `place.index` runs it: in the cluster, with a name of its own, on shared (or its own) ports. */
export function asNode(config: ResolvedConfig, place: NodePlace): ResolvedConfig {
  const port = (p: number) => (sharesPorts || p === 0 ? p : p + place.index)
  const name = `${config.cluster?.nodeId ?? (config.cluster ? hostname().replace(/[^A-Za-z0-9_-]/g, '-') : 'node')}-${place.index + 1}`
  if (!config.cluster && !place.nats) throw new ConfigError('--nodes: no NATS to cluster the nodes on (no cluster section, and no local nats-server was started)')
  return {
    ...config,
    listeners: config.listeners.map((l) => ({ ...l, port: port(l.port), reusePort: sharesPorts })),
    http: config.http && { ...config.http, port: port(config.http.port), reusePort: sharesPorts },
    cluster: config.cluster ? { ...config.cluster, nodeId: name } : { nats: { servers: place.nats!, name: 'local' }, nodeId: name },
  }
}

/** Runs `count` nodes of the config at `path` under this process, with a local NATS unless the config has one. */
export async function runNodes(path: string, count: number, config: ResolvedConfig, logger: Logger, args: string[]): Promise<void> {
  const stores = config.plugins.filter((p) => p.retainedStore || p.sessionStore).map((p) => p.name)
  if (stores.length > 0) throw new ConfigError(`--nodes runs a cluster, which keeps retained messages and sessions in NATS JetStream; leave ${stores.join(', ')} out of the config used with --nodes`)
  let nats: { url: string; proc: ReturnType<typeof Bun.spawn> } | null = null
  const store = resolve(process.env.MIDGE_NATS_STORE ?? join('data', 'nats'))
  if (!config.cluster) {
    const server = Bun.which('nats-server') ?? (Bun.which('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null)
    if (!server) throw new ConfigError('--nodes needs nats-server for a local cluster (apt-get install nats-server), or a cluster section naming a NATS')
    const port = freePort()
    mkdirSync(store, { recursive: true })
    // Its own log goes to a file beside its store, so the nodes' JSON lines stay the only output.
    const proc = Bun.spawn([server, '-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store, '-l', join(store, 'nats-server.log')], { stdout: 'ignore', stderr: 'inherit' })
    nats = { url: `nats://127.0.0.1:${port}`, proc }
    await waitForPort(port)
  }
  logger.info('nodes.starting', { nodes: count, nats: nats?.url ?? config.cluster!.nats.servers, natsLog: nats ? join(store, 'nats-server.log') : undefined, sharedPorts: sharesPorts })

  let stopping = false
  const nodes: Array<ReturnType<typeof Bun.spawn> | null> = []
  const start = (index: number) => {
    // The single executable runs itself; otherwise Bun runs main.ts.
    const self = Bun.main.startsWith('/$bunfs/') || Bun.main.includes('~BUN') ? [process.execPath] : [process.execPath, join(import.meta.dir, 'main.ts')]
    const proc = Bun.spawn([...self, '--config', path, ...args], {
      env: { ...process.env, MIDGE_NODE: `${index}/${count}`, MIDGE_NATS: nats?.url ?? '' },
      stdout: 'inherit',
      stderr: 'inherit',
    })
    nodes[index] = proc
    const startedAt = Date.now()
    void proc.exited.then((code) => {
      if (stopping || nodes[index] !== proc) return
      if (Date.now() - startedAt < 5000) {
        // It did not get going (its own error is above): starting it again would only repeat that.
        logger.error('nodes.node_failed', { node: index + 1, code, effect: 'stopping every node' })
        return void stop('node failed', 1)
      }
      logger.error('nodes.node_exited', { node: index + 1, code, effect: 'started again in a second' })
      setTimeout(() => !stopping && start(index), 1000)
    })
  }
  async function stop(reason: string, exitCode = 0): Promise<void> {
    if (stopping) return
    stopping = true
    logger.info('nodes.stopping', { reason })
    for (const node of nodes) node?.kill('SIGTERM')
    await Promise.all(nodes.map((node) => node?.exited))
    nats?.proc.kill('SIGTERM')
    await nats?.proc.exited
    logger.info('nodes.stopped', {})
    process.exit(exitCode)
  }
  for (let i = 0; i < count; i++) start(i)
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGTERM', () => void stop('SIGTERM'))
}

function freePort(): number {
  const server = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = server.port
  server.stop(true)
  return port
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
      socket.end()
      return
    } catch {
      await Bun.sleep(50)
    }
  }
  throw new Error(`nats-server did not listen on ${port}`)
}
