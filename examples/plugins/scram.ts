/**
 * An example of MQTT 5 enhanced authentication (section 4.12): SCRAM-SHA-256 (RFC 5802, RFC 7677), the
 * challenge/response in which the password never crosses the wire and the client checks the server too.
 *
 *   import { scram, scramCredentials } from './examples/plugins/scram.ts'
 *   plugins: [scram({ users: { alice: scramCredentials('her password') } })]
 *
 * Keep only the credentials (salt, iterations, StoredKey, ServerKey) in a real deployment, not the passwords:
 * `scramCredentials` makes them once. The exchange (the client's messages come as Authentication Data):
 *   client-first  `n,,n=<user>,r=<client nonce>`                    → AUTH 0x18 `r=<nonce>,s=<salt>,i=<iterations>`
 *   client-final  `c=biws,r=<nonce>,p=<proof>`                        → CONNACK 0 (or AUTH 0x00) `v=<server signature>`
 * A wrong proof gets CONNACK 0x87 (on re-authentication, DISCONNECT 0x87).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthExchangeAnswer, Plugin } from '../../src/index.ts'

export interface ScramCredentials {
  salt: string // base64
  iterations: number
  storedKey: string // base64
  serverKey: string // base64
}

const METHOD = 'SCRAM-SHA-256'
const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest()
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest()

/** The credentials a server keeps for a password (RFC 5802 section 3). */
export function scramCredentials(password: string, iterations = 4096, salt = randomBytes(16)): ScramCredentials {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256')
  return { salt: salt.toString('base64'), iterations, storedKey: sha256(hmac(salted, 'Client Key')).toString('base64'), serverKey: hmac(salted, 'Server Key').toString('base64') }
}

/** `a=1,b=2` as { a: '1', b: '2' } (values may hold '='). */
function attributes(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of text.split(',')) {
    const at = part.indexOf('=')
    if (at > 0) out[part.slice(0, at)] = part.slice(at + 1)
  }
  return out
}

interface Pending {
  user: string
  nonce: string
  clientFirstBare: string
  serverFirst: string
  credentials: ScramCredentials
}

export function scram(options: { users: Record<string, ScramCredentials> }): Plugin {
  const fail = (reasonString: string): AuthExchangeAnswer => ({ result: 'fail', reasonCode: 0x87, reasonString })
  return {
    name: 'scram',
    authMethods: [METHOD],
    authExchange({ data, state, client }) {
      const text = data?.toString('utf8') ?? ''
      if (state === undefined) {
        // client-first: GS2 header "n,," (no channel binding), then n=<user>,r=<nonce>.
        if (!text.startsWith('n,,')) return fail('expected a SCRAM client-first message without channel binding')
        const clientFirstBare = text.slice(3)
        const { n: user, r: clientNonce } = attributes(clientFirstBare)
        const credentials = user === undefined ? undefined : options.users[user]
        if (!user || !clientNonce || !credentials) return fail('unknown user')
        if (client.username !== undefined && client.username !== user) return fail('the SCRAM user is not the MQTT username')
        const nonce = clientNonce + randomBytes(18).toString('base64')
        const serverFirst = `r=${nonce},s=${credentials.salt},i=${credentials.iterations}`
        const next: Pending = { user, nonce, clientFirstBare, serverFirst, credentials }
        return { result: 'continue', data: Buffer.from(serverFirst), state: next }
      }
      // client-final: c=biws,r=<nonce>,p=<proof>; the proof is checked against the StoredKey.
      const pending = state as Pending
      const { c: binding, r: nonce, p: proof } = attributes(text)
      if (binding !== 'biws' || nonce !== pending.nonce || !proof) return fail('unexpected SCRAM client-final message')
      const withoutProof = text.slice(0, text.lastIndexOf(',p='))
      const authMessage = `${pending.clientFirstBare},${pending.serverFirst},${withoutProof}`
      const storedKey = Buffer.from(pending.credentials.storedKey, 'base64')
      const clientSignature = hmac(storedKey, authMessage)
      const clientProof = Buffer.from(proof, 'base64')
      if (clientProof.length !== clientSignature.length) return fail('wrong proof')
      const clientKey = Buffer.from(clientProof.map((byte, i) => byte ^ clientSignature[i]!))
      if (!timingSafeEqual(sha256(clientKey), storedKey)) return fail('wrong proof')
      const serverSignature = hmac(Buffer.from(pending.credentials.serverKey, 'base64'), authMessage)
      return { result: 'success', data: Buffer.from(`v=${serverSignature.toString('base64')}`) }
    },
  }
}
