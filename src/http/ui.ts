/** A tiny page that speaks MQTT over WebSocket from the browser (MQTT.js's browser bundle), served at / and /ui. */
export function uiPage(websocketPath: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Midge</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 2rem; max-width: 48rem; }
  input { font: inherit; padding: .3rem; } button { font: inherit; padding: .3rem .8rem; }
  #status { font-weight: bold; } #messages { list-style: none; padding: 0; font-family: ui-monospace, monospace; }
  #messages li { border-bottom: 1px solid #ddd; padding: .25rem 0; }
</style>
</head>
<body>
<h1>Midge</h1>
<p>Status: <span id="status">connecting…</span></p>
<form id="sub"><input id="filter" value="#" size="30" aria-label="topic filter"> <button>Subscribe</button></form>
<form id="pub"><input id="topic" value="ui/hello" size="20" aria-label="topic"> <input id="text" value="hello from the browser" size="30" aria-label="message"> <button>Publish</button></form>
<ul id="messages"></ul>
<script src="/ui/mqtt.min.js"></script>
<script>
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const client = mqtt.connect(scheme + '://' + location.host + ${JSON.stringify(websocketPath)}, { protocolVersion: 5 })
  const status = document.getElementById('status')
  const list = document.getElementById('messages')
  client.on('connect', () => { status.textContent = 'connected'; client.subscribe(document.getElementById('filter').value) })
  client.on('close', () => { status.textContent = 'disconnected' })
  client.on('error', (e) => { status.textContent = 'error: ' + e.message })
  client.on('message', (topic, payload) => {
    const li = document.createElement('li')
    li.textContent = topic + ' ' + new TextDecoder().decode(payload)
    list.prepend(li)
  })
  document.getElementById('sub').onsubmit = (e) => { e.preventDefault(); client.subscribe(document.getElementById('filter').value) }
  document.getElementById('pub').onsubmit = (e) => { e.preventDefault(); client.publish(document.getElementById('topic').value, document.getElementById('text').value) }
</script>
</body>
</html>`
}
