/**
 * jwt({ secret | publicKey | jwksUrl, ... }): clients connect with a JSON Web Token as the MQTT password, as browser
 * and mobile apps do with the token their login gave them. Verified with `jose` (the maintained JOSE library for
 * JavaScript runtimes).
 *
 * - The signature is checked with the secret (HS*), the public key (PEM: RS*, PS*, ES*, EdDSA) or the issuer's
 *   JWKS (fetched, cached, fetched again for a key id it does not know). Only `algorithms` are accepted; `none`
 *   never is. `exp`, `nbf`, and if configured `aud` and `iss`, are checked, within `clockToleranceSeconds`.
 * - The MQTT username must equal the token's `usernameClaim` (`sub` by default).
 * - `aclClaim` (`acl` by default), when the token has it: `{ publish?: [...], subscribe?: [...], deny?: {...} }`,
 *   filters with `%u` and `%c`: what this client may do while connected (the broker checks it).
 * - When `exp` passes while the client is connected, the broker disconnects it: MQTT 5 DISCONNECT 0xA0 (Maximum
 *   connect time); a 3.1.1 client is closed.
 * - A client without a token (no password) is refused when `required` (the default), or left to the next plugin.
 * Refusals are CONNACK 0x86 (bad user name or password) with what was wrong as the reason; the token never appears in
 * the log.
 */
import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { z } from 'zod'
import { type Decision, type Logger, type Plugin, Reason, validatePluginOptions } from '../src/index.ts'
import { pemText } from './pem.ts'

const Lists = z.object({
  publish: z.array(z.string()).optional(),
  subscribe: z.array(z.string()).optional(),
  deny: z.object({ publish: z.array(z.string()).optional(), subscribe: z.array(z.string()).optional() }).optional(),
})

const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const

const Options = z
  .strictObject({
    /** HMAC secret (HS256/384/512). */
    secret: z.string().min(32, 'expected a secret of at least 32 characters').optional(),
    /** Public key, PEM text or a PEM file's path (RS*, PS*, ES*, EdDSA). */
    publicKey: z.string().min(1).optional(),
    /** The issuer's JSON Web Key Set. */
    jwksUrl: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
    /** The only algorithms accepted ("none" never is). */
    algorithms: z.array(z.enum(ALGORITHMS)).min(1).optional(),
    audience: z.union([z.string(), z.array(z.string())]).optional(),
    issuer: z.union([z.string(), z.array(z.string())]).optional(),
    /** The claim the MQTT username must equal. */
    usernameClaim: z.string().min(1).default('sub'),
    /** The claim holding the client's ACL, if any. */
    aclClaim: z.string().min(1).default('acl'),
    clockToleranceSeconds: z.number().min(0).max(300).default(5),
    /** How long fetched keys are kept before the JWKS is fetched again. */
    jwksCacheSeconds: z.number().int().min(1).default(600),
    /** A token with a key id the cached set lacks fetches the JWKS again, at most this often (a rotated-in key). */
    jwksCooldownSeconds: z.number().min(0).default(30),
    /** A client without a token is refused (true) or left to the next plugin (false). */
    required: z.boolean().default(true),
  })
  .superRefine((o, ctx) => {
    const keys = [o.secret, o.publicKey, o.jwksUrl].filter((k) => k !== undefined).length
    if (keys !== 1) ctx.addIssue({ code: 'custom', path: ['secret'], message: 'expected exactly one of secret, publicKey or jwksUrl' })
  })

export type JwtOptions = z.input<typeof Options>

export function jwt(options: JwtOptions): Plugin {
  const config = validatePluginOptions('jwt', Options, options)
  let key: Uint8Array | KeyObject | JWTVerifyGetKey
  let algorithms: string[]
  if (config.secret !== undefined) {
    key = new TextEncoder().encode(config.secret)
    algorithms = config.algorithms ?? ['HS256']
  } else if (config.publicKey !== undefined) {
    key = createPublicKey(pemText(config.publicKey))
    algorithms = config.algorithms ?? ['RS256', 'ES256', 'EdDSA']
  } else {
    key = createRemoteJWKSet(new URL(config.jwksUrl!), { cacheMaxAge: config.jwksCacheSeconds * 1000, cooldownDuration: config.jwksCooldownSeconds * 1000, timeoutDuration: 5000 })
    algorithms = config.algorithms ?? ['RS256', 'ES256']
  }
  let logger: Logger | undefined

  function refused(clientId: string, address: string, why: string): Decision {
    logger?.warn('jwt.refused', { clientId, address, reason: why })
    return { decision: 'deny', reasonCode: Reason.BadUsernameOrPassword, reasonString: why }
  }

  return {
    name: 'jwt',
    start(ctx) {
      logger = ctx.logger
      ctx.logger.info('jwt.started', { key: config.secret ? 'secret' : config.publicKey ? 'public key' : config.jwksUrl, algorithms, audience: config.audience, issuer: config.issuer })
    },
    async authenticate(request) {
      if (request.password === undefined || request.password.length === 0) {
        return config.required ? refused(request.clientId, request.address, 'a token is required as the password') : 'abstain'
      }
      const token = request.password.toString('utf8')
      let payload: Record<string, unknown>
      try {
        ;({ payload } = await jwtVerify(token, key as Uint8Array, { algorithms, audience: config.audience, issuer: config.issuer, clockTolerance: config.clockToleranceSeconds }))
      } catch (error) {
        return refused(request.clientId, request.address, describe(error))
      }
      const name = payload[config.usernameClaim]
      if (typeof name !== 'string' || request.username !== name) return refused(request.clientId, request.address, `the username is not the token's ${config.usernameClaim}`)
      let acl: z.infer<typeof Lists> | undefined
      if (payload[config.aclClaim] !== undefined) {
        const parsed = Lists.safeParse(payload[config.aclClaim])
        if (!parsed.success) return refused(request.clientId, request.address, `the ${config.aclClaim} claim is not { publish?, subscribe?, deny? } lists of filters`)
        acl = parsed.data
      }
      return { decision: 'allow', acl, expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined }
    },
  }
}

/** Why a token was refused, in words a client may be told (never the token). */
function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired'
  if (error instanceof errors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not accepted`
  if (error instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not accepted"
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify"
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the issuer matches the token'
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) return 'the password is not a valid token'
  return `the token could not be verified (${(error as Error)?.name ?? 'error'})`
}
