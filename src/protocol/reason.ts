/**
 * MQTT 5 reason codes the broker sends (OASIS MQTT 5.0, section 2.4), and the
 * MQTT 3.1.1 CONNACK return codes they map to (section 3.2.2.3).
 */
export const Reason = {
  Success: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUsernameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  SharedSubscriptionsNotSupported: 0x9e,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const
export type ReasonCode = (typeof Reason)[keyof typeof Reason]

/** MQTT 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3). */
const v4ConnackCode: Partial<Record<number, number>> = {
  [Reason.Success]: 0,
  [Reason.UnsupportedProtocolVersion]: 1,
  [Reason.ClientIdentifierNotValid]: 2,
  [Reason.ServerUnavailable]: 3,
  [Reason.ServerBusy]: 3,
  [Reason.ServerShuttingDown]: 3,
  [Reason.BadUsernameOrPassword]: 4,
  [Reason.NotAuthorized]: 5,
  [Reason.Banned]: 5,
}

/** The CONNACK return code a 3.1/3.1.1 client gets for an MQTT 5 reason code. */
export function connackReturnCode(reason: number): number {
  return v4ConnackCode[reason] ?? 3
}

/** The error reason codes (0x80 and up) each packet the broker sends may carry (MQTT 5.0 sections 3.2.2.2 to 3.14.2.1). */
const ERROR_CODES = {
  connack: [0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8c, 0x90, 0x95, 0x97, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9f],
  puback: [0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  suback: [0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2],
  disconnect: [0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8b, 0x8d, 0x8e, 0x8f, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2],
} as const
const errorCodes = Object.fromEntries(Object.entries(ERROR_CODES).map(([packet, codes]) => [packet, new Set<number>(codes)])) as Record<keyof typeof ERROR_CODES, Set<number>>

/**
 * A refusal's code as `packet` may carry it: a plugin may deny with any number, but the broker only ever sends a
 * code the spec allows there (PUBREC takes PUBACK's). One it does not allow becomes `fallback`.
 */
export function refusalCode(packet: keyof typeof ERROR_CODES, code: number | undefined, fallback: number): number {
  return code !== undefined && errorCodes[packet].has(code) ? code : fallback
}
