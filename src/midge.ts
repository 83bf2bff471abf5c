/**
 * createBroker(): the embeddable broker. Wires the core to its TCP listeners and the $SYS publisher.
 */
import { Broker, type BrokerEvents, type BrokerStats } from './broker.ts'
import { resolveConfig, type ResolvedConfig, type UserConfig } from './config.ts'
import { MqttError } from './errors.ts'
import { createLogger, type Logger } from './logger.ts'
import type { MessageProperties } from './message.ts'
import type { QoS } from './protocol/codec.ts'
import { Reason } from './protocol/reason.ts'
import { topicNameError } from './protocol/validate.ts'
import { startSysPublisher, VERSION } from './sys.ts'
import { listenTcp, type TcpListener } from './transport/tcp.ts'

export interface PublishOptions {
  topic: string
  payload: string | Uint8Array
  qos?: QoS
  retain?: boolean
  properties?: MessageProperties & { messageExpiryInterval?: number }
}

export interface ListenAddress {
  type: 'tcp'
  host: string
  port: number
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
}

export function createBroker(config: UserConfig = {}, options: CreateBrokerOptions = {}): Midge {
  const resolved = resolveConfig(config)
  const logger = options.logger ?? createLogger(resolved.log.level)
  const broker = new Broker(resolved, logger)
  let listeners: TcpListener[] = []
  let stopSys = () => {}

  return {
    config: resolved,
    logger,
    broker,
    get stats() {
      return broker.stats
    },
    async listen() {
      logger.info('broker.starting', { version: VERSION, pid: process.pid })
      for (const l of resolved.listeners) {
        const listener = listenTcp(broker, l.host, l.port)
        listeners.push(listener)
        logger.info('listener.listening', { type: 'tcp', host: listener.host, port: listener.port })
      }
      stopSys = startSysPublisher(broker, resolved.sys.intervalSeconds)
      return listeners.map((l) => ({ type: 'tcp' as const, host: l.host, port: l.port }))
    },
    async close() {
      logger.info('broker.stopping', { clients: broker.clients.size })
      for (const listener of listeners) listener.stop(false) // stop accepting; open sockets stay for the goodbye
      stopSys()
      broker.close() // MQTT 5 clients get DISCONNECT 0x8B, then every socket is ended
      await Bun.sleep(0) // let the ended sockets flush before any are forced shut
      for (const listener of listeners) listener.stop(true)
      listeners = []
      logger.info('broker.stopped', {})
    },
    publish(options) {
      const error = topicNameError(options.topic, resolved.limits)
      if (error) throw new MqttError(Reason.TopicNameInvalid, `invalid topic "${options.topic}": ${error}`)
      const { messageExpiryInterval, ...properties } = options.properties ?? {}
      const message = {
        topic: options.topic,
        payload: Buffer.from(options.payload),
        qos: options.qos ?? 0,
        retain: options.retain ?? false,
        properties: Object.keys(properties).length > 0 ? properties : undefined,
        expiresAt: messageExpiryInterval === undefined ? 0 : Date.now() + messageExpiryInterval * 1000,
        origin: undefined,
        owned: true,
      }
      const reached = broker.route(message)
      if (message.retain) broker.retain(message)
      return reached
    },
    on: (event, listener) => broker.on(event, listener),
  }
}
