/**
 * A local cluster in one command: a nats-server with JetStream on 127.0.0.1:4222 and three Midge nodes on
 * MQTT ports 1883, 1884 and 1885 (HTTP 8080, 8081, 8082), logs interleaved; Ctrl-C stops them all.
 *   npm run cluster:local        (needs Debian's nats-server: apt-get install nats-server)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const natsServer = Bun.which('nats-server') ?? '/usr/sbin/nats-server'
const dir = mkdtempSync(join(tmpdir(), 'midge-cluster-'))
const root = join(import.meta.dir, '..')
const procs: ReturnType<typeof Bun.spawn>[] = []

procs.push(Bun.spawn([natsServer, '-js', '-a', '127.0.0.1', '-p', '4222', '-sd', join(dir, 'jetstream')], { stdout: 'inherit', stderr: 'inherit' }))
await Bun.sleep(500)
for (let i = 0; i < 3; i++) {
  const config = join(dir, `node${i + 1}.config.ts`)
  writeFileSync(
    config,
    `export default {
  listeners: [{ type: 'tcp', host: '127.0.0.1', port: ${1883 + i} }],
  http: { host: '127.0.0.1', port: ${8080 + i}, anonymousScopes: ['read', 'publish'] },
  cluster: { nats: { servers: 'nats://127.0.0.1:4222', name: 'local' }, nodeId: 'node${i + 1}' },
}\n`,
  )
  procs.push(Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config', config], { cwd: root, stdout: 'inherit', stderr: 'inherit' }))
}
console.error('midge: 3 nodes on mqtt://127.0.0.1:1883, :1884, :1885 (HTTP :8080-8082), NATS on :4222. Ctrl-C stops them.')

const stop = async () => {
  for (const p of procs.reverse()) p.kill('SIGTERM')
  await Promise.all(procs.map((p) => p.exited))
  rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGINT', () => void stop())
process.on('SIGTERM', () => void stop())
