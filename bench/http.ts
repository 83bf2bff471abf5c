/**
 * Publishing over HTTP on the default config (`midge-default`: auth with ACLs, sqlite): POST /api/v1/publish with
 * a bearer token, anonymously, and with HTTP Basic as a user of the auth plugin (alice, the demo password), each
 * with `concurrency` requests in flight for `duration` seconds. Basic used to cost an argon2id verification per
 * request; the auth plugin now remembers a verified password (verifiedCacheSeconds).
 *
 *   bun bench/http.ts [--duration 5] [--concurrency 32]
 */
import { parseArgs } from 'node:util'
import { startBroker } from './brokers.ts'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { duration: { type: 'string', default: '5' }, concurrency: { type: 'string', default: '32' } } })
const seconds = Number(values.duration)
const concurrency = Number(values.concurrency)

const broker = await startBroker('midge-default')
const { port, token } = broker.http!
const url = `http://127.0.0.1:${port}/api/v1/publish`
const body = JSON.stringify({ topic: 'bench/http', payload: 'x'.repeat(64) })
const ways: Array<[string, Record<string, string>]> = [
  ['bearer token', { authorization: `Bearer ${token}` }],
  ['anonymous', {}],
  ['HTTP Basic (alice)', { authorization: `Basic ${Buffer.from(`alice:${process.env.MIDGE_DEMO_PASSWORD ?? 'midge'}`).toString('base64')}` }],
]

const rates: Record<string, number> = {}
try {
  for (const [name, auth] of ways) {
    const headers = { 'content-type': 'application/json', ...auth }
    const post = async () => {
      const res = await fetch(url, { method: 'POST', headers, body })
      if (res.status !== 200) throw new Error(`${name}: HTTP ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
    }
    await Promise.all(Array.from({ length: concurrency }, post)) // warm up (and the first Basic verification)
    let done = 0
    const end = performance.now() + seconds * 1000
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          await post()
          done++
        }
      }),
    )
    rates[name] = done / seconds
    console.log(`${name.padEnd(20)} ${Math.round(rates[name]!).toLocaleString('en-US').padStart(8)} requests/s`)
  }
  console.log(`Basic / token: ${(rates['HTTP Basic (alice)']! / rates['bearer token']!).toFixed(2)}`)
} finally {
  await broker.stop()
}
