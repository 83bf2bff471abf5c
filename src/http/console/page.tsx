/** @jsxImportSource hono/jsx */
/**
 * The web console's pages, rendered on the server with hono/jsx: the shell (navigation, the access token, where
 * errors show) and each view's markup. The data comes from the HTTP API, under its own auth (console.js fetches it
 * and follows the live streams); every asset is served from the package, so it works offline.
 */
import type { FC, PropsWithChildren } from 'hono/jsx'

export const VIEWS = [
  { id: 'overview', title: 'Overview' },
  { id: 'clients', title: 'Clients' },
  { id: 'topics', title: 'Topics' },
  { id: 'live', title: 'Live messages' },
  { id: 'publish', title: 'Publish' },
  { id: 'plugins', title: 'Plugins' },
] as const

export type ViewId = (typeof VIEWS)[number]['id']

const Shell: FC<PropsWithChildren<{ view: ViewId }>> = ({ view, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <title>{`Midge · ${VIEWS.find((v) => v.id === view)!.title}`}</title>
      <link rel="stylesheet" href="/ui/assets/uplot.min.css" />
      <link rel="stylesheet" href="/ui/assets/console.css" />
    </head>
    <body data-view={view}>
      <header>
        <strong class="brand">Midge</strong>
        <nav aria-label="views">
          {VIEWS.map((v) => (
            <a href={`/ui/${v.id}`} aria-current={v.id === view ? 'page' : undefined}>
              {v.title}
            </a>
          ))}
        </nav>
        <form id="token-form" class="token">
          <label for="token">Access token</label>
          <input id="token" type="password" autocomplete="off" placeholder="bearer token (optional)" />
          <button type="submit">Use</button>
        </form>
      </header>
      <p id="problem" role="alert" hidden></p>
      <main>{children}</main>
      <script src="/ui/assets/uplot.iife.min.js"></script>
      <script src="/ui/assets/console.js"></script>
    </body>
  </html>
)

const Overview: FC = () => (
  <>
    <h1>Overview</h1>
    <dl id="facts" class="facts"></dl>
    <section aria-labelledby="rates-title">
      <h2 id="rates-title">Messages per second (last 5 minutes)</h2>
      <div id="chart" class="chart" role="img" aria-label="messages in, out and dropped per second, and connections"></div>
    </section>
    <section aria-labelledby="bytes-title">
      <h2 id="bytes-title">Bytes per second</h2>
      <div id="bytes-chart" class="chart" role="img" aria-label="bytes in and out per second"></div>
    </section>
    <section aria-labelledby="nodes-title">
      <h2 id="nodes-title">Cluster nodes</h2>
      <ul id="nodes"></ul>
    </section>
  </>
)

const Clients: FC = () => (
  <>
    <h1>Clients</h1>
    <label for="client-search">Search</label> <input id="client-search" type="search" placeholder="client id, username or address" />
    <div class="scroll">
      <table id="clients">
        <thead>
          <tr>
            <th>Client id</th><th>Node</th><th>Username</th><th>Address</th><th>Protocol</th><th>Connected since</th><th>Keep alive</th><th>Subscriptions</th><th>Queued</th><th>In flight</th><th>Session expiry</th><th><span class="sr">Actions</span></th>
          </tr>
        </thead>
        <tbody></tbody>
      </table>
    </div>
  </>
)

const Topics: FC = () => (
  <>
    <h1>Topics</h1>
    <p class="hint">Retained messages and the traffic seen since this page opened.</p>
    <div class="split">
      <nav id="tree" class="tree" aria-label="topic tree"></nav>
      <section id="topic" aria-live="polite">
        <p class="hint">Select a topic.</p>
      </section>
    </div>
  </>
)

const Live: FC = () => (
  <>
    <h1>Live messages</h1>
    <form id="live-form">
      <label for="live-filter">Filter</label> <input id="live-filter" value="#" />
      <button type="submit">Watch</button>
      <button type="button" id="live-pause" aria-pressed="false">Pause</button>
      <button type="button" id="live-clear">Clear</button>
    </form>
    <ol id="live" class="messages"></ol>
  </>
)

const Publish: FC = () => (
  <>
    <h1>Publish</h1>
    <form id="publish-form" class="form">
      <label for="p-topic">Topic</label> <input id="p-topic" required value="console/hello" />
      <label for="p-payload">Payload</label> <textarea id="p-payload" rows={4}>hello from the console</textarea>
      <label for="p-qos">QoS</label>
      <select id="p-qos"><option>0</option><option selected>1</option><option>2</option></select>
      <label for="p-retain">Retain</label> <input id="p-retain" type="checkbox" />
      <fieldset>
        <legend>MQTT 5 properties</legend>
        <label for="p-content-type">Content type</label> <input id="p-content-type" />
        <label for="p-response-topic">Response topic</label> <input id="p-response-topic" />
        <label for="p-correlation">Correlation data</label> <input id="p-correlation" />
        <label for="p-expiry">Message expiry (s)</label> <input id="p-expiry" type="number" min="0" />
        <label for="p-user">User properties (key=value per line)</label> <textarea id="p-user" rows={2}></textarea>
      </fieldset>
      <button type="submit">Publish</button>
      <output id="publish-result" for="publish-form"></output>
    </form>
  </>
)

const Plugins: FC = () => (
  <>
    <h1>Plugins</h1>
    <div id="plugins"></div>
  </>
)

const BODY: Record<ViewId, FC> = { overview: Overview, clients: Clients, topics: Topics, live: Live, publish: Publish, plugins: Plugins }

/** One view of the console, as HTML. */
export function consolePage(view: ViewId): string {
  const Body = BODY[view]
  return `<!doctype html>${(
    <Shell view={view}>
      <Body />
    </Shell>
  ).toString()}`
}
