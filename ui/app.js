/* QuicEther web UI: draws the views the node streams (see src/observe/ui-view.ts). Read-only. */
'use strict'
;(() => {
  const HISTORY = 120
  const COLORS = { up: '#1f9d55', degraded: '#d69e00', down: '#d62828' }
  const PALETTE = ['#3478c6', '#e07b00', '#7a4cc2', '#1f9d55', '#c2185b', '#00838f', '#795548', '#5c6bc0']
  const $ = (sel) => document.querySelector(sel)
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag)
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v
      else if (k === 'text') e.textContent = v
      else e.setAttribute(k, v)
    }
    for (const k of kids) e.append(k)
    return e
  }
  const bits = (bps) => (bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} Gbit/s` : bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mbit/s` : bps >= 1e3 ? `${(bps / 1e3).toFixed(0)} kbit/s` : `${Math.round(bps)} bit/s`)
  const bytes = (n) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(0)} kB` : `${n} B`)
  const ago = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))
    return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`
  }

  // The token comes in the URL's fragment (never sent to the server); kept for this tab only.
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash)
  if (m) {
    sessionStorage.setItem('qe-token', decodeURIComponent(m[1]))
    history.replaceState(null, '', location.pathname)
  }
  const token = sessionStorage.getItem('qe-token')

  const qe = (window.qe = { views: 0, last: null, cy: null, firstViewMs: null })
  const conn = (cls, text) => {
    const c = $('#conn')
    c.className = `conn ${cls}`
    c.textContent = text
  }

  // ---- topology ----
  let cy = null
  function drawGraph(v) {
    if (typeof cytoscape !== 'function') return
    if (!cy) {
      cy = qe.cy = cytoscape({
        container: $('#graph'),
        userZoomingEnabled: false,
        boxSelectionEnabled: false,
        autoungrabify: true,
        style: [
          { selector: 'node', style: { label: 'data(label)', 'background-color': 'data(color)', color: '#1d232b', 'font-size': 12, 'text-valign': 'bottom', 'text-margin-y': 4, width: 26, height: 26 } },
          { selector: 'node.self', style: { shape: 'round-rectangle', width: 40, height: 30, 'background-color': '#18202a', color: '#18202a', 'font-weight': 600 } },
          { selector: 'edge', style: { width: 3, 'line-color': 'data(color)', label: 'data(label)', 'font-size': 10, color: '#4a535c', 'text-background-color': '#fff', 'text-background-opacity': 0.85, 'text-background-padding': 2, 'curve-style': 'straight' } },
          { selector: 'edge.down', style: { 'line-style': 'dashed' } },
        ],
      })
    }
    const want = new Map()
    want.set('self', { group: 'nodes', data: { id: 'self', label: v.node ? v.node.name : 'this node', color: '#18202a' }, classes: 'self' })
    for (const p of v.peers) {
      const id = `p:${p.key}`
      want.set(id, { group: 'nodes', data: { id, label: p.name, color: COLORS[p.health], health: p.health } })
      const label = p.state === 'up' ? `${p.kind}${p.via ? ` via ${p.via}` : ''} · ${bits(p.inBps + p.outBps)}` : p.state
      want.set(`e:${p.key}`, { group: 'edges', data: { id: `e:${p.key}`, source: 'self', target: id, label, color: COLORS[p.health], health: p.health, kind: p.kind, peer: p.name }, classes: p.health })
    }
    let changed = false
    cy.batch(() => {
      cy.elements().forEach((e) => {
        if (!want.has(e.id())) {
          e.remove()
          changed = true
        }
      })
      for (const [id, w] of want) {
        const e = cy.getElementById(id)
        if (e.empty()) {
          cy.add(w)
          changed = true
        } else {
          e.data(w.data)
          e.classes(w.classes || '')
        }
      }
    })
    if (changed) {
      const n = v.peers.length
      cy.layout({
        name: 'preset',
        positions: (node) => {
          if (node.id() === 'self') return { x: 0, y: 0 }
          const i = v.peers.findIndex((p) => `p:${p.key}` === node.id())
          const a = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2
          return { x: 220 * Math.cos(a), y: 110 * Math.sin(a) }
        },
        fit: true,
        padding: 40,
      }).run()
    }
  }

  // ---- charts: one series per tunnel, one per uplink ----
  function makeSeriesChart(container, title) {
    const st = { plot: null, names: [], data: [[]] }
    return {
      push(t, values) {
        const names = values.map((x) => x.name)
        if (!st.plot || names.join('\n') !== st.names.join('\n')) {
          st.plot?.destroy()
          st.names = names
          st.data = [[], ...names.map(() => [])]
          st.plot = new uPlot(
            {
              width: Math.max(300, container.clientWidth || 420),
              height: 170,
              title,
              scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
              axes: [{}, { label: 'Mbit/s', size: 50 }],
              series: [{}, ...names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 2, value: (_u, v) => (v == null ? '–' : `${v.toFixed(1)} Mbit/s`) }))],
            },
            st.data,
            container,
          )
        }
        st.data[0].push(t)
        values.forEach((x, i) => st.data[i + 1].push(x.mbps))
        if (st.data[0].length > HISTORY) for (const s of st.data) s.shift()
        st.plot.setData(st.data)
      },
    }
  }
  const tunnelChart = typeof uPlot === 'function' ? makeSeriesChart($('#tunnel-chart'), 'per tunnel, in + out') : null
  const uplinkChart = typeof uPlot === 'function' ? makeSeriesChart($('#uplink-chart'), 'per uplink, in + out') : null

  // ---- tables ----
  function drawTunnels(v) {
    const body = $('#tunnels tbody')
    body.replaceChildren(
      ...v.peers.map((p) =>
        el('tr', { 'data-peer': p.name, 'data-health': p.health },
          el('td', {}, el('span', { class: `dot ${p.health}` }), p.name),
          el('td', { text: p.state === 'up' ? `${p.kind}${p.via ? ` via ${p.via}` : ''}` : p.state }),
          el('td', { class: 'num rate-in', text: bits(p.inBps) }),
          el('td', { class: 'num rate-out', text: bits(p.outBps) }),
          el('td', { class: 'num', text: p.rttMs == null ? '–' : `${p.rttMs.toFixed(1)} ms` }),
        ),
      ),
    )
    $('#totals').textContent = `in ${bits(v.totals.inBps)} · out ${bits(v.totals.outBps)}`
  }

  /** Set through the CSSOM (a style attribute would need 'unsafe-inline'). */
  function barFill(share) {
    const s = el('span')
    s.style.width = `${Math.round(share * 100)}%`
    return s
  }

  function drawBonds(v) {
    const bonded = v.peers.filter((p) => p.paths.length > 0)
    const box = $('#bonds')
    if (bonded.length === 0) {
      box.replaceChildren(el('p', { class: 'muted', text: 'No bonded peer.' }))
      return
    }
    box.replaceChildren(
      ...bonded.map((p) =>
        el('div', { class: 'bond', 'data-peer': p.name },
          el('h3', { text: `to ${p.name}` }),
          el('table', {},
            el('thead', {}, el('tr', {}, ...['uplink', 'share', 'out', 'in', 'capacity', 'RTT', 'queue', 'in flight'].map((h) => el('th', { text: h })))),
            el('tbody', {},
              ...p.paths.map((x) =>
                el('tr', { 'data-uplink': x.uplink, 'data-alive': String(x.alive), class: x.alive ? 'alive' : 'dead' },
                  el('td', { class: 'uplink', text: x.uplink }),
                  el('td', {}, el('div', { class: 'bar', title: `${Math.round(x.share * 100)} %` }, barFill(x.share))),
                  el('td', { class: 'num', text: bits(x.outBps) }),
                  el('td', { class: 'num', text: bits(x.inBps) }),
                  el('td', { class: 'num', text: bits(x.capacityBps) }),
                  el('td', { class: 'num', text: `${x.rttMs.toFixed(1)} ms` }),
                  el('td', { class: 'num', text: String(x.queued) }),
                  el('td', { class: 'num', text: bytes(x.inFlight) }),
                ),
              ),
            ),
          ),
        ),
      ),
    )
  }

  function drawPeers(v) {
    $('#peers tbody').replaceChildren(
      ...v.peers.map((p) =>
        el('tr', { 'data-peer': p.name },
          el('td', {}, el('strong', { text: p.name }), p.role ? el('div', { class: 'muted', text: p.role }) : ''),
          el('td', { class: `state-${p.health}`, text: p.state + (p.lastError && p.state !== 'up' ? ` (${p.lastError})` : '') }),
          el('td', { class: 'fp', text: p.fingerprint }),
          el('td', { text: p.groups.join(', ') || '–' }),
          el('td', { class: 'mono', text: [...p.overlay, ...p.subnets].join(' ') || '–' }),
          el('td', { class: 'mono', text: p.remote || '–' }),
          el('td', { text: ago(p.since) }),
        ),
      ),
    )
  }

  function drawConfig(v) {
    const c = v.config
    const lines = [
      el('div', {}, 'file ', el('code', { text: c.file || '(none)' })),
      el('div', { id: 'generation' }, `generation ${c.generation}`, c.pendingConfirm ? ' · waiting for confirm' : ''),
    ]
    if (c.warnings.length) lines.push(el('ul', { class: 'warnings' }, ...c.warnings.map((w) => el('li', { class: 'muted', text: `${w.where} ${w.code} ${w.message}` }))))
    $('#config').replaceChildren(...lines)
    const a = v.lastApply
    $('#plan').replaceChildren(
      a
        ? el('div', {},
          el('div', { class: a.ok ? 'state-up' : 'state-down', text: `${a.ok ? 'applied' : 'failed'} (${a.trigger}) ${ago(a.at)}, ${a.durationMs} ms${a.failure ? `: ${a.failure}` : ''}` }),
          a.plan.length ? el('ul', {}, ...a.plan.slice(0, 50).map((t) => el('li', { text: t }))) : el('div', { class: 'muted', text: 'no changes' }),
        )
        : el('div', { class: 'muted', text: 'nothing applied yet' }),
    )
    const probs = [...c.errors.map((e) => `${e.where} ${e.code} ${e.message}`), ...(a && !a.ok && a.failure ? [`apply failed: ${a.failure}`] : [])]
    const box = $('#problems')
    box.hidden = probs.length === 0
    box.replaceChildren(el('strong', { text: c.errors.length ? 'The last edit of the config was not applied; the previous config runs:' : 'Problems:' }), el('ul', {}, ...probs.map((t) => el('li', { text: t }))))
  }

  function drawAudit(v) {
    const a = v.audit
    $('#audit').replaceChildren(a.enabled ? el('ul', {}, ...a.lines.map((l) => el('li', { class: 'mono', text: l }))) : el('p', { class: 'muted', text: a.note }))
  }

  function render(v) {
    qe.last = v
    qe.views++
    $('#node-name').textContent = v.node ? v.node.name : ''
    $('#node-meta').textContent = v.node ? `${v.node.overlay.join(' · ')} · ${v.node.tun} · ${v.node.fingerprint} · up ${Math.round(v.uptimeS / 60)} min` : ''
    drawConfig(v)
    drawTunnels(v)
    drawBonds(v)
    drawPeers(v)
    drawAudit(v)
    drawGraph(v)
    const t = Date.parse(v.at) / 1000
    tunnelChart?.push(t, v.peers.map((p) => ({ name: p.name, mbps: (p.inBps + p.outBps) / 1e6 })))
    if (v.uplinks.length) uplinkChart?.push(t, v.uplinks.map((u) => ({ name: u.name, mbps: (u.inBps + u.outBps) / 1e6 })))
    if (qe.firstViewMs === null) {
      qe.firstViewMs = performance.now()
      performance.mark('qe-first-view')
    }
  }

  // ---- the stream: server-sent events read with fetch, so the token travels in a header ----
  async function stream() {
    if (!token) {
      conn('denied', 'no token')
      $('#problems').hidden = false
      $('#problems').textContent = "No token: open the address 'quicether ui --url' prints on the node."
      return
    }
    // One view at once (plain JSON), then the stream.
    try {
      const res = await fetch('/api/view', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' })
      if (res.ok) render(await res.json())
    } catch (err) {
      console.warn('view', err)
    }
    for (;;) {
      try {
        const res = await fetch('/api/stream', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' })
        if (res.status === 401) {
          conn('denied', 'token refused')
          $('#problems').hidden = false
          $('#problems').textContent = "The token was refused: open the address 'quicether ui --url' prints on the node."
          return
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`)
        conn('live', 'live')
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
        let buf = ''
        for (;;) {
          const { value, done } = await reader.read()
          if (done) break
          buf += value
          let i
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const evt = buf.slice(0, i)
            buf = buf.slice(i + 2)
            const data = evt.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')
            if (data) render(JSON.parse(data))
          }
        }
      } catch (err) {
        console.warn('stream', err)
      }
      conn('lost', 'node not answering: retrying')
      await new Promise((r) => setTimeout(r, 2000))
    }
  }
  // The graph library loads after the page: draw the last view once it is there.
  document.getElementById('cytoscape-lib')?.addEventListener('load', () => qe.last && drawGraph(qe.last))
  stream()
})()
