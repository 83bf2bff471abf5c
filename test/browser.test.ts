/**
 * The UI page in a real browser: headless Chromium (Debian `chromium`) driven by playwright-core.
 * Installed by .ci/run; skipped locally when Chromium is absent, required in CI.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { chromium, type Browser } from 'playwright-core'
import { startBroker, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

const executablePath = Bun.which('chromium') ?? Bun.which('chromium-browser')
if (!executablePath && process.env.CI) throw new Error('chromium is required in CI (apt-get install chromium)')

describe.skipIf(!executablePath)('the UI page in headless Chromium', () => {
  let b: TestBroker
  let browser: Browser
  let http: number
  beforeAll(async () => {
    b = await startBroker({ http: { host: '127.0.0.1', port: 0 } })
    http = b.addresses.find((a) => a.type === 'http')!.port
    browser = await chromium.launch({
      executablePath: executablePath!,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })
  afterAll(async () => {
    await browser?.close()
    await b?.close()
  })

  test('the page connects over WebSocket, shows what TCP clients publish, and publishes back', async () => {
    const page = await browser.newPage()
    await page.goto(`http://127.0.0.1:${http}/ui`)
    await page.waitForFunction(`document.getElementById('status').textContent === 'connected'`, undefined, { timeout: 10000 })
    const tcp = await connect(b.port)
    await subscribe(tcp.client, 'ui/#')
    await tcp.client.publishAsync('browser/news', 'hello from TCP', { qos: 1 })
    await page.waitForFunction(`document.getElementById('messages').textContent.includes('browser/news hello from TCP')`, undefined, { timeout: 10000 })
    await page.click('#pub button')
    const m = await tcp.next()
    expect(m.topic).toBe('ui/hello')
    expect(m.payload).toBe('hello from the browser')
    if (process.env.MIDGE_SCREENSHOT) await page.screenshot({ path: process.env.MIDGE_SCREENSHOT })
    await page.close()
    await tcp.end()
  })
})
