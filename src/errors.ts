import type { ReasonCode } from './protocol/reason.ts'

/** A protocol violation or refusal that ends a connection with an MQTT 5 reason code. */
export class MqttError extends Error {
  override readonly name = 'MqttError'
  constructor(
    readonly reasonCode: ReasonCode,
    message: string,
  ) {
    super(message)
  }
}

/** The configuration is invalid; the message names every bad field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}
