/**
 * What the core is configured with, as plain types. The zod schema in config.ts produces exactly these (it is
 * checked to, at compile time), documents each field and fills the defaults; the core needs no schema library.
 */
import type { BanRules } from './bans.ts'
import type { RateConfig } from './rate.ts'

/** Protocol and resource limits (`limits` in mqtt.config.ts; meanings and defaults in config.ts and the README). */
export interface Limits {
  maxPacketSize: number
  connectTimeoutMs: number
  maxKeepAliveSeconds: number
  receiveMaximum: number
  maxInflight: number
  topicAliasMaximum: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  maxOutboundBufferBytes: number
  drainTimeoutMs: number
  maxSessionExpirySeconds: number
  maxTopicLevels: number
  maxTopicLength: number
  maxConnections: number
  maxConnectionsPerIp: number
  connectRatePerIp: number
  maxSubscriptionsPerClient: number
  maxMessageExpirySeconds: number
  maxPayloadBytes: number
  maxRetainedPerClient: number
  rate: RateConfig
}

/** The part of the configuration the broker core reads. */
export interface CoreConfig {
  limits: Limits
  bans: BanRules
}
