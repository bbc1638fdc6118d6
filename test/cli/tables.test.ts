import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PathStats, PeerStats } from '../../src/engine/types.js'
import type { NodeStatus, PeerView } from '../../src/observe/status.js'
import { ControlServer } from '../../src/observe/control-socket.js'
import { silentLogger } from '../../src/log.js'
import { formatAge, formatBytes, formatRate, pathRows, peerRows, renderPaths, renderPeers } from '../../src/cli/tables.js'
import { watch } from '../../src/cli/control.js'
import { run } from './run.js'

const NOW = Date.parse('2026-11-26T12:00:00Z')

function path(uplink: string, over: Partial<PathStats> = {}): PathStats {
  return {
    uplink, index: 0, remote: { address: '192.0.2.1', port: 7443 }, alive: true, rttMs: 20, rttMinMs: 18, cwnd: 64_000,
    deliveryRate: 1_250_000, bytesOut: 0, bytesIn: 0, packetsOut: 0, packetsIn: 0, datagramsLost: 0, bytesInFlight: 0, queued: 0, dropped: 0,
    ...over,
  }
}

function stats(peer: string, over: Partial<PeerStats> = {}): PeerStats {
  return {
    peer, up: true, rttMs: 12.34, rttMinMs: 10, rttVarMs: 1, silentMs: 0, cwnd: 0, bytesInFlight: 0, deliveryRate: 0, maxDatagram: 1400,
    bytesIn: 1536, bytesOut: 5 * 1024 * 1024, packetsIn: 0, packetsOut: 0, datagramsLost: 0, datagramsAcked: 0,
    drops: { congestion: 0, tooBig: 0, spoofed: 0, notUp: 0 },
    ...over,
  }
}

function peer(key: string, name: string | null, over: Partial<PeerView> = {}): PeerView {
  return { key, name, state: 'up', since: '2026-11-26T11:55:00Z', lastError: null, remote: { address: '192.0.2.1', port: 7443 }, hello: null, stats: stats(key), groups: [], ...over }
}

const status: NodeStatus = {
  node: { name: 'desk', key: 'k', overlay: { ipv4: '10.77.0.1', ipv6: 'fd00::1' }, tun: 'qe0', tunMtu: 1420 },
  config: { file: '/etc/quicether.yaml', generation: 1, errors: [], warnings: [], pendingConfirm: null },
  lastApply: null,
  peers: [
    peer('gwkey', 'gateway', {
      stats: stats('gwkey', {
        paths: [
          path('eth0', { rttMs: 25.04, deliveryRate: 6_250_000, cwnd: 150_000, bytesInFlight: 40_960, queued: 3, bytesOut: 300 }),
          path('wwan0', { alive: false, remote: { address: '198.51.100.1', port: 7443 }, rttMs: 80, deliveryRate: 0, bytesOut: 100 }),
        ],
      }),
    }),
    peer('nasKEY00xyz', null, { remote: null, since: '2026-11-24T09:00:00Z', stats: stats('nasKEY00xyz', { bytesIn: 10, bytesOut: 0 }) }),
    peer('lapkey', 'laptop', { state: 'connecting', remote: null, stats: null, since: '2026-11-26T11:59:30Z' }),
  ],
  routes: { fib: [], learned: [], rejected: [] },
  engine: null,
  discovery: null,
  traversal: {
    reflexive: [], nat: 'unknown', punching: [], relay: null, counters: {}, refused: { punch: 0, intro: 0, observed: 0, relay: 0, 'relay-answer': 0, raw: 0 },
    peers: [
      { key: 'gwkey', name: 'gateway', path: 'direct', via: null, local: null, remote: '192.0.2.1:7443', nat: 'none-or-cone' },
      { key: 'nasKEY00xyz', name: null, path: 'relay', via: 'gateway', local: null, remote: '203.0.113.9:7443', nat: 'address-dependent' },
    ],
  },
  observe: null,
  uptimeS: 300,
}

const cells = (text: string) => text.trimEnd().split('\n').map((l) => l.split(/ {2,}/).map((c) => c.trim()))

t.test('peers: a row per peer, path kind from traversal, human numbers, age', async (t) => {
  const rows = cells(renderPeers(status, NOW))
  t.same(rows[0], ['NAME', 'STATE', 'PATH', 'REMOTE', 'RTT', 'IN', 'OUT', 'SINCE'])
  t.same(rows[1], ['gateway', 'up', 'direct', '192.0.2.1:7443', '12.3 ms', '1.5 KiB', '5.0 MiB', '5m00s'])
  t.same(rows[2], ['nasKEY00', 'up', 'relay via gateway', '203.0.113.9:7443', '12.3 ms', '10 B', '0 B', '2d03h'], 'no name: the key; no remote of its own: traversal\'s')
  t.same(rows[3], ['laptop', 'connecting', '-', '-', '-', '-', '-', '30s'])
  t.equal(rows.length, 4)
  t.same(peerRows(status)[0], { name: 'gateway', key: 'gwkey', state: 'up', path: 'direct', via: null, remote: '192.0.2.1:7443', rttMs: 12.34, bytesIn: 1536, bytesOut: 5242880, since: '2026-11-26T11:55:00Z' })
})

t.test('paths: a row per path of each bonded peer, share of bytes sent', async (t) => {
  const rows = cells(renderPaths(status))
  t.same(rows[0], ['PEER', 'UPLINK', 'STATE', 'REMOTE', 'RTT', 'RATE', 'CWND', 'IN FLIGHT', 'QUEUED', 'SHARE'])
  t.same(rows[1], ['gateway', 'eth0', 'alive', '192.0.2.1:7443', '25.0 ms', '50.0 Mbit/s', '146.5 KiB', '40.0 KiB', '3', '75%'])
  t.same(rows[2], ['gateway', 'wwan0', 'DEAD', '198.51.100.1:7443', '80.0 ms', '0 kbit/s', '62.5 KiB', '0 B', '0', '25%'])
  t.equal(rows.length, 3, 'plain peers have no paths')
  t.equal(pathRows(status)[0]?.share, 0.75)
  const quiet = { ...status, peers: [peer('a', 'a', { stats: stats('a', { paths: [path('eth0')] }) })] }
  t.equal(pathRows(quiet)[0]?.share, null, 'nothing sent yet: no share')
  t.match(renderPaths({ ...status, peers: [] }), /^no bonded peers/)
})

t.test('formats', async (t) => {
  t.same([0, 1023, 1024, 1536, 1024 ** 3 * 3.2].map(formatBytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '3.2 GiB'])
  t.same([100_000, 6_250_000, 250_000_000].map(formatRate), ['800 kbit/s', '50.0 Mbit/s', '2.00 Gbit/s'])
  t.equal(formatAge('2026-11-26T12:00:00Z', NOW - 5000), '0s', 'a clock a little behind: not negative')
  t.equal(formatAge('2026-11-26T09:56:00Z', NOW), '2h04m')
  t.equal(formatAge('garbage', NOW), 'garbage')
})

function sockDir(t: { teardown: (f: () => unknown) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'qet-tbl-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

async function daemon(t: { teardown: (f: () => unknown) => void }): Promise<{ socket: string; calls: () => number }> {
  const socket = join(sockDir(t), 'ctl.sock')
  let n = 0
  const server = new ControlServer({ path: socket }, { log: silentLogger, handlers: { status: () => (n++, status) } })
  await server.start()
  t.teardown(() => server.stop())
  return { socket, calls: () => n }
}

t.test('quicether peers / paths, and --json, from the status request', async (t) => {
  const { socket } = await daemon(t)
  const p = await run(['peers', '--socket', socket])
  t.equal(p.code, 0, p.stderr)
  t.match(p.stdout, /^NAME +STATE +PATH/)
  t.match(p.stdout, /^gateway +up +direct +192\.0\.2\.1:7443/m)
  const pj = await run(['peers', '--socket', socket, '--json'])
  t.equal((JSON.parse(pj.stdout) as unknown[]).length, 3)
  const q = await run(['paths', '--socket', socket])
  t.match(q.stdout, /^gateway +wwan0 +DEAD/m)
  const qj = JSON.parse((await run(['paths', '--socket', socket, '--json'])).stdout) as { uplink: string; share: number }[]
  t.same(qj.map((r) => [r.uplink, r.share]), [['eth0', 0.75], ['wwan0', 0.25]])
})

t.test('status --watch: snapshots until SIGINT, then exit 0 with the handler gone', async (t) => {
  const { socket, calls } = await daemon(t)
  const before = process.listenerCount('SIGINT')
  const done = run(['status', '--socket', socket, '--watch', '--interval', '0.1'])
  // The fourth request starts only after the third snapshot is written (a reply still on its way when Ctrl-C comes is dropped).
  while (calls() < 4) await new Promise((r) => setTimeout(r, 20))
  process.emit('SIGINT')
  const r = await done
  t.equal(r.code, 0)
  t.ok(r.stdout.split(/^--- \d{4}-/m).length - 1 >= 3, 'separated snapshots (not a TTY)')
  t.match(r.stdout, /^peers {4}2 up of 3/m)
  t.notOk(r.stdout.includes('\x1b['), 'no escape codes into a pipe')
  t.equal(process.listenerCount('SIGINT'), before)
  const bad = await run(['status', '--socket', socket, '--watch', '--interval', '0'])
  t.equal(bad.code, 2)
})

t.test('watch on a terminal clears the screen; a failed snapshot is shown and the watch goes on', async (t) => {
  const ac = new AbortController()
  let out = ''
  let n = 0
  await watch({
    intervalMs: 1, signal: ac.signal, tty: true, now: () => NOW, out: { write: (s: string) => (out += s) },
    snapshot: async () => {
      if (++n === 3) ac.abort()
      if (n === 2) throw new (await import('../../src/observe/control-socket.js')).DaemonNotRunningError('no daemon answers')
      return `snapshot ${n}\n`
    },
  })
  const frames = out.split('\x1b[H\x1b[2J').slice(1)
  t.equal(frames.length, 2, 'the third snapshot came after Ctrl-C: not drawn')
  t.match(frames[0], /^2026-11-26T12:00:00\.000Z .*Ctrl-C.*\n\nsnapshot 1\n$/)
  t.match(frames[1], /quicether: no daemon answers \(QE_/)
})
