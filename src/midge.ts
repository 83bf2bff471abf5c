/**
 * createBroker(): the embeddable broker. Wires the core to its TCP listeners and the $SYS publisher.
 */
import { Broker, type BrokerStats } from './broker.ts'
import type { BrokerEvents } from './events.ts'
import type { Clock } from './clock.ts'
import { resolveConfig, type ResolvedConfig, type UserConfig } from './config.ts'
import { ConfigError, MqttError } from './errors.ts'
import { guardProcess } from './guard.ts'
import { createLogger, type Logger, withFields } from './logger.ts'
import { type Plugin, type PluginContext, PluginHost, type PluginPublish } from './plugin.ts'
import { messageFrom } from './message.ts'
import { Reason } from './protocol/reason.ts'
import { topicNameError } from './protocol/validate.ts'
import { type Accepted, publish } from './publish.ts'
import { startSysPublisher, VERSION } from './sys.ts'
import { clusterPlugin } from './cluster/plugin.ts'
import type { ClusterQuestion } from './cluster/api.ts'
import { prometheus, startLagMonitor } from './http/metrics.ts'
import { BrokerView } from './http/view.ts'
import { loadRuntime, runtimeName } from './runtime/index.ts'
import { setTimeout as sleep } from 'node:timers/promises'

export type PublishOptions = PluginPublish

export interface ListenAddress {
  type: 'tcp' | 'websocket' | 'http'
  host: string
  port: number
  tls: boolean
}

export interface Midge {
  readonly config: ResolvedConfig
  readonly logger: Logger
  readonly stats: Readonly<BrokerStats>
  /** Starts every configured listener; resolves with the bound addresses (port 0 becomes the real port). */
  listen(): Promise<ListenAddress[]>
  /** Stops accepting, disconnects every client (MQTT 5: DISCONNECT 0x8B) and stops timers. */
  close(): Promise<void>
  /** Publishes a message as the broker itself; returns how many sessions it reached. */
  publish(options: PublishOptions): number
  on<E extends keyof BrokerEvents>(event: E, listener: BrokerEvents[E]): () => void
  /** The core, for tests and advanced embedding. */
  readonly broker: Broker
}

export interface CreateBrokerOptions {
  /** Log sink; defaults to JSON lines on stdout at the configured level. */
  logger?: Logger
  /** The broker's time (keep alive, expiry, will delay, bans, the sweep); the system clock unless a test moves one by hand. */
  clock?: Clock
}

export function createBroker(config: UserConfig = {}, options: CreateBrokerOptions = {}): Midge {
  const resolved = resolveConfig(config)
  const logger = options.logger ?? createLogger(resolved.log.level)
  // The cluster, when configured, is a built-in plugin placed first (it provides the retained store). Other nodes
  // ask it what this node's HTTP API would answer (clients, stats, metrics), so it gets the same view.
  const cluster = resolved.cluster ? clusterPlugin(() => broker, resolved.cluster, (what, data) => answer(what, data)) : null
  const plugins = cluster ? [cluster, ...resolved.plugins] : resolved.plugins
  const broker: Broker = new Broker(resolved, logger, new PluginHost(plugins), undefined, options.clock)
  const view = new BrokerView(broker)
  let lag: { lagSeconds(): number; stop(): void } | null = null
  const answer = (what: ClusterQuestion, data?: unknown): unknown => {
    if (what === 'clients') return view.clients()
    if (what === 'stats') return view.stats()
    if (what === 'disconnect') return typeof (data as { clientId?: unknown })?.clientId === 'string' && view.disconnect((data as { clientId: string }).clientId)
    return prometheus(view, lag?.lagSeconds() ?? 0)
  }
  for (const plugin of plugins) subscribeNotifications(broker, plugin, logger)
  let started: Plugin[] = []
  let listeners: Array<{ stop(closeActive: boolean): void }> = []
  let ready = false
  let stopSys = () => {}
  let unguard = () => {}

  return {
    config: resolved,
    logger,
    broker,
    get stats() {
      return broker.stats
    },
    async listen() {
      logger.info('broker.starting', { version: VERSION, runtime: runtimeName, pid: process.pid, plugins: plugins.map((p) => p.name) })
      unguard = guardProcess(logger)
      for (const plugin of plugins) {
        try {
          await plugin.start?.(pluginContext(broker, plugin, logger))
        } catch (error) {
          unguard()
          if (error instanceof ConfigError) throw error
          throw new Error(`plugin ${plugin.name} failed to start: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
        }
        started.push(plugin)
      }
      const runtime = await loadRuntime()
      const retained = await broker.loadRetained()
      if (broker.plugins.retainedStore) logger.info('retained.loaded', { messages: retained })
      const sessions = await broker.loadSessions()
      if (broker.plugins.sessionStore) logger.info('sessions.loaded', { sessions })
      const addresses: ListenAddress[] = []
      const opened = (type: ListenAddress['type'], listener: { host: string; port: number; stop(closeActive: boolean): void }, tls: boolean, path?: string) => {
        listeners.push(listener)
        addresses.push({ type, host: listener.host, port: listener.port, tls })
        logger.info('listener.listening', { type, host: listener.host, port: listener.port, tls, path })
      }
      for (const l of resolved.listeners) {
        if (l.type === 'tcp') opened('tcp', runtime.listenTcp(broker, l.host, l.port, l.tls, l.reusePort, l.rate), l.tls !== undefined)
        else opened('websocket', runtime.listenWebSocket(broker, l.host, l.port, l.path, l.tls, l.reusePort, l.rate), l.tls !== undefined, l.path)
      }
      const http = resolved.http
      if (http || cluster) lag = startLagMonitor()
      if (http) opened('http', runtime.listenHttp(broker, view, http, { lagSeconds: () => lag?.lagSeconds() ?? 0, ready: () => ready, gather: cluster?.gather, listeners: () => addresses }), http.tls !== undefined, http.websocketPath || undefined)
      stopSys = startSysPublisher(broker, resolved.sys.intervalSeconds)
      ready = true
      return addresses
    },
    async close() {
      ready = false
      logger.info('broker.stopping', { clients: broker.clients.size })
      for (const listener of listeners) listener.stop(false) // stop accepting; open sockets stay for the goodbye
      stopSys()
      lag?.stop()
      broker.close() // MQTT 5 clients get DISCONNECT 0x8B, then every socket is ended
      await sleep(0) // let the ended sockets flush before any are forced shut
      for (const listener of listeners) listener.stop(true)
      listeners = []
      for (const plugin of started.reverse()) {
        try {
          await plugin.stop?.()
        } catch (error) {
          logger.error('plugin.error', { plugin: plugin.name, hook: 'stop', error: (error as Error).message })
        }
      }
      started = []
      logger.info('broker.stopped', {})
      unguard()
    },
    publish: (options) => publishAsBroker(broker, options),
    on: (event, listener) => broker.on(event, listener),
  }
}

/** Publishes a message as the broker itself (no client, no ACL); returns how many sessions it reached. */
function publishAsBroker(broker: Broker, options: PublishOptions): number {
  const error = topicNameError(options.topic, broker.limits)
  if (error) throw new MqttError(Reason.TopicNameInvalid, `invalid topic "${options.topic}": ${error}`)
  const message = messageFrom({ topic: options.topic, payload: Buffer.from(options.payload), qos: options.qos ?? 0, retain: options.retain ?? false, properties: options.properties }, undefined, broker.clock.now())
  return (publish(broker, message, null) as Accepted).reached // the broker's own message: never refused, never pending
}

function pluginContext(broker: Broker, plugin: Plugin, logger: Logger): PluginContext {
  return {
    logger: withFields(logger, { plugin: plugin.name }),
    publish: (message) => publishAsBroker(broker, message),
    flushed: () => broker.plugins.flushed(),
    stats: {
      get messagesReceived() {
        return broker.stats.messagesReceived
      },
      get messagesSent() {
        return broker.stats.messagesSent
      },
      get messagesDropped() {
        return broker.stats.messagesDropped
      },
      get bytesReceived() {
        return broker.stats.bytesReceived
      },
      get bytesSent() {
        return broker.stats.bytesSent
      },
      get clientsConnected() {
        return broker.connectedCount
      },
      get subscriptions() {
        return broker.subscriptions.size
      },
      get retained() {
        return broker.retained.size
      },
    },
  }
}

/** Plugin notification hooks and the broker events they listen to. */
const notifications = {
  onConnect: 'clientConnected',
  onDisconnect: 'clientDisconnected',
  onPublish: 'message',
  onSubscribe: 'subscribe',
  onUnsubscribe: 'unsubscribe',
  onDeliver: 'deliver',
  onDrop: 'drop',
  onSessionEnd: 'sessionEnded',
} as const satisfies Record<string, keyof BrokerEvents>

/** Each notification hook becomes a broker listener; a throw or rejection is logged with the plugin's name. */
function subscribeNotifications(broker: Broker, plugin: Plugin, logger: Logger): void {
  for (const [hook, event] of Object.entries(notifications) as Array<[keyof typeof notifications, keyof BrokerEvents]>) {
    const fn = plugin[hook] as ((...args: unknown[]) => unknown) | undefined
    if (!fn) continue
    const report = (error: unknown) => logger.error('plugin.error', { plugin: plugin.name, hook, error: error instanceof Error ? error.message : String(error) })
    broker.on(event, ((...args: unknown[]) => {
      try {
        const result = fn.apply(plugin, args)
        if (result instanceof Promise) result.catch(report)
      } catch (error) {
        report(error)
      }
    }) as BrokerEvents[typeof event])
  }
}
