/** Listener TLS settings → Bun's TLS options (files read by Bun), and the peer certificate's common name. */
import type { TlsConfig } from '../config.ts'

export function bunTls(tls: TlsConfig) {
  return {
    cert: Bun.file(tls.cert),
    key: Bun.file(tls.key),
    ca: tls.ca ? Bun.file(tls.ca) : undefined,
    requestCert: tls.requestCert,
    rejectUnauthorized: true,
  }
}

/** The CN of a verified peer certificate, or undefined. */
export function commonName(peer: { subject?: { CN?: string | string[] } } | undefined): string | undefined {
  const cn = peer?.subject?.CN
  return Array.isArray(cn) ? cn[0] : cn || undefined
}
