/** Starts and stops the brokers under test, each as its own process on 127.0.0.1, and reads their CPU and memory. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, HOST, waitForPort } from './client.ts'

export type BrokerName = 'midge' | 'midge-default' | 'midge-deno' | 'mosquitto' | 'mosquitto-nq' | 'aedes' | 'relay' | 'relay-codec'

export interface RunningBroker {
  name: BrokerName
  port: number
  /** midge-default: its HTTP API's port, and the admin token it was started with. */
  http?: { port: number; token: string }
  pid: number
  stop(): Promise<void>
}

const root = join(import.meta.dir, '..')


export function available(name: BrokerName): boolean {
  if (name.startsWith('mosquitto')) return Bun.which('mosquitto') !== null || Bun.which('/usr/sbin/mosquitto') !== null
  if (name === 'aedes') return Bun.which('node') !== null
  if (name === 'midge-deno') return existsSync(join(root, 'node_modules', '.bin', 'deno'))
  return true
}

export async function startBroker(name: BrokerName, attempt = 1): Promise<RunningBroker> {
  const port = freePort()
  let cmd: string[]
  let cwd = root
  let http: RunningBroker['http']
  const env: Record<string, string | undefined> = { ...process.env }
  if (name === 'midge') {
    cmd = [process.execPath, join(root, 'src/main.ts'), '--config', join(import.meta.dir, 'midge.config.ts'), '--port', String(port)]
  } else if (name === 'midge-default') {
    // What `npm start` runs: the checked-in mqtt.config.ts (auth with ACLs, sqlite, HTTP API, $SYS, info logs),
    // its ./data in a directory of its own and its HTTP API on a free port.
    cwd = mkdtempSync(join(tmpdir(), 'midge-bench-default-'))
    http = { port: freePort(), token: `bench-${Math.random().toString(36).slice(2)}-token` }
    env.HTTP_PORT = String(http.port)
    env.MIDGE_ADMIN_TOKEN = http.token
    cmd = [process.execPath, join(root, 'src/main.ts'), '--config', join(root, 'mqtt.config.ts'), '--port', String(port)]
  } else if (name === 'midge-deno') {
    // The bare broker (bench/midge.config.ts) under Deno (the npm package's binary), for the runtimes side by side.
    cmd = [join(root, 'node_modules', '.bin', 'deno'), 'run', '-A', join(root, 'src/main.ts'), '--config', join(import.meta.dir, 'midge.config.ts'), '--port', String(port)]
  } else if (name.startsWith('relay')) {
    cmd = [process.execPath, join(import.meta.dir, 'relay.ts'), String(port), ...(name === 'relay-codec' ? ['--codec'] : [])]
  } else if (name === 'aedes') {
    cmd = ['node', join(import.meta.dir, 'aedes-server.mjs'), String(port)]
  } else {
    const dir = mkdtempSync(join(tmpdir(), 'midge-bench-'))
    const conf = join(dir, 'mosquitto.conf')
    const lines = [`listener ${port} ${HOST}`, 'allow_anonymous true', 'log_type error']
    // The second Mosquitto run queues without limit and sets TCP_NODELAY, so it does not drop QoS 1.
    if (name === 'mosquitto-nq') lines.push('max_queued_messages 0', 'set_tcp_nodelay true')
    writeFileSync(conf, lines.join('\n') + '\n')
    cmd = [Bun.which('mosquitto') ?? '/usr/sbin/mosquitto', '-c', conf]
  }
  // BENCH_BROKER_STDERR=1 shows what a broker prints on stderr (for debugging a run).
  const proc = Bun.spawn(cmd, { cwd, env, stdout: 'ignore', stderr: process.env.BENCH_BROKER_STDERR ? 'inherit' : 'ignore' })
  try {
    // A broker that exits at once lost its port to someone else meanwhile: try another.
    if (!(await waitForPort(port, () => proc.exitCode !== null)) && attempt < 3) return startBroker(name, attempt + 1)
  } catch (error) {
    proc.kill('SIGKILL')
    throw new Error(`${name} did not start: ${(error as Error).message}`)
  }
  if (http) await waitForPort(http.port, () => proc.exitCode !== null)
  return {
    name,
    port,
    http,
    pid: proc.pid,
    async stop() {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000)
      await proc.exited
      clearTimeout(timer)
      if (cwd !== root) rmSync(cwd, { recursive: true, force: true })
    },
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100 Hz)
}

/** Resident memory of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1]
  return Number(kb ?? 0) * 1024
}
