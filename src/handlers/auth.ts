/**
 * MQTT 5 enhanced authentication (section 4.12): the exchange between a client and the plugin that handles its
 * Authentication Method, at CONNECT and on re-authentication. Each `continue` step sends AUTH 0x18 (Continue
 * authentication) with the plugin's data and waits for the client's next AUTH, which must be 0x18 with the same
 * method; the exchange ends with the plugin's success or failure.
 */
import type { Client } from '../client.ts'
import { MqttError } from '../errors.ts'
import type { AuthExchangeAnswer, AuthExchangeStep, AuthenticateRequest, MaybePromise } from '../plugin.ts'
import type { AuthPacket } from '../protocol/codec.ts'
import { Reason } from '../protocol/reason.ts'

export type Ended = Exclude<AuthExchangeAnswer, { result: 'continue' }>

/** Runs an exchange from the client's first data to the plugin's success or failure. */
export async function runExchange(
  client: Client,
  step: (step: AuthExchangeStep) => MaybePromise<AuthExchangeAnswer>,
  method: string,
  data: Buffer | undefined,
  request: AuthenticateRequest,
  reauthenticate: boolean,
): Promise<Ended> {
  let state: unknown
  for (;;) {
    let answer: AuthExchangeAnswer
    try {
      answer = await step({ method, data, state, reauthenticate, client: request })
    } catch (error) {
      client.broker.pluginError('authExchange', error) // a plugin that throws refuses (fail closed)
      return { result: 'fail', reasonCode: Reason.NotAuthorized, reasonString: 'authentication failed' }
    }
    if (answer.result !== 'continue') return answer
    state = answer.state
    client.send({ cmd: 'auth', reasonCode: Reason.ContinueAuthentication, properties: { authenticationMethod: method, authenticationData: answer.data } })
    const reply = await nextAuth(client)
    // [MQTT-4.12.0-2] the client answers AUTH 0x18 (Continue authentication), and with the same method [MQTT-4.12.0-5].
    if (reply.reasonCode !== Reason.ContinueAuthentication) throw new MqttError(Reason.ProtocolError, `AUTH with reason 0x${(reply.reasonCode ?? 0).toString(16)} during an exchange`)
    if (reply.properties?.authenticationMethod !== method) throw new MqttError(Reason.ProtocolError, 'AUTH with another authentication method')
    data = reply.properties.authenticationData
  }
}

/** The client's next AUTH packet (Client.onPacket hands it here, ahead of anything held). */
function nextAuth(client: Client): Promise<AuthPacket> {
  return new Promise((resolve) => (client.auth!.waiter = resolve))
}

/** A connected client's AUTH: 0x19 starts a re-authentication with the method it connected with [MQTT-4.12.1-1]. */
export function handleAuth(client: Client, packet: AuthPacket): void {
  if (client.version !== 5) throw new MqttError(Reason.ProtocolError, 'AUTH is an MQTT 5 packet')
  const auth = client.auth
  if (!auth) throw new MqttError(Reason.ProtocolError, 'AUTH from a client that connected without an authentication method') // section 4.12
  if (packet.reasonCode !== Reason.ReAuthenticate) throw new MqttError(Reason.ProtocolError, 'AUTH 0x18 with no exchange in progress')
  if (packet.properties?.authenticationMethod !== auth.method) throw new MqttError(Reason.ProtocolError, 're-authentication with another method') // [MQTT-4.12.1-1]
  const step = client.broker.plugins.authExchanges.get(auth.method)!
  const request = { clientId: client.clientId, username: client.username, protocolVersion: client.version, address: client.remoteAddress, password: undefined }
  // Not a pending decision: the client's other packets go on meanwhile (section 4.12.1); its AUTH replies come to the exchange.
  runExchange(client, step, auth.method, packet.properties.authenticationData, request, true).then(
    (ended) => {
      if (client.state !== 'connected') return
      if (ended.result === 'success') {
        client.send({ cmd: 'auth', reasonCode: Reason.Success, properties: { authenticationMethod: auth.method, authenticationData: ended.data } })
        client.broker.logger.info('client.reauthenticated', { clientId: client.clientId, method: auth.method })
      } else {
        client.disconnect(ended.reasonCode ?? Reason.NotAuthorized, ended.reasonString ?? 're-authentication failed') // [MQTT-4.12.1-2]
      }
    },
    (error: unknown) => client.failSafely(error),
  )
}
