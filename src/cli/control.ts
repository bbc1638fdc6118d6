/**
 * Commands that talk to a running daemon over its control socket, or to the
 * kernel when none runs: `status` (once or `--watch`), `peers`, `paths`,
 * `plan`, `apply`, `confirm`.
 *
 * Which socket: `--socket`, else the `control.socket` of the config file
 * (`--config`, default /etc/quicether.yaml) when it loads, else the default.
 */
import { access } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Command } from 'commander'
import { loadConfigFile, type Config } from '../config/index.js'
import { silentLogger } from '../log.js'
import { deriveOverlayAddresses, loadIdentity, publicKeyBase64 } from '../mesh/identity.js'
import { controlRequest, DaemonNotRunningError } from '../observe/control-socket.js'
import { EXIT_INVALID, EXIT_OK, formatError, type CliContext, type TextSink } from './context.js'
import { formatLines } from './report.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'
import { isQeError, UsageError } from '../errors.js'
import type { NodeStatus } from '../observe/status.js'
import { pathRows, peerRows, renderPaths, renderPeers } from './tables.js'
import type { MeshRoutes } from '../state/routes.js'

const DEFAULT_SOCKET = '/run/quicether/control.sock'
/** `quicether plan` exit code when changes are pending (like `terraform plan -detailed-exitcode`). */
const EXIT_PENDING = 2

interface CommonOpts {
  config: string
  socket?: string
  json?: boolean
}

export async function socketFor(opts: { config: string; socket?: string }): Promise<string> {
  if (opts.socket) return opts.socket
  try {
    await access(opts.config)
  } catch {
    return DEFAULT_SOCKET
  }
  const r = await loadConfigFile(opts.config).catch(() => null)
  return r?.ok ? r.config.control.socket : DEFAULT_SOCKET
}

export function registerControlCommands(program: Command, ctx: CliContext): void {
  const { stdout, stderr } = ctx.io
  const common = (c: Command) =>
    c
      .option('-c, --config <path>', 'config file (to find the control socket; for plan/apply: the config to use)', DEFAULT_CONFIG_PATH)
      .option('--socket <path>', 'control socket of the daemon (default: control.socket of the config)')
      .option('--json', 'print JSON')

  common(program.command('status').summary('show the running node: config generation, last apply, errors, peers, routes'))
    .option('-w, --watch', 'redraw every --interval until Ctrl-C')
    .option('--interval <seconds>', 'with --watch: seconds between redraws', '2')
    .action(async (opts: CommonOpts & { watch?: boolean; interval: string }) => {
      const socket = await socketFor(opts)
      const render = (st: Record<string, unknown>) => (opts.json ? JSON.stringify(st, null, 2) + '\n' : renderStatus(st))
      if (opts.watch) {
        const intervalMs = parseInterval(opts.interval)
        await untilInterrupted((signal) =>
          watch({ intervalMs, signal, out: stdout, tty: isTty(stdout), snapshot: async () => render((await controlRequest(socket, 'status')) as Record<string, unknown>) }),
        )
        ctx.exitCode = EXIT_OK
        return
      }
      const st = (await controlRequest(socket, 'status')) as Record<string, unknown>
      stdout.write(render(st))
      const errors = (st.config as { errors?: unknown[] } | undefined)?.errors ?? []
      ctx.exitCode = errors.length > 0 ? EXIT_INVALID : EXIT_OK
    })

  common(program.command('peers').summary('table of peers: state, direct/lan/relay, remote, RTT, traffic, since')).action(async (opts: CommonOpts) => {
    const st = (await controlRequest(await socketFor(opts), 'status')) as NodeStatus
    stdout.write(opts.json ? JSON.stringify(peerRows(st), null, 2) + '\n' : renderPeers(st, Date.now()))
    ctx.exitCode = EXIT_OK
  })

  common(program.command('paths').summary("table of bonded peers' uplink paths: alive, RTT, rate, cwnd, queue, share")).action(async (opts: CommonOpts) => {
    const st = (await controlRequest(await socketFor(opts), 'status')) as NodeStatus
    stdout.write(opts.json ? JSON.stringify(pathRows(st), null, 2) + '\n' : renderPaths(st))
    ctx.exitCode = EXIT_OK
  })

  common(
    program
      .command('plan')
      .summary('dry run: what applying the config would change (exit 0 nothing, 2 pending, 1 error)')
      .description('Against the running daemon when one answers on the control socket, else against the kernel.'),
  ).action(async (opts: CommonOpts) => {
    let res: { ok: boolean; errors: { file: string; line: number; col: number; path: string; severity: 'error' | 'warning'; code: string; message: string }[]; actions: { text: string; live: boolean }[]; restartTunnels: boolean }
    let against = 'the running daemon'
    try {
      res = (await controlRequest(await socketFor(opts), 'plan', { file: opts.config })) as typeof res
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError)) throw err
      against = 'the kernel (no daemon is running)'
      res = await planAgainstKernel(opts.config)
    }
    if (opts.json) {
      stdout.write(JSON.stringify({ against, ...res }, null, 2) + '\n')
    } else {
      if (!res.ok) stderr.write(formatLines(res.errors, 'text'))
      stdout.write(`plan for ${opts.config} against ${against}:\n`)
      if (res.actions.length === 0) stdout.write('  no changes\n')
      for (const a of res.actions) stdout.write(`  ${a.text}${a.live ? '' : '   (needs a restart)'}\n`)
      if (res.restartTunnels) stdout.write('  ! identity, listen address or TUN name changes: every tunnel is rebuilt (no process restart)\n')
    }
    ctx.exitCode = !res.ok ? EXIT_INVALID : res.actions.length > 0 || res.restartTunnels ? EXIT_PENDING : EXIT_OK
  })

  common(
    program
      .command('apply')
      .summary('apply a config to the running daemon now (with --confirm: revert unless confirmed)')
      .description(
        'Applies the config file to the running daemon and waits for the result. A file other than the\n' +
          'daemon\'s own becomes its config (written over it). With --confirm, the change reverts by itself\n' +
          'unless `quicether confirm` runs in time: for changes made over the very tunnel they change.\n' +
          'To try a change safely, write it to another file and apply that file with --confirm.',
      )
      .option('--confirm <duration>', 'revert unless confirmed within this time, e.g. 60s, 2m'),
  ).action(async (opts: CommonOpts & { confirm?: string }) => {
    const confirmMs = opts.confirm === undefined ? null : parseDuration(opts.confirm)
    const res = (await controlRequest(await socketFor(opts), 'apply', { file: opts.config, confirmMs }, 60_000)) as {
      ok: boolean
      errors: { file: string; line: number; col: number; path: string; severity: 'error' | 'warning'; code: string; message: string }[]
      plan: string[]
      confirm?: { deadline: string } | null
    }
    if (opts.json) stdout.write(JSON.stringify(res, null, 2) + '\n')
    else {
      if (!res.ok) stderr.write(formatLines(res.errors, 'text'))
      for (const line of res.plan) stdout.write(`  ${line}\n`)
      if (res.ok) stdout.write(res.plan.length ? `applied ${res.plan.length} change(s)\n` : 'applied: no kernel changes\n')
      else stdout.write('not applied: nothing changed\n')
      if (res.ok && res.confirm) stdout.write(`run 'quicether confirm' before ${res.confirm.deadline}, or the change reverts\n`)
    }
    ctx.exitCode = res.ok ? EXIT_OK : EXIT_INVALID
  })

  common(program.command('confirm').summary('keep the change a `quicether apply --confirm` made')).action(async (opts: CommonOpts) => {
    const res = (await controlRequest(await socketFor(opts), 'confirm')) as { file: string }
    if (opts.json) stdout.write(JSON.stringify(res) + '\n')
    else stdout.write(`confirmed: ${res.file} is the config\n`)
    ctx.exitCode = EXIT_OK
  })
}

function parseInterval(text: string): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n < 0.1 || n > 3600) throw new UsageError(`--interval: '${text}' is not a number of seconds between 0.1 and 3600`)
  return Math.round(n * 1000)
}

function isTty(out: TextSink): boolean {
  return (out as { isTTY?: boolean }).isTTY === true
}

/** Runs `body` with a signal that aborts on the first SIGINT or SIGTERM; the handlers are removed after. */
async function untilInterrupted(body: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = new AbortController()
  const stop = () => ac.abort()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    await body(ac.signal)
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

/**
 * `status --watch`: a snapshot every `intervalMs` until `signal` aborts. On a
 * terminal each one replaces the screen; elsewhere (a pipe, a log) they follow
 * each other under a timestamped separator. A QeError (the daemon stopped,
 * a timeout) is shown in place of the snapshot and the watch goes on.
 */
export async function watch(opts: { intervalMs: number; signal: AbortSignal; snapshot: () => Promise<string>; out: TextSink; tty: boolean; now?: () => number }): Promise<void> {
  const now = opts.now ?? Date.now
  while (!opts.signal.aborted) {
    let text: string
    try {
      text = await opts.snapshot()
    } catch (err) {
      if (!isQeError(err)) throw err
      text = formatError(err)
    }
    if (opts.signal.aborted) break
    const at = new Date(now()).toISOString()
    opts.out.write(opts.tty ? `\x1b[H\x1b[2J${at}  (every ${opts.intervalMs / 1000}s, Ctrl-C to stop)\n\n${text}` : `--- ${at}\n${text}`)
    await sleep(opts.intervalMs, undefined, { signal: opts.signal }).catch(() => undefined)
  }
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim())
  if (!m) throw new UsageError(`--confirm: '${text}' is not a duration (e.g. 60s, 2m, 500ms)`)
  const n = Number(m[1])
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000
  if (ms < 1000 || ms > 3_600_000) throw new UsageError('--confirm: give between 1s and 60m')
  return Math.round(ms)
}

/** No daemon: the plan `quicether start` would apply to this machine's kernel now. */
async function planAgainstKernel(file: string) {
  const r = await loadConfigFile(file)
  if (!r.ok) return { ok: false, errors: r.diagnostics.filter((d) => d.severity === 'error'), actions: [], restartTunnels: false }
  const config: Config = r.config
  const self = await selfOf(config)
  // Loaded here, not at the top: only this path needs netlink, and every other command starts faster without it.
  const [{ Reconciler }, state, { createSystemAdapter }, nftables] = await Promise.all([
    import('../reconcile/index.js'),
    import('../state/index.js'),
    import('../system/index.js'),
    import('../system/nftables.js'),
  ])
  // What `quicether start` would set: the same MTU rule, and the engine's first tables (no peer connected yet).
  const tunMtu = state.tunMtuOf(config)
  const kernel = state.desiredFromConfig(config, { overlayAddresses: self.addresses, learnedRoutes: [], tunMtu })
  const engine = state.engineFromConfig(config, { selfKey: self.key ?? '', fib: [] })
  const rec = new Reconciler({}, { system: createSystemAdapter(), log: silentLogger })
  const { plan, issues: kernelIssues } = await rec.plan(kernel)
  // The firewall table as `start` would write it before any peer connects (members' addresses from their keys).
  const firewall = state.firewallFromInputs(state.firewallInputs(config, { peers: [], memberAddress: (name) => derivedMemberAddress(config, name) }))
  const installed = await nftables.nftablesPort().readHash(firewall.table).catch(() => null) // not root, no nft: as if none
  const firewallActions = installed === firewall.hash ? [] : state.diffFirewall(firewall, null)
  if (installed !== null && installed !== firewall.hash && firewall.empty) firewallActions.push({ op: 'del', text: `- firewall table ${firewall.table} (qe:${installed || 'no hash'})` })
  const issues = [...kernelIssues, ...state.ingressIssues(firewall, await nftables.readListening().catch(() => []))]
  const errors = issues
    .filter((i) => i.severity === 'error' && i.code !== 'QE_LINK_MISSING') // the TUN appears when the daemon starts
    .map((i) => ({ file, line: 0, col: 0, path: '', severity: 'error' as const, code: i.code, message: i.message }))
  const names = new Map(config.peers.map((p) => [p.key, p.name]))
  const engineActions = state.diffEngine(engine, null, (k) => `${names.get(k) ?? '?'} (${state.shortKey(k)})`)
  const actions = [
    ...plan.actions.map((a) => ({ text: a.text, live: a.live })),
    ...firewallActions.map((a) => ({ text: a.text, live: true })),
    ...engineActions.map((a) => ({ text: a.text, live: true })),
  ]
  return { ok: errors.length === 0, errors, actions, restartTunnels: false }
}

/** A member's overlay addresses derived from its key (no certificate is at hand without the daemon); null: no such member. */
function derivedMemberAddress(config: Config, name: string): { ipv4: string | null; ipv6: string | null } | null {
  const p = config.peers.find((x) => x.name === name)
  if (!p) return null
  try {
    return deriveOverlayAddresses(Buffer.from(p.key, 'base64'), config.network.overlay.ipv4, config.network.overlay.ipv6)
  } catch {
    return null
  }
}

/** The node's overlay addresses and key, from the config and its identity file (when there is one yet). */
async function selfOf(config: Config): Promise<{ addresses: { ipv4: string | null; ipv6: string | null }; key: string | null }> {
  try {
    const id = await loadIdentity(config.node.identity)
    const d = deriveOverlayAddresses(id.publicKey, config.network.overlay.ipv4, config.network.overlay.ipv6)
    return { addresses: { ipv4: config.network.address.ipv4 ?? d.ipv4, ipv6: config.network.address.ipv6 ?? d.ipv6 }, key: publicKeyBase64(id) }
  } catch {
    return { addresses: config.network.address, key: null } // no identity yet: `quicether init` makes one
  }
}

/** One path of a bonded peer, as the engine reports it (src/engine/types.ts PathStats). */
interface StatusPath {
  uplink: string
  alive: boolean
  remote: { address: string; port: number }
  rttMs: number
  rttMinMs?: number
  queueOutMs?: number
  queueBackMs?: number
  deliveryRate: number
  bytesInFlight?: number
  queued?: number
  dropped?: number
  datagramsLost: number
}

interface StatusBond {
  mode: string
  reordered: number
  late: number
  dropped: number
  resent: number
  lostResent?: number
  moved?: number
  classedOut?: number
  classedIn?: number
  acksOut?: number
}

/** The lines of a bonded peer's paths and reorder counters (none for a plain peer). */
function renderBond(stats: { paths?: StatusPath[]; bond?: StatusBond } | null): string[] {
  const lines: string[] = []
  for (const x of stats?.paths ?? []) {
    const queues = x.queueOutMs !== undefined ? `; queue out ${x.queueOutMs.toFixed(1)}, back ${(x.queueBackMs ?? 0).toFixed(1)}` : ''
    const rtt = `rtt ${x.rttMs.toFixed(1)} ms${x.rttMinMs ? ` (min ${x.rttMinMs.toFixed(1)}${queues})` : ''}`
    const rate = `${((x.deliveryRate * 8) / 1e6).toFixed(1)} Mbit/s`
    const queue = `in flight ${Math.round((x.bytesInFlight ?? 0) / 1000)} kB  queued ${x.queued ?? 0}  dropped ${x.dropped ?? 0}  lost ${x.datagramsLost}`
    lines.push(`    path ${(x.uplink || '(accepted)').padEnd(14)} ${x.alive ? 'alive' : 'DEAD '}  → ${x.remote.address}:${x.remote.port}  ${rtt}  ${rate}  ${queue}`)
  }
  const b = stats?.bond
  if (b) {
    const classed = b.classedOut !== undefined ? `  classed out/in ${b.classedOut}/${b.classedIn ?? 0}` : ''
    const acks = b.acksOut !== undefined ? `  ACKs out ${b.acksOut}` : ''
    lines.push(`    bond ${b.mode}: reordered ${b.reordered}  late ${b.late}  dropped ${b.dropped}  re-sent ${b.resent} (dead path) + ${b.lostResent ?? 0} (lost)  moved ${b.moved ?? 0}${classed}${acks}`)
  }
  return lines
}

/** `quicether status` without --json (exported for tests). */
interface DiscoveryView {
  enabled: boolean
  problem: string | null
  certificate: { name: string; notAfter: number } | null
  members: { name: string; via: string; endpoints: string[]; lan: string[] }[]
  revocations: { seq: number; revoked: number } | null
  refusals: Record<string, number>
  dht: { port: number; bootstrap: string[]; rendezvous: boolean; stats: Record<string, number> } | null
  lan: Record<string, number> | null
}

/** The discovery lines of `status`: what was found and how, and every kind of refusal counted. */
function renderDiscovery(d: DiscoveryView | null | undefined): string[] {
  if (!d) return []
  const lines: string[] = []
  const cert = d.certificate ? `certificate '${d.certificate.name}' until ${new Date(d.certificate.notAfter).toISOString().slice(0, 10)}` : 'no certificate'
  lines.push(`members  ${d.members.length} found  (${cert}${d.revocations ? `, revocation list #${d.revocations.seq}: ${d.revocations.revoked} key(s)` : ''})`)
  if (d.problem) lines.push(`  problem  ${d.problem}`)
  for (const m of d.members) lines.push(`  ${m.name.padEnd(16)} via ${m.via.padEnd(10)} ${m.endpoints.join(' ')}${m.lan.length ? `  (LAN: ${m.lan.join(' ')})` : ''}`)
  if (d.dht) lines.push(`dht      port ${d.dht.port}${d.dht.rendezvous ? ' (bootstrap node)' : ''}, seeds ${d.dht.bootstrap.join(' ') || 'none'}, ${d.dht.stats.nodes ?? 0} nodes known`)
  const refused = Object.entries(d.refusals).filter(([, n]) => n > 0)
  if (refused.length) lines.push(`refused  ${refused.map(([k, n]) => `${k} ${n}`).join(', ')}`)
  return lines
}

interface TraversalView {
  reflexive: string[]
  nat: string
  peers: { key: string; name: string | null; path: string; via: string | null; local: string | null; remote: string; nat: string }[]
  punching: string[]
  relay: { allocations?: number } | null
  refused: Record<string, number>
}

/** The `paths` lines of `status`: how this node is seen and how each peer is reached. */
function renderTraversal(t: TraversalView | null | undefined): string[] {
  if (!t) return []
  const lines: string[] = []
  lines.push(`paths    this node's NAT: ${t.nat}${t.reflexive.length ? `, seen as ${t.reflexive.join(' ')}` : ''}${t.relay ? `; relaying (${t.relay.allocations ?? 0} pair(s))` : ''}${t.punching.length ? `; punching toward ${t.punching.join(', ')}` : ''}`)
  for (const p of t.peers) {
    const how = p.path === 'relay' ? `relay via ${p.via ?? '?'}` : p.path
    lines.push(`  ${(p.name ?? p.key.slice(0, 8)).padEnd(16)} ${how.padEnd(18)} ${p.local ?? '?'} ↔ ${p.remote}  (its NAT: ${p.nat})`)
  }
  const refused = Object.entries(t.refused).filter(([, n]) => n > 0)
  if (refused.length) lines.push(`  refused ${refused.map(([k, n]) => `${k} ${n}`).join(', ')}`)
  return lines
}

export function renderStatus(st: Record<string, unknown>): string {
  const node = st.node as { name: string; key: string; overlay: { ipv4: string; ipv6: string }; tun: string; tunMtu: number } | null
  const cfg = st.config as { file: string | null; generation: number; errors: { file: string; line: number; col: number; message: string }[]; pendingConfirm: { deadline: string } | null }
  const last = st.lastApply as { at: string; ok: boolean; plan: string[]; failure: string | null } | null
  const peers = st.peers as {
    key: string
    name: string | null
    state?: string
    lastError?: string | null
    remote: { address: string; port: number } | null
    since: string
    hello: { name: string; overlay: { ipv4: string | null } } | null
    stats: { rttMs: number; bytesIn: number; bytesOut: number; paths?: StatusPath[]; bond?: StatusBond } | null
  }[]
  const warnings = (cfg as { warnings?: { file: string; line: number; col: number; message: string }[] }).warnings ?? []
  const engine = st.engine as { tablesVersion?: number } | null
  const routes = st.routes as MeshRoutes & { refusedTotal?: number }
  const lines: string[] = []
  if (node) {
    lines.push(`node     ${node.name}  ${node.overlay.ipv4}  ${node.overlay.ipv6}  (${node.tun}, mtu ${node.tunMtu})`)
    lines.push(`key      ${node.key}`)
  }
  lines.push(`config   ${cfg.file ?? '(flags only)'}  generation ${cfg.generation}  uptime ${String(st.uptimeS)}s`)
  for (const e of cfg.errors) lines.push(`  error  ${e.file}:${e.line}:${e.col}: ${e.message}   (not applied; the node runs the previous config)`)
  for (const w of warnings) lines.push(`  warning  ${w.file}:${w.line}:${w.col}: ${w.message}`)
  if (cfg.pendingConfirm) lines.push(`  waiting for 'quicether confirm' until ${cfg.pendingConfirm.deadline}`)
  if (last) lines.push(`apply    ${last.at}  ${last.ok ? 'ok' : `FAILED: ${last.failure ?? ''}`}  (${last.plan.length} action(s))${engine?.tablesVersion ? `  engine tables v${engine.tablesVersion}` : ''}`)
  const up = peers.filter((p) => (p.state ?? 'up') === 'up').length
  const aud = st.audit as { enabled: boolean; path: string | null; lines: number; failed: string | null } | null | undefined
  if (aud?.enabled) {
    lines.push(aud.failed ? `audit    ${aud.path}: CANNOT BE WRITTEN (${aud.failed}); config changes are refused until it can` : `audit    ${aud.path}: ${aud.lines} lines written`)
  }
  const obs = st.observe as { metrics: { listen: string; error: string | null } | null; ui: { listen: string; error: string | null } | null } | null | undefined
  if (obs?.metrics || obs?.ui) {
    const face = (what: string, f: { listen: string; error: string | null } | null) => (f ? `${what} ${f.error ? `NOT SERVED (${f.error})` : `http://${f.listen}${what === 'metrics' ? '/metrics' : '/'}`}` : null)
    lines.push(`observe  ${[face('metrics', obs.metrics), face('ui', obs.ui)].filter(Boolean).join('   ')}${obs.ui && !obs.ui.error ? '   (quicether ui --url: with the token)' : ''}`)
  }
  const auth = st.auth as { required: boolean; sessions: { peer: string; expiresAt: number }[]; gated: string[]; loginNeeded: { node: string; reason: string }[] } | null | undefined
  for (const n of auth?.loginNeeded ?? []) lines.push(`auth     LOGIN NEEDED by ${n.node} (${n.reason === 'expired' ? 'the session expired' : 'no session'}): quicether login --peer ${n.node}`)
  if (auth?.required) {
    lines.push(`auth     second factor required of client peers: ${auth.sessions.length} session(s)${auth.sessions.length ? ` (${auth.sessions.map((x) => `${x.peer} until ${new Date(x.expiresAt).toISOString()}`).join(', ')})` : ''}${auth.gated.length ? `; refused until they log in: ${auth.gated.join(', ')}` : ''}`)
  }
  lines.push(`peers    ${up} up of ${peers.length}`)
  for (const p of peers) {
    const name = p.name ?? p.hello?.name ?? p.key.slice(0, 8)
    const s = p.stats
    const state = p.state ?? 'up'
    if (state === 'up' && p.remote) {
      lines.push(`  ${name.padEnd(16)} ${(p.hello?.overlay.ipv4 ?? '-').padEnd(15)} via ${p.remote.address}:${p.remote.port}  up since ${p.since}${s ? `  rtt ${s.rttMs.toFixed(2)} ms  in ${s.bytesIn} B  out ${s.bytesOut} B` : ''}`)
      lines.push(...renderBond(s))
    } else {
      lines.push(`  ${name.padEnd(16)} ${'-'.padEnd(15)} ${state} since ${p.since}${p.lastError ? `  last error: ${p.lastError}` : ''}`)
    }
  }
  const nameOf = (key: string): string => peers.find((p) => p.key === key)?.name ?? key.slice(0, 8)
  const hubbed = new Set((routes.hubbed ?? []).map((r) => r.prefix))
  lines.push(`routes   ${routes.fib.length}${routes.refusedTotal ? `  (${routes.refusedTotal} claim(s) refused since start)` : ''}`)
  for (const r of routes.fib) lines.push(`  ${r.prefix.padEnd(20)} → ${nameOf(r.peer)}${hubbed.has(r.prefix) ? ' (hub)' : ''}`)
  for (const r of routes.standby ?? []) lines.push(`  ${r.prefix.padEnd(20)} ⇢ ${nameOf(r.peer)} (standby)`)
  for (const [family, e] of [['ipv4', routes.exit?.ipv4], ['ipv6', routes.exit?.ipv6]] as const) {
    if (!e || e.wanted === null) continue
    const what = e.mode === 'tunnel' ? `through ${e.wanted}` : e.mode === 'block' ? `BLOCKED: ${e.wanted} is down (exit-node-required)` : `${e.wanted} is down or offers no ${family} exit: the local default route carries it`
    lines.push(`exit     ${family} ${what}`)
  }
  lines.push(...renderTraversal(st.traversal as TraversalView | null | undefined))
  lines.push(...renderDiscovery(st.discovery as DiscoveryView | null | undefined))
  return lines.join('\n') + '\n'
}

