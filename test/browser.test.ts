/**
 * The web console and the WebSocket demo page in a real browser: headless Chromium (Debian `chromium`) driven by
 * playwright-core, against a running broker with real MQTT.js clients. Installed by .ci/run; skipped locally when
 * Chromium is absent, required in CI. A screenshot of each view goes to test/artifacts/ (not in git).
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startBroker, until, type TestBroker } from './helpers/broker.ts'
import { connect, subscribe } from './helpers/mqttjs.ts'

const ARTIFACTS = join(import.meta.dir, 'artifacts')
const ADMIN = 'console-admin-token-0123456789'

const executablePath = Bun.which('chromium') ?? Bun.which('chromium-browser')
if (!executablePath && process.env.CI) throw new Error('chromium is required in CI (apt-get install chromium)')

describe.skipIf(!executablePath)('the UI page in headless Chromium', () => {
  let b: TestBroker
  let browser: Browser
  let http: number
  beforeAll(async () => {
    b = await startBroker({ http: { host: '127.0.0.1', port: 0, anonymousScopes: ['read', 'publish'], tokens: [{ name: 'admin', token: ADMIN, scopes: ['read', 'publish', 'admin'] }] } })
    mkdirSync(ARTIFACTS, { recursive: true })
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

  test('the WebSocket demo page connects over WebSocket, shows what TCP clients publish, and publishes back', async () => {
    const page = await browser.newPage()
    await page.goto(`http://127.0.0.1:${http}/ui/websocket`)
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

  const open = async (view: string, token?: string): Promise<Page> => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } })
    if (token) await page.addInitScript((t) => sessionStorage.setItem('midge-console-token', t), token)
    await page.goto(`http://127.0.0.1:${http}/ui/${view}`)
    return page
  }
  const shot = (page: Page, view: string) => page.screenshot({ path: join(ARTIFACTS, `console-${view}.png`), fullPage: true })

  test('console, overview: the chart gets points while a publisher runs', async () => {
    const page = await open('overview')
    const pub = await connect(b.port)
    let running = true
    const publishing = (async () => {
      while (running) {
        await pub.client.publishAsync('overview/load', 'x', { qos: 0 })
        await Bun.sleep(5)
      }
    })()
    try {
      await page.waitForFunction(`Number(document.getElementById('chart').dataset.points) >= 2 && Number(document.getElementById('chart').dataset.lastIn) > 0`, undefined, { timeout: 15000 })
      expect(await page.locator('[data-fact="Clients connected"]').textContent()).toMatch(/^\d+$/)
      expect(await page.locator('[data-fact="Listeners"]').textContent()).toContain(`tcp 127.0.0.1:${b.port}`)
      await shot(page, 'overview')
    } finally {
      running = false
      await publishing
      await pub.end()
      await page.close()
    }
  })

  test('console, clients: a client connected with MQTT.js is listed; disconnecting it needs admin and really disconnects it', async () => {
    const watched = await connect(b.port, { clientId: 'console-visible', protocolVersion: 5 })
    const closed = new Promise<void>((resolve) => watched.client.once('close', () => resolve()))
    const anonymous = await open('clients')
    const row = anonymous.locator('tr[data-client="console-visible"]')
    await row.waitFor({ timeout: 10000 })
    await anonymous.fill('#client-search', 'no-such-client')
    await row.waitFor({ state: 'detached' })
    await anonymous.fill('#client-search', 'console-vis')
    await row.locator('button').click()
    // Anonymous callers may read and publish only: the API asks for credentials (401), and the page says so.
    await anonymous.locator('#problem').filter({ hasText: 'enter an access token' }).waitFor({ timeout: 5000 })
    await anonymous.close()
    const admin = await open('clients', ADMIN)
    await admin.locator('tr[data-client="console-visible"] button').click()
    await closed
    await shot(admin, 'clients')
    await admin.close()
  })

  test('console, topics: a retained message is in the tree with its payload; a binary one shows as hex; deleting one clears it for a new subscriber', async () => {
    const pub = await connect(b.port)
    await pub.client.publishAsync('console/kept', 'hello, retained', { qos: 1, retain: true })
    await pub.client.publishAsync('console/bin', Buffer.from([0x00, 0xff, 0x10, 0x80]), { qos: 1, retain: true })
    const page = await open('topics', ADMIN)
    await page.locator('[data-topic="console/kept"]').click()
    await page.locator('#topic pre[data-payload="text"]').filter({ hasText: 'hello, retained' }).waitFor({ timeout: 10000 })
    await page.locator('[data-topic="console/bin"]').click()
    expect(await page.locator('#topic pre[data-payload="hex"]').textContent()).toBe('00 ff 10 80')
    await shot(page, 'topics')
    await page.getByRole('button', { name: 'Delete retained message' }).click()
    await page.locator('#topic').filter({ hasText: 'was deleted' }).waitFor({ timeout: 5000 })
    const late = await connect(b.port)
    await subscribe(late.client, 'console/bin')
    expect(await late.quiet()).toEqual([]) // no retained message any more
    await Promise.all([late.end(), pub.end()])
    await page.close()
  })

  test('console, live messages: text as text, binary as hex; pause holds the list', async () => {
    const page = await open('live')
    const pub = await connect(b.port)
    await page.locator('#live-form').waitFor()
    await until(() => b.midge.broker.events.listeners.message.length > 0, 5000, 'the page follows the stream')
    await pub.client.publishAsync('live/text', 'plain words', { qos: 0 })
    await pub.client.publishAsync('live/bin', Buffer.from([0xde, 0xad, 0xbe, 0xef]), { qos: 0 })
    await page.locator('#live li[data-kind="hex"]').filter({ hasText: 'de ad be ef' }).waitFor({ timeout: 10000 })
    expect(await page.locator('#live li[data-kind="text"]').filter({ hasText: 'plain words' }).count()).toBe(1)
    await page.click('#live-pause')
    await pub.client.publishAsync('live/text', 'while paused', { qos: 0 })
    await pub.client.publishAsync('live/text', 'still paused', { qos: 0 })
    await shot(page, 'live')
    expect(await page.locator('#live li').filter({ hasText: 'paused' }).count()).toBe(0)
    await pub.end()
    await page.close()
  })

  test('console, publish and plugins: the form publishes with MQTT 5 properties; plugins list what they report', async () => {
    const sub = await connect(b.port, { protocolVersion: 5 })
    await subscribe(sub.client, 'console/form')
    const page = await open('publish')
    await page.fill('#p-topic', 'console/form')
    await page.fill('#p-payload', 'from the form')
    await page.fill('#p-content-type', 'text/plain')
    await page.fill('#p-user', 'k=v')
    await page.click('#publish-form button[type="submit"]')
    const m = await sub.next(10000)
    expect([m.topic, m.payload, m.packet.properties?.contentType, m.packet.properties?.userProperties]).toEqual(['console/form', 'from the form', 'text/plain', { k: 'v' }])
    await page.locator('#publish-result').filter({ hasText: 'Published' }).waitFor()
    await shot(page, 'publish')
    await page.goto(`http://127.0.0.1:${http}/ui/plugins`)
    await page.locator('#plugins section').first().waitFor()
    await shot(page, 'plugins')
    await Promise.all([sub.end(), page.close()])
  })
})
