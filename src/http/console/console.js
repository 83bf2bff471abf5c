// The web console's script: reads the HTTP API (with the access token given, if any) and its live streams, and
// fills the view the server rendered. No framework: each view is a function of what the API answers.
;(() => {
  'use strict'
  const $ = (id) => document.getElementById(id)
  const view = document.body.dataset.view
  const TOKEN = 'midge-console-token'

  // Access: a bearer token kept for this tab only; without one, the API's anonymous scopes apply.
  const tokenInput = $('token')
  tokenInput.value = sessionStorage.getItem(TOKEN) ?? ''
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault()
    sessionStorage.setItem(TOKEN, tokenInput.value)
    location.reload()
  })
  const headers = (more = {}) => {
    const token = sessionStorage.getItem(TOKEN)
    return token ? { ...more, authorization: `Bearer ${token}` } : more
  }

  /** Shows what went wrong, in words a user can act on; it stays until the same request succeeds. */
  let problemOf = null
  function problem(text, of = null) {
    if (text === null && of !== problemOf) return
    const box = $('problem')
    box.hidden = text === null
    box.textContent = text ?? ''
    problemOf = text === null ? null : of
  }

  async function api(path, options = {}) {
    let response
    try {
      response = await fetch(path, { ...options, headers: headers(options.headers) })
    } catch {
      problem('The broker is unreachable. Is it running?', 'network')
      throw new Error('unreachable')
    }
    const what = `${options.method ?? 'GET'} ${path}`
    if (response.status === 401) problem('The API asks who you are: enter an access token above (or sign in with a user).', what)
    else if (response.status === 403) problem(`Not allowed: ${(await response.clone().json().catch(() => ({}))).message ?? 'this needs another scope (admin to act, read to look).'}`, what)
    else if (response.ok) {
      problem(null, what)
      problem(null, 'network')
    }
    return response
  }

  /** Follows a server-sent event stream (with the token, which EventSource cannot send), again after a drop. */
  function follow(path, onEvent) {
    let stopped = false
    const controller = new AbortController()
    ;(async () => {
      while (!stopped) {
        try {
          const response = await fetch(path, { headers: headers(), signal: controller.signal })
          if (!response.ok) {
            await api(path) // says why
            await new Promise((resolve) => setTimeout(resolve, 5000))
            continue
          }
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
          let buffer = ''
          for (;;) {
            const { value, done } = await reader.read()
            if (done) break
            buffer += value
            let end
            while ((end = buffer.indexOf('\n\n')) !== -1) {
              const event = buffer.slice(0, end)
              buffer = buffer.slice(end + 2)
              const data = event.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n')
              if (data) onEvent(JSON.parse(data))
            }
          }
        } catch {
          if (stopped) return
          problem('The broker is unreachable. Is it running?', 'network')
        }
        await new Promise((resolve) => setTimeout(resolve, 2000))
      }
    })()
    return () => {
      stopped = true
      controller.abort()
    }
  }

  // Payloads: text when they are UTF-8, pretty JSON when they parse, else hex; never garbled text.
  const fromBase64 = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')
  function render(bytes) {
    let text
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    } catch {
      return { kind: 'hex', text: hex(bytes) }
    }
    if (/[\u0000-\u0008\u000e-\u001f]/.test(text)) return { kind: 'hex', text: hex(bytes) }
    try {
      const value = JSON.parse(text)
      if (typeof value === 'object' && value !== null) return { kind: 'json', text: JSON.stringify(value, null, 2) }
    } catch {}
    return { kind: 'text', text }
  }
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v)
      else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v))
    }
    node.append(...children.filter((c) => c !== null && c !== undefined))
    return node
  }

  const views = {
    async overview() {
      const facts = $('facts')
      const show = (stats, plugins) => {
        const rows = [
          ['Version', stats.version],
          ['Node', stats.node ?? '(single node)'],
          ['Uptime', `${Math.floor(stats.uptimeSeconds / 3600)} h ${Math.floor((stats.uptimeSeconds % 3600) / 60)} min`],
          ['Clients connected', stats.cluster?.totals.clientsConnected ?? stats.clientsConnected],
          ['Sessions', stats.cluster?.totals.sessions ?? stats.sessions],
          ['Subscriptions', stats.subscriptions],
          ['Retained', stats.retained],
          ['Dropped', stats.messagesDropped],
          ['Plugins', plugins.map((p) => p.name).join(', ') || 'none'],
          ['Listeners', (stats.listeners ?? []).map((l) => `${l.type}${l.tls ? '+tls' : ''} ${l.host}:${l.port}`).join(', ') || '—'],
        ]
        facts.replaceChildren(...rows.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', { 'data-fact': k }, String(v)))))
        $('nodes').replaceChildren(...(stats.cluster?.nodes ?? []).map((n) => el('li', {}, `${n.node}: ${n.clientsConnected} clients, ${n.messagesReceived} messages in`)))
        if (!stats.cluster) $('nodes').append(el('li', { class: 'hint' }, 'Not clustered.'))
      }
      const load = async () => {
        const [stats, plugins] = await Promise.all([api('/api/v1/stats'), api('/api/v1/plugins')])
        if (stats.ok && plugins.ok) show(await stats.json(), (await plugins.json()).plugins)
      }
      await load()
      setInterval(load, 5000)
      // The charts: one point a second from the stats stream, five minutes kept.
      const width = Math.min(960, $('chart').clientWidth || 800)
      const points = [[], [], [], [], []]
      const chart = new uPlot(
        {
          width,
          height: 240,
          series: [{}, { label: 'in /s', stroke: '#0b63c9' }, { label: 'out /s', stroke: '#1f8a4c' }, { label: 'dropped /s', stroke: '#b3261e' }, { label: 'connections', stroke: '#9a6700', scale: 'n' }],
          axes: [{}, {}, { scale: 'n', side: 1 }],
        },
        points,
        $('chart'),
      )
      const bytes = [[], [], []]
      const bytesChart = new uPlot({ width, height: 180, series: [{}, { label: 'bytes in /s', stroke: '#0b63c9' }, { label: 'bytes out /s', stroke: '#1f8a4c' }] }, bytes, $('bytes-chart'))
      let last = null
      follow('/api/v1/stream/stats', (s) => {
        if (last) {
          const dt = (s.t - last.t) / 1000 || 1
          points[0].push(s.t / 1000)
          points[1].push((s.messagesReceived - last.messagesReceived) / dt)
          points[2].push((s.messagesSent - last.messagesSent) / dt)
          points[3].push((s.messagesDropped - last.messagesDropped) / dt)
          points[4].push(s.clientsConnected)
          bytes[0].push(s.t / 1000)
          bytes[1].push((s.bytesReceived - last.bytesReceived) / dt)
          bytes[2].push((s.bytesSent - last.bytesSent) / dt)
          for (const series of [points, bytes]) if (series[0].length > 300) for (const p of series) p.shift()
          chart.setData(points)
          bytesChart.setData(bytes)
          $('chart').dataset.points = String(points[0].length)
          $('chart').dataset.lastIn = String(points[1].at(-1))
        }
        last = s
      })
    },

    async clients() {
      const body = document.querySelector('#clients tbody')
      const search = $('client-search')
      let all = []
      const show = () => {
        const q = search.value.toLowerCase()
        const rows = all.filter((c) => [c.clientId, c.username ?? '', c.address ?? ''].some((v) => v.toLowerCase().includes(q)))
        body.replaceChildren(
          ...rows.map((c) =>
            el(
              'tr',
              { 'data-client': c.clientId },
              el('td', {}, c.clientId),
              el('td', {}, c.node ?? ''),
              el('td', {}, c.username ?? ''),
              el('td', {}, c.address ?? ''),
              el('td', {}, c.protocolVersion ? (c.protocolVersion === 5 ? '5.0' : c.protocolVersion === 4 ? '3.1.1' : '3.1') : ''),
              el('td', {}, c.connected ? new Date(c.connectedSince).toLocaleString() : 'offline'),
              el('td', {}, c.keepAliveSeconds === null || c.keepAliveSeconds === undefined ? '' : c.keepAliveSeconds === 0 ? 'none' : `${c.keepAliveSeconds} s`),
              el('td', {}, String(c.subscriptions)),
              el('td', {}, String(c.queued)),
              el('td', {}, String(c.inflight)),
              el('td', {}, c.sessionExpirySeconds === 4294967295 ? 'never' : `${c.sessionExpirySeconds} s`),
              el('td', {}, c.connected ? el('button', { type: 'button', class: 'quiet', 'aria-label': `disconnect ${c.clientId}`, onclick: () => disconnect(c.clientId) }, 'Disconnect') : null),
            ),
          ),
        )
      }
      const load = async () => {
        const response = await api('/api/v1/clients')
        if (!response.ok) return
        all = (await response.json()).clients
        show()
      }
      const disconnect = async (id) => {
        const response = await api(`/api/v1/clients/${encodeURIComponent(id)}`, { method: 'DELETE' })
        if (response.ok) await load()
      }
      search.addEventListener('input', show)
      await load()
      setInterval(load, 2000)
    },

    async topics() {
      const known = new Map() // topic -> { bytes, qos, retain, properties }
      const tree = $('tree')
      const detail = $('topic')
      let selected = null
      const showTree = () => {
        const root = {}
        for (const topic of [...known.keys()].sort()) {
          let node = root
          for (const level of topic.split('/')) node = node[level] ??= {}
          node['\u0000'] = topic
        }
        const list = (node) =>
          el(
            'ul',
            {},
            ...Object.keys(node)
              .filter((k) => k !== '\u0000')
              .map((level) => {
                const child = node[level]
                const topic = child['\u0000']
                const label = level === '' ? '(empty)' : level
                const own = topic === undefined ? el('span', {}, label) : el('button', { type: 'button', 'data-topic': topic, 'aria-pressed': String(topic === selected), onclick: () => select(topic) }, label)
                const rest = Object.keys(child).filter((k) => k !== '\u0000')
                return el('li', {}, own, rest.length ? list(child) : null)
              }),
          )
        tree.replaceChildren(list(root))
      }
      const select = (topic) => {
        selected = topic
        const m = known.get(topic)
        const shown = render(m.bytes)
        detail.replaceChildren(
          el('h2', {}, topic),
          el('p', { class: 'meta' }, `QoS ${m.qos}${m.retain ? ' · retained' : ''} · ${m.bytes.length} bytes · shown as ${shown.kind}`),
          el('pre', { 'data-payload': shown.kind }, shown.text),
          m.properties && Object.keys(m.properties).length ? el('pre', { 'aria-label': 'properties' }, JSON.stringify(m.properties, null, 2)) : null,
          m.retain ? el('button', { type: 'button', onclick: () => removeRetained(topic) }, 'Delete retained message') : null,
        )
        showTree()
      }
      const removeRetained = async (topic) => {
        const response = await api(`/api/v1/retained/${topic.split('/').map(encodeURIComponent).join('/')}`, { method: 'DELETE' })
        if (!response.ok) return
        known.delete(topic)
        selected = null
        detail.replaceChildren(el('p', { class: 'hint' }, `The retained message of ${topic} was deleted.`))
        showTree()
      }
      const response = await api('/api/v1/retained?filter=%23&limit=1000')
      if (response.ok) {
        for (const r of (await response.json()).retained) {
          const bytes = r.encoding === 'base64' ? fromBase64(r.payload) : new TextEncoder().encode(r.payload)
          known.set(r.topic, { bytes, qos: r.qos, retain: true, properties: r.properties })
        }
      }
      showTree()
      follow('/api/v1/stream/messages?filter=%23', (m) => {
        const kept = known.get(m.topic)?.retain
        if (m.retain && m.payload === '') known.delete(m.topic)
        else known.set(m.topic, { bytes: fromBase64(m.payload), qos: m.qos, retain: m.retain || Boolean(kept), properties: m.properties })
        if (selected === m.topic && known.has(m.topic)) select(m.topic)
        else showTree()
      })
    },

    live() {
      const list = $('live')
      const pause = $('live-pause')
      let paused = false
      let stop = () => {}
      const watch = () => {
        stop()
        stop = follow(`/api/v1/stream/messages?filter=${encodeURIComponent($('live-filter').value)}`, (m) => {
          if (paused) return
          const shown = render(fromBase64(m.payload))
          list.prepend(el('li', { 'data-kind': shown.kind }, el('span', { class: 'meta' }, `${new Date().toLocaleTimeString()} · QoS ${m.qos}${m.retain ? ' · retained' : ''} · `), el('strong', {}, m.topic), ' ', el('span', {}, shown.text)))
          while (list.children.length > 500) list.lastChild.remove()
        })
      }
      $('live-form').addEventListener('submit', (event) => {
        event.preventDefault()
        watch()
      })
      pause.addEventListener('click', () => {
        paused = !paused
        pause.setAttribute('aria-pressed', String(paused))
        pause.textContent = paused ? 'Resume' : 'Pause'
      })
      $('live-clear').addEventListener('click', () => list.replaceChildren())
      watch()
    },

    publish() {
      $('publish-form').addEventListener('submit', async (event) => {
        event.preventDefault()
        const properties = {}
        if ($('p-content-type').value) properties.contentType = $('p-content-type').value
        if ($('p-response-topic').value) properties.responseTopic = $('p-response-topic').value
        if ($('p-correlation').value) properties.correlationData = $('p-correlation').value
        if ($('p-expiry').value) properties.messageExpiryInterval = Number($('p-expiry').value)
        const user = $('p-user').value.split('\n').filter((l) => l.includes('='))
        if (user.length) properties.userProperties = Object.fromEntries(user.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
        const body = { topic: $('p-topic').value, payload: $('p-payload').value, qos: Number($('p-qos').value), retain: $('p-retain').checked, properties: Object.keys(properties).length ? properties : undefined }
        const response = await api('/api/v1/publish', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
        const answer = await response.json().catch(() => ({}))
        $('publish-result').textContent = response.ok ? `Published; ${answer.reached} subscription(s) reached.` : `Refused: ${answer.message ?? response.status}`
      })
    },

    async plugins() {
      const response = await api('/api/v1/plugins')
      if (!response.ok) return
      const { plugins } = await response.json()
      $('plugins').replaceChildren(
        ...(plugins.length ? plugins : [{ name: 'none', metrics: {} }]).map((p) =>
          el('section', { 'data-plugin': p.name }, el('h2', {}, p.name), Object.keys(p.metrics).length ? el('dl', { class: 'facts' }, ...Object.entries(p.metrics).map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, String(v))))) : el('p', { class: 'hint' }, 'Reports no figures.')),
        ),
      )
    },
  }
  views[view]?.()
})()
