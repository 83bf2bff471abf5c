/** A throwaway CA, a server certificate for 127.0.0.1 and client certificates, made with openssl at test time. */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Certs {
  dir: string
  ca: string
  serverCert: string
  serverKey: string
  /** Signed by the CA, CN=alice. */
  clientCert: string
  clientKey: string
  /** Self-signed, CN=mallory: not trusted by the broker. */
  untrustedCert: string
  untrustedKey: string
}

function openssl(args: string[], cwd: string): void {
  const result = Bun.spawnSync(['openssl', ...args], { cwd, stderr: 'pipe' })
  if (result.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.toString()}`)
}

export function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'midge-certs-'))
  const days = ['-days', '2']
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=Midge Test CA', ...days], dir)
  const signed = (name: string, cn: string, ext: string) => {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir)
    writeFileSync(join(dir, `${name}.ext`), ext)
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-extfile', `${name}.ext`, ...days], dir)
  }
  signed('server', 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  signed('client', 'alice', 'extendedKeyUsage=clientAuth\n')
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'untrusted.key', '-out', 'untrusted.pem', '-subj', '/CN=mallory', ...days], dir)
  const p = (f: string) => join(dir, f)
  return { dir, ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'), clientCert: p('client.pem'), clientKey: p('client.key'), untrustedCert: p('untrusted.pem'), untrustedKey: p('untrusted.key') }
}
