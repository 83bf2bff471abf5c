/** MQTT over WebSocket's subprotocols (MQTT 5.0 section 6), shared by every runtime's WebSocket listener. */
const SUBPROTOCOLS = ['mqtt', 'mqttv3.1']

/** The subprotocol to answer a WebSocket upgrade with: the first of ours the client offers, or undefined. */
export function mqttSubprotocol(req: Request): string | undefined {
  const offered = (req.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim())
  return SUBPROTOCOLS.find((p) => offered.includes(p))
}

/** The refusal of an upgrade that offers no MQTT subprotocol [MQTT-6.0.0-3]. */
export const NO_SUBPROTOCOL = 'MQTT over WebSocket needs the "mqtt" subprotocol'
