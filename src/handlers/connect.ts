/**
 * CONNECT: negotiate the protocol, pick the client id, settle keep alive and session expiry,
 * take over any live connection with the same id, then CONNACK and resume the session.
 * The steps run in this order; a refusal sends CONNACK with the reason and closes [MQTT-3.2.2-7].
 */
import type { Client } from '../client.ts'
import type { ConnackPacket, ConnectPacket } from '../protocol/codec.ts'
import { encode } from '../protocol/encode.ts'
import { connackReturnCode, Reason, refusalCode } from '../protocol/reason.ts'
import { topicNameError } from '../protocol/validate.ts'
import { messageOfPacket } from '../message.ts'
import { decide, type Verdict } from '../plugin.ts'
import { NEVER_EXPIRES, type Will } from '../session.ts'
import { addRules, emptyRules } from '../topics/acl.ts'
import { runExchange } from './auth.ts'
import { RateBucket, rateLimit } from '../rate.ts'

type ConnackProperties = NonNullable<ConnackPacket['properties']>

export function handleConnect(client: Client, packet: ConnectPacket): void | Promise<void> {
  const broker = client.broker
  const limits = broker.limits
  const version = packet.protocolVersion ?? 4
  client.version = version
  const bridge = (packet as { bridgeMode?: boolean }).bridgeMode === true
  client.reader.connected(version, bridge)
  client.bridge = bridge
  const props = packet.properties
  const connack: ConnackProperties = version === 5 ? {} : NO_PROPERTIES

  if (broker.closing) return refuse(client, Reason.ServerUnavailable, 'server is shutting down')
  // This connection is counted already, hence "more than".
  if (broker.connectionCount > limits.maxConnections) return refuse(client, Reason.ServerBusy, `more than ${limits.maxConnections} connections`)
  const method = version === 5 ? props?.authenticationMethod : undefined
  const exchange = method === undefined ? undefined : broker.plugins.authExchanges.get(method)
  if (method !== undefined && !exchange) return refuse(client, Reason.BadAuthenticationMethod, `authentication method ${method} is not supported`) // section 4.12
  if (version === 5 && props?.receiveMaximum === 0) return refuse(client, Reason.ProtocolError, 'receive maximum of 0') // section 3.1.2.11.3
  if (version === 5 && props?.maximumPacketSize === 0) return refuse(client, Reason.ProtocolError, 'maximum packet size of 0')

  // Client identifier [MQTT-3.1.3-6..8]
  let clientId = packet.clientId
  if (clientId === '') {
    if (version === 5 || (version === 4 && packet.clean)) {
      clientId = broker.newClientId()
      if (version === 5) connack.assignedClientIdentifier = clientId // [MQTT-3.2.2-16]
    } else {
      return refuse(client, Reason.ClientIdentifierNotValid, 'empty client id needs a clean session') // [MQTT-3.1.3-8]
    }
  }

  // Keep alive (closed after 1.5 times it, [MQTT-3.1.2-22]); MQTT 5 clients may be told a lower Server Keep Alive [MQTT-3.2.2-21].
  let keepAlive = packet.keepalive ?? 0
  if (limits.maxKeepAliveSeconds < 65535 && (keepAlive === 0 || keepAlive > limits.maxKeepAliveSeconds)) {
    if (version === 5) {
      keepAlive = limits.maxKeepAliveSeconds
      connack.serverKeepAlive = keepAlive
    } else if (keepAlive > limits.maxKeepAliveSeconds) {
      // 3.1.1 cannot be told another keep alive; like Mosquitto's max_keepalive, refuse it.
      return refuse(client, Reason.ClientIdentifierNotValid, `keep alive over the maximum of ${limits.maxKeepAliveSeconds}s`)
    }
  }

  // Session expiry: MQTT 5 from the property, 3.1.1 from the clean-session flag.
  let expiry = version === 5 ? (props?.sessionExpiryInterval ?? 0) : packet.clean ? 0 : NEVER_EXPIRES
  if (expiry > limits.maxSessionExpirySeconds) {
    expiry = limits.maxSessionExpirySeconds
    if (version === 5) connack.sessionExpiryInterval = expiry
  }

  // Will [MQTT-3.1.2-9]
  let will: Will | undefined
  if (packet.will) {
    const error = topicNameError(packet.will.topic, limits)
    if (error) {
      // 3.1.1 has no CONNACK code for it (3 would say "server unavailable"): a protocol violation closes the
      // connection (3.1.1 [MQTT-4.8.0-1]); MQTT 5 is told 0x90.
      if (version !== 5) {
        broker.logger.warn('client.protocol_error', { address: client.remoteAddress, reason: `will topic: ${error}` })
        return client.close(`invalid will topic: ${error}`)
      }
      return refuse(client, Reason.TopicNameInvalid, `will topic: ${error}`)
    }
    const willPacket = { cmd: 'publish' as const, topic: packet.will.topic, payload: packet.will.payload, qos: packet.will.qos ?? 0, retain: packet.will.retain ?? false, dup: false, properties: packet.will.properties }
    const message = messageOfPacket(willPacket, clientId, broker.clock)
    message.payload = Buffer.from(message.payload)
    message.expiresAt = 0 // the expiry interval counts from when the will is published
    will = {
      message,
      delaySeconds: version === 5 ? (packet.will.properties?.willDelayInterval ?? 0) : 0,
      expirySeconds: packet.will.properties?.messageExpiryInterval,
    }
  }

  client.clientId = clientId
  // A verified client certificate names the user when the listener says so (its CN wins over CONNECT's).
  client.username = client.conn.certificateUsername ?? packet.username
  const now = broker.clock.now()
  const ban = broker.bans.find('clientId', clientId, now) ?? broker.bans.find('username', client.username, now)
  if (ban) return refuse(client, Reason.Banned, 'banned', false) // MQTT 5: 0x8A; 3.1.1: 5 (not authorized)
  client.keepAliveMs = keepAlive * 1000
  if (version === 5) {
    client.sendWindow = Math.min(props?.receiveMaximum ?? 65535, limits.maxInflight)
    client.maxOutgoingPacketSize = props?.maximumPacketSize ?? Infinity
    const aliasMax = props?.topicAliasMaximum ?? 0
    if (aliasMax > 0) client.aliases = { outgoingMax: aliasMax, outgoing: null, incoming: null }
    client.requestProblemInformation = props?.requestProblemInformation ?? true
  }

  // What admitting this client needs, in one record rather than closures (most connections are admitted at once).
  const admission: Admission = { client, packet, clientId, expiry, will, connack }
  // Authentication: an enhanced authentication exchange when CONNECT names a method (section 4.12), else the
  // plugins' `authenticate` hooks, in order; none configured costs nothing.
  const hooks = broker.plugins.authenticate
  if (hooks.length === 0 && !exchange) return admitOrFetch(admission)
  const certificate = client.conn.certificateUsername !== undefined
  const request = { clientId, username: client.username, protocolVersion: version, address: client.remoteAddress, password: packet.password, certificate }
  if (exchange) {
    client.auth = { method: method!, waiter: null }
    return settleExchange(admission, method!, runExchange(client, exchange, method!, props?.authenticationData, request, false))
  }
  const verdict = decide(hooks, request, undefined, broker.plugins.decisionError.authenticate)
  if (verdict instanceof Promise) return settleLater(admission, verdict)
  return settle(admission, verdict)
}

// The continuations live apart from handleConnect, so that it captures nothing (no scope object per CONNECT).

function settleLater(a: Admission, verdict: Promise<Verdict>): Promise<void> {
  return verdict.then((v) => settle(a, v))
}

function settleExchange(a: Admission, method: string, exchange: ReturnType<typeof runExchange>): Promise<void> {
  return exchange.then((ended) => {
    if (ended.result === 'fail') return settle(a, { allowed: false, reasonCode: ended.reasonCode, reasonString: ended.reasonString ?? 'authentication failed' })
    // [MQTT-3.2.2-...] CONNACK carries the method, and the server's last data of the exchange.
    a.connack.authenticationMethod = method
    if (ended.data) a.connack.authenticationData = ended.data
    return settle(a, { allowed: true, grant: ended.grant && { decision: 'allow', ...ended.grant } })
  })
}

interface Admission {
  client: Client
  packet: ConnectPacket
  clientId: string
  /** The session expiry interval settled for this connection. */
  expiry: number
  will: Will | undefined
  /** CONNACK's properties (MQTT 5; for 3.1/3.1.1 a frozen empty object nothing writes to). */
  connack: ConnackProperties
}

/** The plugins' verdict on CONNECT: what they granted is applied, then the client is admitted, or refused. */
function settle(a: Admission, verdict: Verdict): void | Promise<void> {
  const { client, clientId } = a
  const broker = client.broker
  if (client.state !== 'connecting') return // the socket went away while we were deciding
  if (verdict.allowed && verdict.grant) {
    const { acl, expiresAt, maxPayloadBytes, maxRetained, maxSubscriptions, rate } = verdict.grant
    if (expiresAt !== undefined && expiresAt <= broker.clock.now()) return refuse(client, Reason.NotAuthorized, 'access expired')
    client.granted = { acl: acl ? addRules(emptyRules(), acl, { username: client.username, clientId }) : null, timer: undefined, maxPayloadBytes, maxRetained, maxSubscriptions, rate }
    if (expiresAt !== undefined) {
      // MQTT 5: 0xA0 Maximum connect time, the code for "the connection was allowed this long"; 3.1.1 is closed.
      client.granted.timer = broker.clock.setTimeout(() => client.disconnect(Reason.MaximumConnectTime, 'access expired'), expiresAt - broker.clock.now())
    }
  }
  if (verdict.allowed) return admitOrFetch(a)
  broker.bans.authFailed(client.remoteAddress, clientId, broker.clock.now())
  refuse(client, refusalCode('connack', verdict.reasonCode, Reason.NotAuthorized), verdict.reasonString ?? 'not authorized') // [MQTT-3.2.2-7]
}

/** A session that lives on another node is fetched first (cluster); the client's packets wait meanwhile. */
function admitOrFetch(a: Admission): void | Promise<void> {
  const { client, clientId } = a
  const broker = client.broker
  const fetchSession = broker.plugins.fetchSession
  if (!fetchSession || a.packet.clean !== false || broker.hasSession(clientId)) return admit(a)
  return fetchSession(clientId).then(
    (stored) => {
      if (client.state !== 'connecting') return
      if (stored && !broker.hasSession(clientId)) broker.adoptSession(stored)
      admit(a)
    },
    (error: unknown) => {
      broker.pluginError('fetchSession', error)
      if (client.state === 'connecting') refuse(client, Reason.ServerUnavailable, 'could not fetch the session')
    },
  )
}

function admit(a: Admission): void {
  const { client, connack } = a
  const broker = client.broker
  const limits = broker.limits
  const version = client.version
  // Inbound rate limits: the listener's own (or the broker's), with what a plugin granted this client over them.
  const limit = rateLimit(client.listenerRate ?? limits.rate, client.granted?.rate)
  if (limit) client.rate = new RateBucket(limit, broker.clock.now())
  const { session, present } = broker.openSession(client, a.clientId, a.packet.clean !== false, a.expiry)
  session.will = a.will
  client.state = 'connected'
  if (version === 5) {
    connack.receiveMaximum = limits.receiveMaximum
    connack.maximumPacketSize = limits.maxPacketSize
    connack.topicAliasMaximum = limits.topicAliasMaximum
    connack.retainAvailable = true
    connack.wildcardSubscriptionAvailable = true
    connack.subscriptionIdentifiersAvailable = true
    connack.sharedSubscriptionAvailable = true
    client.send({ cmd: 'connack', sessionPresent: present, reasonCode: 0, properties: connack })
  } else {
    // MQTT 3.1 has no session-present flag; 3.1/3.1.1 acceptances are constant and encoded once.
    client.outbound.push(ACCEPTED[version === 4 && present ? 1 : 0]!)
  }
  broker.connected(client, present)
}

/** The CONNACK properties of a 3.1/3.1.1 connection: none, and frozen so that a write by mistake throws. */
const NO_PROPERTIES: ConnackProperties = Object.freeze({})

const ACCEPTED = [false, true].map((sessionPresent) => encode({ cmd: 'connack', sessionPresent, returnCode: 0 }, 4))

function refuse(client: Client, reasonCode: number, why: string, log = true): void {
  const packet: ConnackPacket = { cmd: 'connack', sessionPresent: false }
  if (client.version === 5) {
    packet.reasonCode = reasonCode
    packet.properties = { reasonString: why }
  } else {
    packet.returnCode = connackReturnCode(reasonCode)
  }
  client.send(packet)
  if (log) client.broker.logger.info('client.refused', { clientId: client.clientId || undefined, address: client.remoteAddress, reason: why })
  client.close(`refused: ${why}`)
}
