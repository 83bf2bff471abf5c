/**
 * Cluster benchmark: fan-in and fan-out across 1, 2 and 3 Midge nodes on one nats-server (JetStream), on 127.0.0.1.
 * Clients are spread over the nodes round-robin. Reports throughput, latency and the CPU cost per delivered message
 * of the nodes plus NATS, so the cluster path's cost can be compared with a single node.
 *   bun bench/cluster.ts [--duration 5] [--nodes 1,2,3]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuSeconds } from './brokers.ts'
import { BenchClient, freePort, HOST, now, waitForPort } from './client.ts'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { duration: { type: 'string', default: '5' }, nodes: { type: 'string', default: '1,2,3' }, out: { type: 'string', default: join(import.meta.dir, 'results') } } })
const durationS = Number(values.duration)
const root = join(import.meta.dir, '..')
const natsServer = Bun.which('nats-server') ?? '/usr/sbin/nats-server'

const waitPort = (port: number) => waitForPort(port)

interface Cluster {
  ports: number[]
  pids: number[]
  stop(): Promise<void>
}

async function startCluster(nodes: number): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'midge-cluster-bench-'))
  const natsPort = freePort()
  const nats = Bun.spawn([natsServer, '-js', '-a', HOST, '-p', String(natsPort), '-sd', join(dir, 'js')], { stdout: 'ignore', stderr: 'ignore' })
  await waitPort(natsPort)
  const procs = [nats]
  const ports: number[] = []
  for (let i = 0; i < nodes; i++) {
    const port = freePort()
    const config = join(dir, `node${i}.config.ts`)
    const cluster = nodes > 1 ? `cluster: { nats: { servers: 'nats://${HOST}:${natsPort}', name: 'bench' }, nodeId: 'n${i}' },` : ''
    writeFileSync(config, `export default { listeners: [{ type: 'tcp', host: '${HOST}', port: ${port} }], log: { level: 'warn' }, sys: { intervalSeconds: 0 }, limits: { maxQueuedMessages: 10000000, maxQueuedBytes: 2147483648 }, ${cluster} }\n`)
    procs.push(Bun.spawn([process.execPath, join(root, 'src/main.ts'), '--config', config], { stdout: 'ignore', stderr: 'ignore' }))
    ports.push(port)
    await waitPort(port)
  }
  return {
    ports,
    pids: procs.map((p) => p.pid),
    async stop() {
      for (const p of procs.reverse()) {
        p.kill('SIGTERM')
        await p.exited
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

const cpuOf = (pids: number[]) => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)

async function fanIn(c: Cluster): Promise<Record<string, number>> {
  const sub = await BenchClient.connect(c.ports[0]!, 'sub')
  await sub.subscribe('bench/#', 0)
  let received = 0
  sub.onPublish = () => received++
  const pubs = await Promise.all([0, 1, 2, 3].map((i) => BenchClient.connect(c.ports[i % c.ports.length]!, `pub${i}`)))
  await Bun.sleep(300)
  const batch = pubs.map((p, i) => Buffer.concat(Array(200).fill(p.encode({ cmd: 'publish', topic: `bench/${i}`, payload: Buffer.alloc(64, 120), qos: 0, retain: false, dup: false }))))
  const cpu0 = cpuOf(c.pids)
  const start = now()
  const end = start + durationS * 1000
  let sent = 0
  await Promise.all(
    pubs.map(async (p, i) => {
      while (now() < end) {
        await p.write(batch[i]!)
        sent += 200
        await Bun.sleep(0)
      }
    }),
  )
  let last = received
  let lastAt = now()
  while (now() - lastAt < 500 && now() - end < 10_000) {
    await Bun.sleep(50)
    if (received !== last) {
      last = received
      lastAt = now()
    }
  }
  const cpu = cpuOf(c.pids) - cpu0
  for (const x of [sub, ...pubs]) x.end()
  return { msgsPerSec: received / ((lastAt - start) / 1000), delivered: received / sent, cpuUsPerMessage: (cpu / received) * 1e6 }
}

async function fanOut(c: Cluster): Promise<Record<string, number>> {
  const subs = await Promise.all(Array.from({ length: 60 }, (_, i) => BenchClient.connect(c.ports[i % c.ports.length]!, `s${i}`)))
  await Promise.all(subs.map((s) => s.subscribe('fan', 0)))
  const latencies: number[] = []
  let delivered = 0
  for (const s of subs) s.onPublish = (m) => (delivered++, latencies.push(now() - Buffer.from(m.payload!.buffer, m.payload!.byteOffset, 8).readDoubleLE(0)))
  const pub = await BenchClient.connect(c.ports[0]!, 'p')
  await Bun.sleep(300)
  const cpu0 = cpuOf(c.pids)
  const start = now()
  let sent = 0
  while (now() - start < durationS * 1000) {
    const packets = []
    for (let k = 0; k < 5; k++) {
      const payload = Buffer.alloc(16)
      payload.writeDoubleLE(now(), 0)
      packets.push(pub.encode({ cmd: 'publish', topic: 'fan', payload, qos: 0, retain: false, dup: false }))
    }
    await pub.write(Buffer.concat(packets))
    sent += 5
    await Bun.sleep(5)
  }
  await Bun.sleep(1000)
  const cpu = cpuOf(c.pids) - cpu0
  for (const x of [pub, ...subs]) x.end()
  latencies.sort((x, y) => x - y)
  return { deliveriesPerSec: delivered / ((now() - start - 1000) / 1000), completeness: delivered / (sent * subs.length), p50Ms: latencies[Math.floor(latencies.length / 2)]!, p99Ms: latencies[Math.floor(latencies.length * 0.99)]!, cpuUsPerDelivery: (cpu / delivered) * 1e6 }
}

const rows: string[] = []
for (const n of values.nodes!.split(',').map(Number)) {
  for (const [name, run] of [['fan-in', fanIn], ['fan-out', fanOut]] as const) {
    const cluster = await startCluster(n)
    try {
      const figures = await run(cluster)
      const line = `| ${n} | ${name} | ${Object.entries(figures).map(([k, v]) => `${k} ${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(3)}`).join(', ')} |`
      console.error(line)
      rows.push(line)
    } finally {
      await cluster.stop()
    }
  }
}
const md = [`# Midge cluster benchmark`, '', `${new Date().toISOString().slice(0, 10)} · ${durationS} s per run · one nats-server with JetStream; 1 node = no cluster section (plain Midge). CPU per message counts every node and NATS.`, '', '| nodes | scenario | figures |', '|---|---|---|', ...rows, '']
mkdirSync(values.out!, { recursive: true })
writeFileSync(join(values.out!, 'cluster.md'), md.join('\n'))
console.log(md.join('\n'))
