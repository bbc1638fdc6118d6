/**
 * `quicether lab nat` and `quicether lab roam`: real daemons behind emulated
 * NATs (src/lab/nat-world.ts), finding and reaching each other.
 *
 * nat: two members, `a` and `b`, each behind its own NAT of a given type on
 * its own ISP router, and one public member `relay` (gateway.relay, a
 * bootstrap node for discovery). `a` and `b` know only the network (CA,
 * certificate, secret) and the relay's discovery address. It measures:
 *   connect_ms  from both daemons being up (their control sockets answer)
 *               until pings cross the tunnel both ways;
 *   path        how a reaches b then (direct, or relay), from a's status;
 *   mbit        a TCP transfer a → b through the tunnel (iperf3).
 * The daemons' own start (three node processes on a small machine) is
 * reported apart, as in `lab mesh`.
 *
 * roam: a client with two uplinks (wifi and lte, each behind its own NAT)
 * and a public server; mid-transfer the client's address moves from wifi
 * to lte (one uplink at a time). gap_ms is the longest stretch of the
 * transfer with no bytes delivered; resets the TCP resets the client saw.
 */
import { cp, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { controlRequest } from '../observe/control-socket.js'
import type { NodeStatus } from '../observe/status.js'
import { generateIdentity, publicKeyBase64, saveIdentity } from '../mesh/identity.js'
import { initCa, openCa, saveCertificate } from '../pki/index.js'
import { LabDaemon } from './daemon.js'
import { LabCommandError } from './errors.js'
import { runIn } from './exec.js'
import { checkAborted } from './interrupt.js'
import { newRunId, runDir } from './names.js'
import { buildNatWorld, buildRoamWorld, type NatWorld } from './nat-world.js'
import { NAT_TYPES, type NatType } from './nat-types.js'
import { DIRECT_RETRY_MIN_MS, PUNCH_WINDOW_MAX_MS } from '../traversal/traversal.js'
import { IperfServer, iperfClient, parseIperf3Json, pingOnce } from './traffic.js'

export { NAT_TYPES, type NatType }

const PORT = 7443
const NETWORK = 'labnat'
const OVERLAY = { ipv4: '100.72.0.0/16', ipv6: 'fd72:72:72::/48' }

export interface NatPairResult {
  readonly a: NatType
  readonly b: NatType
  readonly connected: boolean
  readonly path: 'direct' | 'lan' | 'relay' | null
  readonly connect_ms: number | null
  readonly mbit: number | null
  /** From spawning a and b until both answered on their control sockets. */
  readonly daemon_start_ms: number | null
  /** The access links' rate (each of a's and b's), Mbit/s: the slower leg of a relayed path. */
  readonly leg_mbit: number
  readonly run_id: string
}

export interface NatOptions {
  readonly a: NatType
  readonly b: NatType
  readonly seconds: number
  /** Access link rate, Mbit/s (a's and b's uplinks to their ISP routers). */
  readonly rateMbit: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

interface LabNode {
  readonly name: string
  readonly netns: string
  readonly dir: string
  readonly configPath: string
  readonly socket: string
  daemon: LabDaemon | null
}

async function status(n: LabNode): Promise<NodeStatus | null> {
  try {
    return (await controlRequest(n.socket, 'status', {}, 2000)) as NodeStatus
  } catch {
    return null
  }
}

async function timeUntil(cond: () => Promise<boolean>, deadlineMs: number, signal?: AbortSignal): Promise<number | null> {
  const t0 = Date.now()
  while (Date.now() - t0 < deadlineMs) {
    checkAborted(signal)
    if (await cond()) return Date.now() - t0
    await new Promise((r) => setTimeout(r, 20))
  }
  return null
}

/** Identities, a CA, certificates and configs for the named members; `public` ones relay and bootstrap. */
async function writeNodes(dir: string, nodes: readonly { name: string; netns: string; publicAddress: string | null }[], bootstrap: string): Promise<Map<string, LabNode>> {
  const caDir = join(dir, 'ca')
  await initCa(caDir, { network: NETWORK, overlay: OVERLAY })
  const ca = await openCa(caDir)
  const secret = (await ca.secret()).toString('base64') + '\n'
  const out = new Map<string, LabNode>()
  for (const n of nodes) {
    const home = join(dir, n.name)
    await mkdir(home, { mode: 0o700 })
    const id = generateIdentity()
    await saveIdentity(join(home, 'identity.key'), id)
    await saveCertificate(join(home, 'node.crt'), await ca.sign({ key: publicKeyBase64(id), name: n.name }))
    await writeFile(join(home, 'network.secret'), secret, { mode: 0o600 })
    const node: LabNode = { name: n.name, netns: n.netns, dir: home, configPath: join(home, 'quicether.yaml'), socket: join(home, 'control.sock'), daemon: null }
    const pub = n.publicAddress !== null
    const doc = {
      node: { name: n.name, 'state-dir': home, ...(pub ? { role: 'gateway', 'bootstrap-mode': true } : {}) },
      network: { name: NETWORK, ca: ca.info.publicKey, overlay: OVERLAY },
      tun: { name: 'qe0' },
      listen: { address: '0.0.0.0', port: PORT },
      discovery: { dht: true, bootstrap: pub ? [] : [bootstrap], lan: false, ...(pub ? { 'public-address': n.publicAddress, 'advertise-as-bootstrap': true } : {}) },
      ...(pub ? { gateway: { relay: true } } : {}),
      logging: { level: 'debug', destination: join(home, 'daemon.log') },
      control: { socket: node.socket },
    }
    await writeFile(node.configPath, stringify(doc))
    out.set(n.name, node)
  }
  return out
}

function startDaemon(runId: string, n: LabNode): void {
  n.daemon = new LabDaemon({ node: n.name, netns: n.netns, key: '', configPath: n.configPath, logPath: join(n.dir, 'stdout.log'), runId, detached: false })
  n.daemon.start()
}

function isUp(st: NodeStatus | null, key: string | undefined): boolean {
  return st?.peers.some((p) => p.key === key && p.state === 'up') === true
}

/** One ping that waits at most 200 ms for its answer. */
async function quickPing(netns: string, dst: string): Promise<boolean> {
  const r = await runIn(netns, 'ping', ['-n', '-q', '-c', '1', '-W', '0.2', dst], { allowFail: true })
  return r.code === 0
}

interface PairContext {
  readonly world: NatWorld
  readonly runId: string
  readonly a: LabNode
  readonly b: LabNode
  readonly relay: LabNode
  readonly keys: { readonly a: string; readonly b: string }
  readonly overlay: { readonly a: string; readonly b: string }
  /** When a and b were spawned, and how long until both answered. */
  readonly spawned: number
  readonly startMs: number
}

/**
 * One lab run: builds a world (it claims the run id and its directory), writes
 * its members (the first public: it relays and bootstraps the others), runs
 * `body`, and always stops the daemons, keeps their logs when asked, and
 * tears the world down.
 */
async function withLabRun<W extends { readonly teardown: () => Promise<void> }, T>(
  build: (runId: string) => Promise<W>,
  members: (w: W) => readonly { name: string; netns: string; publicAddress: string | null }[],
  body: (w: W, nodes: ReadonlyMap<string, LabNode>, runId: string) => Promise<T>,
): Promise<T> {
  const runId = newRunId()
  const dir = runDir(runId)
  const world = await build(runId)
  let nodes: Map<string, LabNode> = new Map()
  try {
    await mkdir(dir, { mode: 0o700, recursive: true }) // the world claimed it already
    const list = members(world)
    nodes = await writeNodes(dir, list, `${list[0]?.publicAddress ?? ''}:${PORT + 1}`)
    return await body(world, nodes, runId)
  } finally {
    for (const n of nodes.values()) await n.daemon?.stop().catch(() => undefined)
    await keepLogs(runId, [...nodes.values()])
    await world.teardown()
  }
}

/**
 * Builds a world of two NAT types, writes the members, starts the relay, then
 * a and b together, and runs `body` once both are up. Always tears down.
 */
async function withNatPair<T>(o: { a: NatType; b: NatType; rateMbit: number; signal?: AbortSignal; before?: (w: NatWorld) => Promise<void> }, body: (c: PairContext) => Promise<T>): Promise<T> {
  return withLabRun(
    async (run) => {
      const w = await buildNatWorld({ a: o.a, b: o.b, rate: `${o.rateMbit}mbit`, run })
      await o.before?.(w).catch(async (err: unknown) => {
        await w.teardown()
        throw err
      })
      return w
    },
    (w) => [
      { name: 'relay', netns: w.ns.pub, publicAddress: w.addr.pub1 },
      { name: 'a', netns: w.ns.a, publicAddress: null },
      { name: 'b', netns: w.ns.b, publicAddress: null },
    ],
    async (world, m, runId) => {
      const relay = m.get('relay') as LabNode
      const a = m.get('a') as LabNode
      const b = m.get('b') as LabNode
      startDaemon(runId, relay)
      if ((await timeUntil(async () => (await status(relay))?.node != null, 20_000, o.signal)) === null) throw new LabCommandError(`the relay did not start\n${relay.daemon?.logTail().join('\n')}`)
      const spawned = Date.now()
      startDaemon(runId, a)
      startDaemon(runId, b)
      const startMs = await timeUntil(async () => (await status(a))?.node != null && (await status(b))?.node != null, 20_000, o.signal)
      if (startMs === null) throw new LabCommandError(`a or b did not start\n${a.daemon?.logTail().join('\n')}\n${b.daemon?.logTail().join('\n')}`)
      const sa = (await status(a)) as NodeStatus
      const sb = (await status(b)) as NodeStatus
      return body({
        world,
        runId,
        a,
        b,
        relay,
        keys: { a: sa.node?.key as string, b: sb.node?.key as string },
        overlay: { a: sa.node?.overlay.ipv4 as string, b: sb.node?.overlay.ipv4 as string },
        spawned,
        startMs,
      })
    },
  )
}

/** Ms until a and b list each other up (cheap to poll) and then a ping crosses each way; null after `deadlineMs`. */
async function timeToConnect(c: PairContext, deadlineMs: number, signal?: AbortSignal): Promise<number | null> {
  const t0 = Date.now()
  const up = await timeUntil(async () => isUp(await status(c.a), c.keys.b) && isUp(await status(c.b), c.keys.a), deadlineMs, signal)
  if (up === null) return null
  const ping = await timeUntil(async () => (await quickPing(c.a.netns, c.overlay.b)) && (await quickPing(c.b.netns, c.overlay.a)), deadlineMs, signal)
  return ping === null ? null : Date.now() - t0
}

/** How a reaches b now, from a's status. */
async function pathOf(c: PairContext): Promise<NatPairResult['path']> {
  const p = (await status(c.a))?.traversal?.peers.find((x) => x.key === c.keys.b)
  return p ? p.path : null
}

/** One pair of NAT types: the figures of `lab nat`. */
export async function runNatPair(o: NatOptions): Promise<NatPairResult> {
  const say = o.progress ?? (() => undefined)
  return withNatPair(o, async (c) => {
    say(`run ${c.runId}: a (${o.a}) and b (${o.b}) behind their NATs, relay public; a and b up after ${c.startMs} ms`)
    const connectMs = await timeToConnect(c, o.seconds * 1000 + 10_000, o.signal)
    say(connectMs === null ? 'a and b did not connect' : `a and b connected ${connectMs} ms after both were up (${Date.now() - c.spawned} ms after their spawn)`)
    let path: NatPairResult['path'] = null
    let mbit: number | null = null
    if (connectMs !== null) {
      path = await pathOf(c)
      const server = new IperfServer({ netns: c.b.netns, bind: c.overlay.b, runId: c.runId })
      await server.start()
      try {
        const r = await iperfClient(c.a.netns, c.overlay.b, { seconds: Math.max(2, Math.min(o.seconds, 5)), ...(o.signal ? { signal: o.signal } : {}) })
        mbit = Math.round(r.mbit * 10) / 10
      } finally {
        await server.stop()
      }
      const after = await pathOf(c)
      if (after !== path) say(`path moved from ${path} to ${after} during the transfer`)
      say(`path ${path}, ${mbit} Mbit/s`)
    }
    return { a: o.a, b: o.b, connected: connectMs !== null, path, connect_ms: connectMs, mbit, daemon_start_ms: c.startMs, leg_mbit: o.rateMbit, run_id: c.runId }
  })
}

export interface SwitchResult {
  /** The path before the direct one opened (relay, as the block forces). */
  readonly path_before: NatPairResult['path']
  readonly path_after: NatPairResult['path']
  /** From opening the direct path until a lists b as direct. */
  readonly switch_ms: number | null
  /** The move came while the transfer ran (so the TCP flow crossed it). */
  readonly switched_in_transfer: boolean
  /** The block went before the pair's first try at direct (else the lab fell behind, and the move waits for the next try). */
  readonly unblocked_before_first_try: boolean
  /** TCP resets the transfer saw (a's kernel, counted until half a second before its planned end: iperf3 ends its data connection with one), and whether iperf3 finished cleanly. */
  readonly resets: number
  readonly transfer_ok: boolean
  readonly mbit: number | null
  readonly run_id: string
}

/**
 * The move to direct: two port-restricted NATs whose direct path is blocked
 * at first (the internet drops packets between them), so a and b connect
 * through the relay; mid-transfer the block goes, and the pair must move to
 * a direct path without the TCP flow inside noticing more than a dip.
 */
export async function runNatSwitch(o: { seconds: number; rateMbit: number; signal?: AbortSignal; progress?: (line: string) => void }): Promise<SwitchResult> {
  const say = o.progress ?? (() => undefined)
  // The pair tries direct again 5 s after it was relayed, then 10 s after that, 20 s…: the block goes a third into the
  // transfer, or two seconds before the first try if that comes sooner. A lab that fell behind (a loaded machine) misses the
  // first try; the wait for the move then covers the next one and its punching.
  const switchDeadlineMs = Math.max(o.seconds * 1000, 2 * DIRECT_RETRY_MIN_MS + PUNCH_WINDOW_MAX_MS + 2000)
  const block = (w: NatWorld) => ['table inet qeblock {', '  chain forward {', '    type filter hook forward priority -5; policy accept;', `    ip saddr ${w.addr.ispA} ip daddr ${w.addr.ispB} drop`, `    ip saddr ${w.addr.ispB} ip daddr ${w.addr.ispA} drop`, '  }', '}', ''].join('\n')
  return withNatPair({ a: 'port-restricted', b: 'port-restricted', rateMbit: o.rateMbit, ...(o.signal ? { signal: o.signal } : {}), before: async (w) => void (await w.exec('inet', 'nft', ['-f', '-'], { input: block(w) })) }, async (c) => {
    if ((await timeToConnect(c, 20_000, o.signal)) === null) throw new LabCommandError('a and b did not connect through the relay')
    const before = await pathOf(c)
    const sinces = [[c.a, c.keys.b], [c.b, c.keys.a]] as const
    const relayedAt = Math.min(...(await Promise.all(sinces.map(async ([n, k]) => Date.parse((await status(n))?.peers.find((p) => p.key === k)?.since ?? '')))).filter(Number.isFinite))
    const firstTry = relayedAt + DIRECT_RETRY_MIN_MS
    say(`connected, path ${before}; transfer a → b for ${o.seconds} s, the direct path opens during it (the pair's first try: ${Math.round((firstTry - Date.now()) / 100) / 10} s from now)`)
    const server = new IperfServer({ netns: c.b.netns, bind: c.overlay.b, runId: c.runId })
    await server.start()
    try {
      const resetsBefore = await tcpResets(c.a.netns)
      const started = Date.now()
      const transfer = runIn(c.a.netns, 'iperf3', ['-c', c.overlay.b, '-t', String(o.seconds), '-J'], { allowFail: true, timeoutMs: (o.seconds + 30) * 1000 })
      // Resets are counted while the transfer still runs: iperf3 ends its own data connection with one (the
      // server's RST), and a move that came late would otherwise be charged with it.
      const resetsAtEnd = new Promise<void>((res) => setTimeout(res, o.seconds * 1000 - 500)).then(() => tcpResets(c.a.netns)).catch(() => Number.NaN) // NaN: not counted (the run was stopped)
      const planned = Math.min(started + (o.seconds * 1000) / 3, firstTry - 2000)
      await new Promise((r) => setTimeout(r, Math.max(planned, started + 200) - Date.now()))
      await c.world.exec('inet', 'nft', ['delete', 'table', 'inet', 'qeblock'])
      const unblockedBeforeTry = Date.now() < firstTry
      const switchMs = await timeUntil(async () => (await pathOf(c)) !== 'relay', switchDeadlineMs, o.signal)
      const after = await pathOf(c)
      const inTransfer = switchMs !== null && Date.now() - started < o.seconds * 1000
      const resets = (await resetsAtEnd) - resetsBefore
      const r = await transfer
      let mbit: number | null = null
      let ok = r.code === 0
      try {
        mbit = Math.round(parseIperf3Json(r.stdout).mbit * 10) / 10
      } catch {
        ok = false
      }
      say(`path ${after} ${switchMs === null ? 'never' : `${switchMs} ms after the direct path opened${inTransfer ? '' : ' (after the transfer ended)'}`}; ${resets} reset(s); ${mbit} Mbit/s over the transfer`)
      return { path_before: before, path_after: after, switch_ms: switchMs, switched_in_transfer: inTransfer, unblocked_before_first_try: unblockedBeforeTry, resets, transfer_ok: ok, mbit, run_id: c.runId }
    } finally {
      await server.stop()
    }
  })
}

/** With QE_LAB_KEEP_LOGS=DIR, the daemons' logs are copied to DIR/RUN/ before the run's directory goes. */
async function keepLogs(runId: string, nodes: readonly LabNode[]): Promise<void> {
  const dir = process.env.QE_LAB_KEEP_LOGS
  if (!dir) return
  for (const n of nodes) {
    await cp(join(n.dir, 'daemon.log'), join(dir, runId, `${n.name}.log`)).catch(() => undefined)
    await cp(join(n.dir, 'iperf.json'), join(dir, runId, `${n.name}.iperf.json`)).catch(() => undefined)
  }
}

/** Every unordered pair of types, each with itself too (15 pairs). */
export function natMatrix(): [NatType, NatType][] {
  const out: [NatType, NatType][] = []
  for (let i = 0; i < NAT_TYPES.length; i++) for (let j = i; j < NAT_TYPES.length; j++) out.push([NAT_TYPES[i] as NatType, NAT_TYPES[j] as NatType])
  return out
}

/**
 * Whether two NAT types allow a direct path (RFC 4787): unless one side lets
 * anyone in (public, full cone) or filters by address only (restricted cone),
 * a side whose mapping changes per destination (symmetric) cannot be reached
 * at a port the other side can learn before its first packet arrives.
 */
export function directPossible(a: NatType, b: NatType): boolean {
  const open = (t: NatType) => t === 'public' || t === 'full-cone' || t === 'restricted-cone'
  if (a === 'symmetric' && b === 'symmetric') return false
  if (a === 'symmetric') return open(b)
  if (b === 'symmetric') return open(a)
  return true
}

/** The worst of many pairs (`lab nat --random`): failures, direct pairs that were relayed, the slowest connects, the lowest rate against the access link. */
export function summarizeNat(seed: number, rs: readonly NatPairResult[]): Record<string, number | null> {
  const direct = rs.filter((r) => r.connected && r.path !== 'relay').map((r) => r.connect_ms ?? 0)
  const relay = rs.filter((r) => r.connected && r.path === 'relay').map((r) => r.connect_ms ?? 0)
  const ratios = rs.filter((r) => r.mbit !== null).map((r) => (r.mbit as number) / r.leg_mbit)
  return {
    seed,
    pairs: rs.length,
    not_connected: rs.filter((r) => !r.connected).length,
    relayed_but_direct_possible: rs.filter((r) => r.connected && r.path === 'relay' && directPossible(r.a, r.b)).length,
    worst_direct_connect_ms: direct.length ? Math.max(...direct) : null,
    worst_relay_connect_ms: relay.length ? Math.max(...relay) : null,
    lowest_rate_of_leg: ratios.length ? Math.round(Math.min(...ratios) * 100) / 100 : null,
  }
}

export function formatNat(rs: readonly NatPairResult[]): string {
  const lines = [`${'a'.padEnd(16)} ${'b'.padEnd(16)} ${'path'.padEnd(7)} ${'connect'.padStart(9)} ${'Mbit/s'.padStart(7)}  expected`]
  for (const r of rs) {
    const want = directPossible(r.a, r.b) ? 'direct' : 'relay'
    lines.push(`${r.a.padEnd(16)} ${r.b.padEnd(16)} ${(r.connected ? (r.path ?? '?') : 'DOWN').padEnd(7)} ${(r.connect_ms === null ? '-' : `${r.connect_ms} ms`).padStart(9)} ${(r.mbit === null ? '-' : String(r.mbit)).padStart(7)}  ${want}${r.connected && r.path !== null && (r.path === 'relay') !== (want === 'relay') ? '  (!)' : ''}`)
  }
  return lines.join('\n')
}

// ---- roaming ----

export interface RoamResult {
  /** The longer of: the longest run of 100 ms iperf3 intervals that carried under a tenth of the median rate, and of 10 ms pings lost. */
  readonly gap_ms: number | null
  readonly ping_gap_ms: number | null
  readonly resets: number
  readonly mbit_before: number | null
  readonly mbit_after: number | null
  readonly moved_at_s: number
  readonly run_id: string
}

export interface RoamOptions {
  readonly seconds: number
  readonly rateMbit: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

export async function runRoam(o: RoamOptions): Promise<RoamResult> {
  const say = o.progress ?? (() => undefined)
  return withLabRun(
    (run) => buildRoamWorld({ rate: `${o.rateMbit}mbit`, run }),
    (w) => [
      { name: 'server', netns: w.ns.server, publicAddress: w.addr.server },
      { name: 'client', netns: w.ns.client, publicAddress: null },
    ],
    async (world, m, runId) => {
      const dir = runDir(runId)
      const server = m.get('server') as LabNode
      const client = m.get('client') as LabNode
      startDaemon(runId, server)
      startDaemon(runId, client)
      if ((await timeUntil(async () => (await status(server))?.node != null && (await status(client))?.node != null, 20_000, o.signal)) === null) throw new LabCommandError('the daemons did not start')
      const sOverlay = (await status(server))?.node?.overlay.ipv4 as string
      if ((await timeUntil(() => pingOnce(client.netns, sOverlay, 300), 20_000, o.signal)) === null) throw new LabCommandError(`the client never reached the server\n${client.daemon?.logTail().join('\n')}`)
      const resetsBefore = await tcpResets(client.netns)
      const iperf = new IperfServer({ netns: server.netns, bind: sOverlay, runId })
      await iperf.start()
      const movedAt = o.seconds / 2
      say(`transfer client → server for ${o.seconds} s; the client moves from wifi to lte at ${movedAt} s`)
      try {
        const transfer = runIn(client.netns, 'iperf3', ['-c', sOverlay, '-t', String(o.seconds), '-i', '0.1', '-J'], { allowFail: true, timeoutMs: (o.seconds + 30) * 1000 })
        // Pings every 10 ms through the tunnel from 1 s before the move to 3 s after it: the longest
        // run of lost ones is the gap at a finer grain than iperf3's 100 ms intervals.
        await new Promise((r) => setTimeout(r, (movedAt - 1) * 1000))
        const pings = runIn(client.netns, 'ping', ['-n', '-i', '0.01', '-w', '4', sOverlay], { allowFail: true, timeoutMs: 10_000 })
        await new Promise((r) => setTimeout(r, 1000))
        await world.moveTo('lte')
        // Counted before the transfer ends: iperf3 itself may close its sockets with a reset.
        await new Promise((res) => setTimeout(res, Math.min(2, (o.seconds - movedAt) / 2) * 1000))
        const resetsAfter = await tcpResets(client.netns)
        const r = await transfer
        if (process.env.QE_LAB_KEEP_LOGS) await writeFile(join(dir, 'client', 'iperf.json'), r.stdout).catch(() => undefined)
        const intervals = iperfIntervals(r.stdout)
        const resets = resetsAfter - resetsBefore + (/"error"\s*:/.test(r.stdout) ? 1 : 0)
        const fig = roamFigures(intervals, movedAt)
        const pingGap = longestLoss((await pings).stdout, 10)
        const gap = fig.gapMs === null ? null : Math.max(fig.gapMs, pingGap ?? 0)
        say(`gap ${gap} ms (iperf3 intervals ${fig.gapMs} ms, pings ${pingGap} ms), ${resets} reset(s), ${fig.before} Mbit/s before, ${fig.after} after`)
        return { gap_ms: gap, ping_gap_ms: pingGap, resets, mbit_before: fig.before, mbit_after: fig.after, moved_at_s: movedAt, run_id: runId }
      } finally {
        await iperf.stop()
      }
    },
  )
}

/** TCP connections the client's kernel saw reset (both ways), from /proc/net/snmp. */
async function tcpResets(netns: string): Promise<number> {
  const r = await runIn(netns, 'cat', ['/proc/net/snmp'])
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:'))
  const names = (lines[0] ?? '').split(/\s+/)
  const values = (lines[1] ?? '').split(/\s+/)
  const get = (n: string) => Number(values[names.indexOf(n)] ?? 0)
  return get('EstabResets') // established connections that were reset
}

/** The longest run of pings (sent every `everyMs`) that got no answer, ms; null when none was answered. */
export function longestLoss(pingOutput: string, everyMs: number): number | null {
  const seqs = [...pingOutput.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b)
  if (seqs.length === 0) return null
  let worst = 0
  for (let i = 1; i < seqs.length; i++) worst = Math.max(worst, (seqs[i] as number) - (seqs[i - 1] as number) - 1)
  return worst * everyMs
}

/** iperf3 -J intervals: [start s, end s, bytes]. */
export function iperfIntervals(text: string): { start: number; end: number; bytes: number }[] {
  try {
    const doc = JSON.parse(text) as { intervals?: { sum?: { start: number; end: number; bytes: number } }[] }
    return (doc.intervals ?? []).flatMap((i) => (i.sum ? [{ start: i.sum.start, end: i.sum.end, bytes: i.sum.bytes }] : []))
  } catch {
    return []
  }
}

/**
 * The longest stretch of intervals (at or after `movedAt` - 1 s) that carried
 * less than a tenth of the median before the move, and the mean rates
 * before and after it (the gap left out).
 */
export function roamFigures(iv: readonly { start: number; end: number; bytes: number }[], movedAt: number): { gapMs: number | null; before: number | null; after: number | null } {
  if (iv.length === 0) return { gapMs: null, before: null, after: null }
  const rate = (x: { start: number; end: number; bytes: number }) => (x.bytes * 8) / Math.max(1e-6, x.end - x.start) / 1e6
  const pre = iv.filter((x) => x.end <= movedAt && x.start >= 1)
  const sorted = pre.map(rate).sort((p, q) => p - q)
  const median = sorted.length ? (sorted[Math.floor(sorted.length / 2)] as number) : 0
  const low = median / 10
  let gap = 0
  let run = 0
  let runStart = 0
  let gapEnd = movedAt
  for (const x of iv) {
    if (x.end < movedAt - 1) continue
    if (rate(x) < low) {
      if (run === 0) runStart = x.start
      run = x.end - runStart
      if (run > gap) {
        gap = run
        gapEnd = x.end
      }
    } else run = 0
  }
  const post = iv.filter((x) => x.start >= gapEnd + 1)
  const mean = (xs: readonly { start: number; end: number; bytes: number }[]) => (xs.length ? Math.round(xs.reduce((s, x) => s + rate(x), 0) / xs.length * 10) / 10 : null)
  return { gapMs: Math.round(gap * 1000), before: mean(pre), after: mean(post) }
}

export function formatRoam(r: RoamResult): string {
  return [
    `gap        ${r.gap_ms === null ? '-' : `${r.gap_ms} ms`}   (target ≤ 1000 ms; the users' requirement is 5 s)`,
    `resets     ${r.resets}`,
    `before     ${r.mbit_before ?? '-'} Mbit/s`,
    `after      ${r.mbit_after ?? '-'} Mbit/s`,
  ].join('\n')
}
