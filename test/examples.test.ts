import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'

const root = join(import.meta.dir, '..')
let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

/** Runs a process and collects its stdout lines. */
function run(args: string[]) {
  const proc = Bun.spawn([process.execPath, ...args], { cwd: root, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' })
  const lines: string[] = []
  ;(async () => {
    const decoder = new TextDecoder()
    let rest = ''
    for await (const chunk of proc.stdout) {
      rest += decoder.decode(chunk)
      const parts = rest.split('\n')
      rest = parts.pop()!
      lines.push(...parts)
    }
  })()
  return { proc, lines }
}

describe('examples/chat.ts (the tutorial chat)', () => {
  test('two users with usernames in the broker URL see each other\'s lines', async () => {
    const url = `mqtt://127.0.0.1:${b.port}`
    const alice = run(['examples/chat.ts', '--user', 'alice', '--password', 'pw-a', '--url', url, '--room', 'test'])
    const bob = run(['examples/chat.ts', '--user', 'bob', '--password', 'pw-b', '--url', url, '--room', 'test'])
    try {
      await until(() => alice.lines.some((l) => l.startsWith('* connected')) && bob.lines.some((l) => l.startsWith('* connected')), 10000, 'both connected')
      alice.proc.stdin.write('hello bob\n')
      alice.proc.stdin.flush()
      await until(() => bob.lines.includes('alice: hello bob'), 5000, 'bob sees alice')
      bob.proc.stdin.write('hi alice\n')
      bob.proc.stdin.flush()
      await until(() => alice.lines.includes('bob: hi alice'), 5000, 'alice sees bob')
      const connected = b.logs.filter((l) => l.event === 'client.connected').map((l) => l.username)
      expect(connected).toContain('alice')
      expect(connected).toContain('bob')
    } finally {
      alice.proc.stdin.end()
      bob.proc.stdin.end()
      await Promise.all([alice.proc.exited, bob.proc.exited])
    }
  })
})
