/** Interop with Debian's mosquitto clients (installed by .ci/run; skipped locally when absent, required in CI). */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startBroker, type TestBroker } from './helpers/broker.ts'

const have = Bun.which('mosquitto_pub') !== null && Bun.which('mosquitto_sub') !== null
if (!have && process.env.CI) throw new Error('mosquitto_pub/mosquitto_sub are required in CI (apt-get install mosquitto-clients)')

let b: TestBroker
beforeAll(async () => {
  b = await startBroker()
})
afterAll(() => b.close())

describe.skipIf(!have)('mosquitto_pub / mosquitto_sub', () => {
  for (const version of ['mqttv311', 'mqttv5'] as const) {
    test(`${version}: mosquitto_sub receives what mosquitto_pub publishes, QoS 1 and retained`, async () => {
      const port = String(b.port)
      const topic = `interop/${version}`
      const retained = Bun.spawn(['mosquitto_pub', '-h', '127.0.0.1', '-p', port, '-V', version, '-t', `${topic}/kept`, '-m', 'kept', '-r', '-q', '1'])
      expect(await retained.exited).toBe(0)
      const sub = Bun.spawn(['mosquitto_sub', '-h', '127.0.0.1', '-p', port, '-V', version, '-t', `${topic}/#`, '-C', '2', '-v', '-q', '1', '-W', '10'], { stdout: 'pipe' })
      // The retained message arrives first and proves the subscription is in place.
      const reader = sub.stdout.getReader()
      const first = new TextDecoder().decode((await reader.read()).value)
      expect(first).toContain(`${topic}/kept kept`)
      const pub = Bun.spawn(['mosquitto_pub', '-h', '127.0.0.1', '-p', port, '-V', version, '-t', `${topic}/live`, '-m', 'hello from mosquitto_pub', '-q', '1'])
      expect(await pub.exited).toBe(0)
      let out = first
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        out += new TextDecoder().decode(value)
      }
      expect(await sub.exited).toBe(0)
      expect(out).toContain(`${topic}/live hello from mosquitto_pub`)
    })
  }
})
