/** A real nats-server with JetStream on 127.0.0.1 and a free port, with a temporary store. */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from '../../bench/client.ts'

export const natsServerPath = Bun.which('nats-server') ?? (Bun.which('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null)

export interface NatsServer {
  url: string
  port: number
  /** nats-server's monitoring endpoint (`-m`): /varz, /connz, /subsz. */
  monitorUrl: string
  stop(signal?: NodeJS.Signals | number): Promise<void>
  /** Starts it again on the same port and store. */
  restart(): Promise<void>
  /** Stops it and removes its store. */
  close(): Promise<void>
}


export async function startNats(): Promise<NatsServer> {
  const port = freePort()
  const monitor = freePort()
  const store = mkdtempSync(join(tmpdir(), 'midge-nats-'))
  let proc: ReturnType<typeof Bun.spawn>
  const launch = async () => {
    proc = Bun.spawn([natsServerPath!, '-js', '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-sd', store], { stdout: 'ignore', stderr: 'ignore' })
    await waitForPort(port)
    await waitForPort(monitor)
  }
  await launch()
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    monitorUrl: `http://127.0.0.1:${monitor}`,
    async stop(signal = 'SIGTERM') {
      proc.kill(signal)
      await proc.exited
    },
    restart: launch,
    async close() {
      proc.kill('SIGTERM')
      await proc.exited
      rmSync(store, { recursive: true, force: true })
    },
  }
}
