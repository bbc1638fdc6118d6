/**
 * The gateway labs (issue 15):
 *
 * `lab exit`: a client bonds its uplinks toward a gateway that is its
 * internet exit; the gateway reaches an "internet" namespace by one more
 * link and masquerades. An iperf3 server there is reached by its internet
 * address (`internet_mbit`), and the gateway's overlay address by the same
 * transfer (`tunnel_mbit`), twice each in the order internet, tunnel, tunnel,
 * internet after a warm-up (a bond still speeding up favours neither):
 * `ratio` = internet / tunnel, of the means. `leaks` counts the
 * packets to the internet host that left the client by an uplink outside the
 * tunnel (an nftables counter in the client's namespace: the tunnel's own UDP
 * goes to the gateway's uplink addresses, never to the internet host). The
 * client keeps its own default route through its first uplink's router, so a
 * leak would get through, which is what makes a zero mean something. Then the
 * gateway's daemon is killed and `fallback_ms` is how long until the client's
 * kernel routes the internet host outside the tunnel again (its own default
 * route: `exit-node-required` is off).
 *
 * `lab subnet-failover`: two gateways advertise one LAN, gw-a with priority
 * 10, gw-b with 20, without masquerade: the LAN host routes the overlay back
 * through gw-a, and through gw-b (a higher metric) when gw-a's link is down.
 * The client pings the LAN host every 20 ms and streams TCP to it; a few
 * seconds in, gw-a dies (its daemon SIGKILLed and its links down: a dead
 * machine, not a clean stop). `gap_ms` is the longest time without a ping
 * reply across the death, `stream_gap_ms` the time the stream stayed under a
 * tenth of its rate, `resets` the TCP connections that failed.
 *
 * Traffic stays inside the namespaces of the run; everything is torn down at
 * the end, also on errors and Ctrl-C.
 */
import { Lab } from './topology.js'
import { startDaemons, type LabDaemon } from './daemon.js'
import { checkAborted } from './interrupt.js'
import { overlayAddresses } from './nodeconfig.js'
import { DEFAULT_NETWORK } from './scenario.js'
import { run, runIn, ipBatch, timeUntil } from './exec.js'
import { CLIENT, GATEWAY, bondTopology, uplinkRoutes, type UplinkSpec } from './bond-spec.js'
import { bondedClient, bondedGateway } from './bond-config.js'
import { readSchemaModes } from './bond-schema.js'
import { IntervalReceiver, transfer } from './bond-transfer.js'
import { measured, type Measured } from './bond-figures.js'
import { computeDip, meanMbit } from './bond-series.js'
import { readProcNet, resetReadingMs, tcpFailures } from './bond-counters.js'
import { NO_EFFECT, type LinkSpec, type TopologySpec } from './types.js'
import { round } from './bond-report.js'

/** The internet host's address (TEST-NET-2, on a loopback alias inside its namespace). */
export const INTERNET_HOST = '198.51.100.10'
const INTERNET = 'internet'
const PORT = 5201
/** Internet and tunnel transfers of each (each figure is their mean), by default. */
export const EXIT_REPS = 2

/** The mean of several runs' figures; null when any failed. */
function meanOf(ms: readonly Measured[]): Measured {
  const ok = ms.every((m) => m.mbit !== null)
  const mean = (xs: readonly (number | null)[]) => (xs.every((x) => x !== null) ? round(xs.reduce<number>((s, x) => s + (x ?? 0), 0) / xs.length, 2) : null)
  return {
    mbit: ok ? mean(ms.map((m) => m.mbit)) : null,
    iperfMbit: mean(ms.map((m) => m.iperfMbit)),
    retransmits: ms.every((m) => m.retransmits !== null) ? ms.reduce((s, m) => s + (m.retransmits ?? 0), 0) : null,
    error: ms.find((m) => m.error)?.error ?? null,
  }
}

export interface ExitInit {
  readonly uplinks: readonly UplinkSpec[]
  readonly streams: number
  readonly seconds: number
  readonly congestion: string | null
  /** Transfers of each kind, in ABBA order (default 2). */
  readonly reps?: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

export interface ExitResult {
  readonly internet_mbit: number | null
  readonly tunnel_mbit: number | null
  readonly ratio: number | null
  readonly leaks: number
  /** From the exit's death until the client routes the internet host by its own default route, ms. */
  readonly fallback_ms: number | null
  /** Packets the gateway's connection tracking found invalid during the internet transfer. */
  readonly gateway_conntrack_invalid: number
  readonly internet: Measured
  readonly tunnel: Measured
  readonly uplinks: readonly string[]
  readonly streams: number
  readonly seconds: number
  readonly runId: string
}

export function exitTopology(uplinks: readonly UplinkSpec[]): TopologySpec {
  const bond = bondTopology(uplinks)
  const wan: LinkSpec = { name: 'wan', a: GATEWAY, b: INTERNET, aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' }
  return { nodes: [...bond.nodes, { name: INTERNET, daemon: false, config: null }], links: [...bond.links, wan] }
}

const waitFor = (ok: () => Promise<boolean>, ms: number): Promise<number | null> => timeUntil(ok, ms, 50)

/** The `invalid` counter of connection tracking in a namespace, summed over CPUs. */
async function conntrackInvalid(ns: string): Promise<number> {
  const r = await runIn(ns, 'cat', ['/proc/net/stat/nf_conntrack'], { allowFail: true })
  const [head, ...rows] = r.stdout.trim().split('\n')
  const col = (head ?? '').trim().split(/\s+/).indexOf('invalid')
  if (col < 0) return 0
  return rows.reduce((s, l) => s + parseInt(l.trim().split(/\s+/)[col] ?? '0', 16), 0)
}

async function leakCount(ns: string): Promise<number> {
  const r = await runIn(ns, 'nft', ['-j', 'list', 'table', 'inet', 'qelab-leaks'])
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ rule?: { expr: Array<{ counter?: { packets: number } }> } }> }
  return doc.nftables.flatMap((x) => x.rule?.expr ?? []).reduce((s, e) => s + (e.counter?.packets ?? 0), 0)
}

export async function runExit(init: ExitInit): Promise<ExitResult> {
  const say = (l: string) => init.progress?.(l)
  const lab = new Lab({ spec: exitTopology(init.uplinks) })
  const daemons: LabDaemon[] = []
  const signal = init.signal ? { signal: init.signal } : {}
  try {
    say(`building run ${lab.runId}: client ⇄ gateway over ${init.uplinks.length} uplink(s), gateway ⇄ internet`)
    await lab.start()
    const ns = (n: string) => lab.node(n).netns
    const routes = uplinkRoutes(init.uplinks.length)
    await ipBatch(ns(CLIENT), routes.client.ipv4, '-4')
    await ipBatch(ns(CLIENT), routes.client.ipv6, '-6')
    for (const [i, r] of routes.routers.entries()) {
      await ipBatch(lab.link(i).router!, r.ipv4, '-4')
      await ipBatch(lab.link(i).router!, r.ipv6, '-6')
    }
    const wan = lab.link('wan')
    await run('ip', ['-n', ns(INTERNET), 'addr', 'add', `${INTERNET_HOST}/32`, 'dev', 'lo'])
    await run('ip', ['-n', ns(GATEWAY), 'route', 'add', 'default', 'via', wan.addrB.ipv4])
    const uplinkIfs = init.uplinks.map((_, i) => lab.link(i).ifA)
    await runIn(ns(CLIENT), 'nft', ['-f', '-'], {
      input: `table inet qelab-leaks {\nchain out {\ntype filter hook output priority 0;\noifname { ${uplinkIfs.map((u) => `"${u}"`).join(', ')} } ip daddr ${INTERNET_HOST} counter\n}\n}\n`,
    })

    const links = lab.links.slice(0, init.uplinks.length).map((l, i) => ({ ifname: l.ifA, gatewayAddr: l.addrB.ipv4, up: init.uplinks[i]!.up.rate ?? 0, down: init.uplinks[i]!.down.rate ?? 0 }))
    const schemaModes = readSchemaModes()
    say('starting the daemons: the client bonds every uplink toward the gateway and uses it as its exit')
    const started = await startDaemons({
      lab,
      network: DEFAULT_NETWORK,
      detached: false,
      ...signal,
      configFor: (node, c) =>
        node === GATEWAY
          ? { ...bondedGateway(c), node: { ...(c['node'] as object), role: 'gateway' }, subnets: [{ prefix: '0.0.0.0/0', exit: true }] }
          : node === CLIENT
            ? { ...bondedClient(c, { links, mode: 'aggregate', port: DEFAULT_NETWORK.port, schemaModes }), 'exit-node': GATEWAY }
            : c,
    })
    daemons.push(...started.values())
    const tunnelAddr = overlayAddresses(lab.spec, DEFAULT_NETWORK).get(GATEWAY)!.ipv4
    const viaTunnel = async () => (await run('ip', ['-n', ns(CLIENT), 'route', 'get', INTERNET_HOST], { allowFail: true })).stdout.includes('qe0')
    if ((await waitFor(viaTunnel, 15_000)) === null) throw new Error('the client never routed the internet host into the tunnel: is the exit up?')

    // One iperf3 server per end for the whole run (a server started right after the last one
    // stopped can miss its port); a failed test gets a fresh one.
    const receivers = new Map<string, IntervalReceiver>()
    const measure = async (what: string, server: string, bind: string, seconds = init.seconds): Promise<Measured> => {
      checkAborted(init.signal)
      say(`${what}: iperf3 -P${init.streams}, ${seconds} s`)
      let receiver = receivers.get(bind)
      if (!receiver) {
        receiver = new IntervalReceiver({ netns: ns(server), bind, port: PORT, runId: lab.runId })
        receivers.set(bind, receiver)
        await receiver.start()
      }
      const t = await transfer({ netns: ns(CLIENT), to: bind, receiver, seconds, streams: init.streams, congestion: init.congestion, ...signal })
      if (t.error) {
        await receiver.stop()
        await receiver.start()
      }
      const m = measured(t, seconds)
      say(`  ${m.mbit ?? '—'} Mbit/s${m.error ? ` (iperf3: ${m.error})` : ''}`)
      return m
    }
    const { internet, tunnel, invalid, leaks } = await (async () => {
      try {
        // A bond starts cold (each path's rate and window are learned over its first round trips,
        // and long paths take seconds): a warm-up first, then the two transfers in the order
        // internet, tunnel, tunnel, internet (ABBA), so a bond still speeding up favours neither.
        const reps = init.reps ?? EXIT_REPS
        await measure('warm-up (not counted)', GATEWAY, tunnelAddr)
        const invalidBefore = await conntrackInvalid(ns(GATEWAY))
        const internets: Measured[] = []
        const tunnels: Measured[] = []
        const internetRun = async (rep: number) => internets.push(await measure(`client → internet host ${INTERNET_HOST} through the exit (${rep + 1}/${reps})`, INTERNET, INTERNET_HOST))
        const tunnelRun = async (rep: number) => tunnels.push(await measure(`client → gateway's overlay address ${tunnelAddr} (${rep + 1}/${reps})`, GATEWAY, tunnelAddr))
        for (let rep = 0; rep < reps; rep++) {
          if (rep % 2 === 0) {
            await internetRun(rep)
            await tunnelRun(rep)
          } else {
            await tunnelRun(rep)
            await internetRun(rep)
          }
        }
        return {
          internet: meanOf(internets),
          tunnel: meanOf(tunnels),
          invalid: (await conntrackInvalid(ns(GATEWAY))) - invalidBefore,
          leaks: await leakCount(ns(CLIENT)),
        }
      } finally {
        for (const r of receivers.values()) await r.stop()
      }
    })()

    say('killing the gateway\'s daemon: the client falls back to its own default route')
    const gw = started.get(GATEWAY)!
    const t0 = Date.now()
    process.kill(gw.pid!, 'SIGKILL')
    const fallback = await waitFor(async () => !(await viaTunnel()), 10_000)
    const fallbackMs = fallback === null ? null : Date.now() - t0
    const ratio = internet.mbit !== null && tunnel.mbit !== null && tunnel.mbit > 0 ? round(internet.mbit / tunnel.mbit, 3) : null
    return {
      internet_mbit: internet.mbit,
      tunnel_mbit: tunnel.mbit,
      ratio,
      leaks,
      fallback_ms: fallbackMs,
      gateway_conntrack_invalid: invalid,
      internet,
      tunnel,
      uplinks: init.uplinks.map((u) => u.name),
      streams: init.streams,
      seconds: init.seconds,
      runId: lab.runId,
    }
  } finally {
    say(`tearing down run ${lab.runId}`)
    for (const d of daemons) await d.stop().catch(() => undefined)
    await lab.stop()
  }
}

/**
 * `n` uplink mixes from a seeded generator: 1-4 uplinks, 5-150 Mbit/s up,
 * 2-60 ms one way, loss 0-2% on some.
 */
export function drawExitMixes(rnd: () => number, n: number): string[][] {
  const pick = (lo: number, hi: number) => lo + rnd() * (hi - lo)
  const mixes: string[][] = []
  for (let i = 0; i < n; i++) {
    const count = 1 + Math.floor(rnd() * 4)
    const mix: string[] = []
    for (let u = 0; u < count; u++) {
      const rate = Math.round(pick(5, 150))
      const delay = Math.round(pick(2, 60))
      const loss = rnd() < 0.3 ? `,${pick(0.1, 2).toFixed(1)}%` : ''
      mix.push(`${rate}mbit,${delay}ms${loss}`)
    }
    mixes.push(mix)
  }
  return mixes
}

export interface ExitSummary {
  readonly seed: number
  readonly runs: readonly (ExitResult & { readonly mix: readonly string[] })[]
  readonly worst: { readonly ratio: number | null; readonly leaks: number; readonly fallback_ms: number | null }
}

export function summarizeExits(seed: number, runs: readonly (ExitResult & { readonly mix: readonly string[] })[]): ExitSummary {
  const ratios = runs.map((r) => r.ratio).filter((x): x is number => x !== null)
  const fallbacks = runs.map((r) => r.fallback_ms)
  return {
    seed,
    runs,
    worst: {
      ratio: ratios.length === runs.length && ratios.length > 0 ? Math.min(...ratios) : null,
      leaks: Math.max(0, ...runs.map((r) => r.leaks)),
      fallback_ms: fallbacks.some((f) => f === null) ? null : Math.max(0, ...(fallbacks as number[])),
    },
  }
}

export function renderExitSummary(s: ExitSummary): string {
  const lines = [`seed ${s.seed}: ${s.runs.length} drawn uplink mix(es)`, '  mix                                         internet  tunnel  ratio  leaks  fallback']
  for (const r of s.runs) {
    lines.push(`  ${r.mix.join(' + ').padEnd(43)} ${String(r.internet_mbit ?? '—').padStart(8)}  ${String(r.tunnel_mbit ?? '—').padStart(6)}  ${String(r.ratio ?? '—').padStart(5)}  ${String(r.leaks).padStart(5)}  ${r.fallback_ms === null ? 'never' : `${r.fallback_ms} ms`}`)
  }
  lines.push(`  worst: ratio ${s.worst.ratio ?? '—'} (≥ 0.95), leaks ${s.worst.leaks} (0), fallback ${s.worst.fallback_ms ?? 'never'} ms (≤ 2000)`)
  return lines.join('\n')
}

export function renderExit(r: ExitResult): string {
  const f = (x: number | null, d = 1) => (x === null ? '—' : x.toFixed(d))
  return [
    `exit over ${r.uplinks.length} bonded uplink(s), -P${r.streams}, ${r.seconds} s`,
    `  internet host (through the exit)   ${f(r.internet_mbit)} Mbit/s`,
    `  gateway's overlay address           ${f(r.tunnel_mbit)} Mbit/s`,
    `  ratio                               ${f(r.ratio, 3)}   (target ≥ 0.95)`,
    `  leaks                               ${r.leaks}   (target 0)`,
    `  fallback after the exit died        ${r.fallback_ms === null ? 'never' : `${r.fallback_ms} ms`}   (target ≤ 2000)`,
  ].join('\n')
}

// ---- subnet failover ----

const LAN = '192.168.77.0/24'
export const LAN_HOST = '192.168.77.10'

export interface FailoverInit {
  readonly seconds: number
  readonly killAtS: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

export interface FailoverResult {
  /** Longest time without a ping reply (20 ms pings) across gw-a's death, ms. */
  readonly gap_ms: number | null
  /** How long the TCP stream stayed under a tenth of its rate after the death, ms. */
  readonly stream_gap_ms: number | null
  readonly resets: number
  readonly stream_error: string | null
  /** Replies after the death: the LAN answered through gw-b. */
  readonly replies_after: number
  readonly runId: string
}

export function failoverTopology(): TopologySpec {
  const link = (name: string, a: string, b: string): LinkSpec => ({ name, a, b, aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' })
  const gw = (priority: number) => ({ node: { role: 'gateway' }, subnets: [{ prefix: LAN, priority }] })
  return {
    nodes: [
      { name: 'client', daemon: true, config: null },
      { name: 'gw-a', daemon: true, config: gw(10) },
      { name: 'gw-b', daemon: true, config: gw(20) },
      { name: 'lan', daemon: false, config: null },
    ],
    // Link i is 10.251.i.0/24, a = .1, b = .2.
    links: [link('client-a', 'client', 'gw-a'), link('client-b', 'client', 'gw-b'), link('a-lan', 'gw-a', 'lan'), link('b-lan', 'gw-b', 'lan')],
  }
}

/** `ping -D` lines → reply times, ms since the epoch. */
export function replyTimes(out: string): number[] {
  const t: number[] = []
  for (const m of out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) t.push(Math.round(Number(m[1]) * 1000))
  return t
}

/** The longest stretch without a reply that contains `at`, ms (from the reply before to the reply after). */
export function gapAround(times: readonly number[], at: number): number | null {
  const before = [...times].filter((x) => x <= at).pop()
  const after = times.find((x) => x > at)
  if (before === undefined || after === undefined) return null
  let gap = after - before
  // A reply or two can still trickle in just after the kill; the outage is the longest gap nearby.
  for (let i = 1; i < times.length; i++) {
    if (times[i - 1]! >= at - 1000 && times[i]! <= at + 10_000) gap = Math.max(gap, times[i]! - times[i - 1]!)
  }
  return gap
}

export async function runSubnetFailover(init: FailoverInit): Promise<FailoverResult> {
  const say = (l: string) => init.progress?.(l)
  const lab = new Lab({ spec: failoverTopology() })
  const daemons: LabDaemon[] = []
  const signal = init.signal ? { signal: init.signal } : {}
  try {
    say(`building run ${lab.runId}: client ⇄ gw-a (priority 10), gw-b (priority 20) ⇄ LAN host ${LAN_HOST}`)
    await lab.start()
    const ns = (n: string) => lab.node(n).netns
    const ip = (n: string, ...args: string[]) => run('ip', ['-n', ns(n), ...args])
    const overlay = DEFAULT_NETWORK.ipv4
    await ip('lan', 'addr', 'add', `${LAN_HOST}/32`, 'dev', 'lo')
    await ip('gw-a', 'route', 'add', LAN, 'via', lab.link('a-lan').addrB.ipv4)
    await ip('gw-b', 'route', 'add', LAN, 'via', lab.link('b-lan').addrB.ipv4)
    // The LAN routes the overlay back through gw-a, and through gw-b when gw-a's link is down.
    for (const k of ['all', 'default', lab.link('a-lan').ifB, lab.link('b-lan').ifB]) {
      await runIn(ns('lan'), 'sysctl', ['-qw', `net.ipv4.conf.${k}.ignore_routes_with_linkdown=1`])
    }
    await ip('lan', 'route', 'add', overlay, 'via', lab.link('a-lan').addrA.ipv4, 'metric', '10')
    await ip('lan', 'route', 'add', overlay, 'via', lab.link('b-lan').addrA.ipv4, 'metric', '20')
    say('starting the daemons')
    const started = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false, ...signal })
    daemons.push(...started.values())
    const reach = await waitFor(async () => (await runIn(ns('client'), 'ping', ['-n', '-c', '1', '-W', '1', LAN_HOST], { allowFail: true })).code === 0, 15_000)
    if (reach === null) throw new Error('the client never reached the LAN host')

    checkAborted(init.signal)
    say(`client → LAN host: 20 ms pings and a TCP stream for ${init.seconds} s; gw-a dies at ${init.killAtS} s`)
    const receiver = new IntervalReceiver({ netns: ns('lan'), bind: LAN_HOST, port: PORT, runId: lab.runId })
    await receiver.start()
    try {
      const count = Math.round((init.seconds * 1000) / 20)
      const pings = runIn(ns('client'), 'ping', ['-D', '-n', '-i', '0.02', '-c', String(count), '-W', '1', LAN_HOST], { allowFail: true, timeoutMs: init.seconds * 1000 + 15_000, ...signal })
      const netBefore = await readProcNet(ns('client'))
      let killedAt = 0
      const kill = async (): Promise<void> => {
        killedAt = Date.now()
        process.kill(started.get('gw-a')!.pid!, 'SIGKILL')
        // A dead machine: nothing in or out (the client's link keeps its carrier, as across the
        // internet: the client learns of the death only from the silence), and its LAN link is down.
        await runIn(ns('gw-a'), 'nft', ['-f', '-'], { input: 'table inet qelab-dead {\nchain input_drop {\ntype filter hook input priority -300; policy drop;\n}\nchain output_drop {\ntype filter hook output priority -300; policy drop;\n}\nchain forward_drop {\ntype filter hook forward priority -300; policy drop;\n}\n}\n' })
        await ip('gw-a', 'link', 'set', lab.link('a-lan').ifA, 'down')
      }
      // TCP counters are read before iperf3's own end: it closes its data connections with resets, which are no failure.
      const clientNs = ns('client')
      const netDuring = new Promise<Map<string, number>>((resolve, reject) => setTimeout(() => readProcNet(clientNs).then(resolve, reject), resetReadingMs(init.seconds)))
      netDuring.catch(() => undefined)
      const t = await transfer({ netns: ns('client'), to: LAN_HOST, receiver, seconds: init.seconds, streams: 1, congestion: null, cut: { atS: init.killAtS, apply: kill }, ...signal })
      const netAfter = await netDuring
      const times = replyTimes((await pings).stdout)
      const before = t.cutMs !== null ? meanMbit(t.points, 500, t.cutMs) : NaN
      const streamGap = t.cutMs !== null && Number.isFinite(before) && before > 0 ? computeDip(t.points, t.cutMs, before / 10, init.seconds * 1000).recoveryMs : null
      return {
        gap_ms: killedAt ? gapAround(times, killedAt) : null,
        stream_gap_ms: streamGap,
        resets: tcpFailures(netBefore, netAfter) + (t.error ? 1 : 0),
        stream_error: t.error,
        replies_after: times.filter((x) => x > killedAt).length,
        runId: lab.runId,
      }
    } finally {
      await receiver.stop()
    }
  } finally {
    say(`tearing down run ${lab.runId}`)
    for (const d of daemons) await d.stop().catch(() => undefined)
    await lab.stop()
  }
}

export function renderFailover(r: FailoverResult): string {
  return [
    'subnet failover: gw-a (priority 10) dies, gw-b (priority 20) takes the LAN',
    `  longest gap in 20 ms pings     ${r.gap_ms ?? '—'} ms   (target ≤ 2000)`,
    `  TCP stream under 10% of rate   ${r.stream_gap_ms ?? '—'} ms`,
    `  TCP resets                     ${r.resets}${r.stream_error ? ` (iperf3: ${r.stream_error})` : ''}`,
    `  replies after the death        ${r.replies_after}`,
  ].join('\n')
}
