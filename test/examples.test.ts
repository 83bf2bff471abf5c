import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { spawnLines } from './helpers/process.ts'

let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

describe('examples/chat.ts (the tutorial chat)', () => {
  test('two users with usernames in the broker URL see each other\'s lines', async () => {
    const url = `mqtt://127.0.0.1:${b.port}`
    const alice = spawnLines(['examples/chat.ts', '--user', 'alice', '--password', 'pw-a', '--url', url, '--room', 'test'])
    const bob = spawnLines(['examples/chat.ts', '--user', 'bob', '--password', 'pw-b', '--url', url, '--room', 'test'])
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
