/**
 * `quicether lab bond`: a client with one emulated link per uplink to a
 * gateway, and the measurements bonding is judged by. `BondLab` builds the
 * lab once and runs each measurement on it (the bench reuses it):
 *
 *   raw       iperf3 over every link at once, no tunnel, each flow bound to
 *             its link's addresses: the links' own capacity
 *   singles   QuicEther over each uplink alone (the client's daemon knows
 *             only that link's gateway address): the baseline bonding is
 *             judged against
 *   bonded    QuicEther with every uplink in `interfaces` and `multipath`
 *             (see bond-config.ts), optionally cutting one uplink mid-way;
 *             per-path figures from the daemon's status when it reports
 *             them, else from the links' own counters
 *   mptcp     kernel MPTCP over the same links (mptcp.ts)
 *
 * Daemons are started afresh for every measurement, so one never inherits
 * another's state (or a cut). Everything is torn down at the end, also on
 * errors and Ctrl-C.
 */
import { join } from 'node:path'
import { Lab } from './topology.js'
import { startDaemons, type LabDaemon } from './daemon.js'
import { checkAborted } from './interrupt.js'
import { overlayAddresses } from './nodeconfig.js'
import { DEFAULT_NETWORK } from './scenario.js'
import { linkIfname } from './names.js'
import { median, percentile, ping } from './traffic.js'
import { controlRequest } from '../observe/control-socket.js'
import { CLIENT, GATEWAY, bondTopology, uplinkRoutes, type BondMode, type CutSpec, type UplinkSpec } from './bond-spec.js'
import { ipBatch } from './exec.js'
import { LabSpecError } from './errors.js'
import { bondedClient, bondedGateway, singleUplinkClient, type BondLinkInfo } from './bond-config.js'
import { counterDelta, ifDelta, readIfCounters, readProcNet, resetReadingMs, tcpFailures, type IfCounters } from './bond-counters.js'
import { bondDelta, bondVerdict, daemonBond, daemonPaths, linksCarrying, pathForLink, pathLoss, pathsUp, type DaemonPath } from './bond-paths.js'
import { IntervalReceiver, transfer } from './bond-transfer.js'
import { MPTCP_COUNTERS, setupMptcp } from './mptcp.js'
import { readSchemaModes } from './bond-schema.js'
import { round, type BondResult, type InteractiveFigures, type RawResult } from './bond-report.js'
import { bondResult, describe, measured, mptcpFigures, rawResult, warmupFor, type BondedRun, type Measured, type MptcpFigures, type MptcpRun } from './bond-figures.js'

const PORT_TUNNEL = 5201
const PORT_RAW = 5210
const PORT_MPTCP = 5300
/** DSCP EF in the TOS byte: the interactive class's pings. */
const TOS_EF = 184

/** Runs `fn` after `ms`; its failure surfaces where the promise is awaited (never as an unhandled rejection meanwhile). */
function after<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const p = new Promise<T>((resolve, reject) => setTimeout(() => fn().then(resolve, reject), ms))
  p.catch(() => undefined)
  return p
}

export interface BondLabInit {
  readonly uplinks: readonly UplinkSpec[]
  /** iperf3 -C for every transfer; null = the namespaces' default (BBR). */
  readonly congestion: string | null
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

export class BondLab {
  readonly lab: Lab
  readonly uplinks: readonly UplinkSpec[]
  readonly #init: BondLabInit
  #mptcpReady = false

  constructor(init: BondLabInit) {
    this.#init = init
    this.uplinks = init.uplinks
    this.lab = new Lab({ spec: bondTopology(init.uplinks) })
  }

  get runId(): string {
    return this.lab.runId
  }

  #say(line: string): void {
    this.#init.progress?.(line)
  }

  async start(): Promise<void> {
    this.#say(`building run ${this.runId}: client ⇄ gateway over ${this.uplinks.length} uplinks`)
    await this.lab.start()
    const routes = uplinkRoutes(this.uplinks.length)
    const clientNs = this.#ns(CLIENT)
    await ipBatch(clientNs, routes.client.ipv4, '-4')
    await ipBatch(clientNs, routes.client.ipv6, '-6')
    for (const [i, r] of routes.routers.entries()) {
      // Every bonding link is rate-limited, so routed; never let a null send these to the host's namespace.
      const router = this.lab.link(i).router
      if (!router) throw new LabSpecError(`uplink ${i + 1} has no router namespace`)
      await ipBatch(router, r.ipv4, '-4')
      await ipBatch(router, r.ipv6, '-6')
    }
  }

  async stop(): Promise<void> {
    this.#say(`tearing down run ${this.runId}`)
    await this.lab.stop()
  }

  /** What the daemon configs need about each link. */
  links(): BondLinkInfo[] {
    return this.lab.links.map((l, i) => ({ ifname: l.ifA, gatewayAddr: l.addrB.ipv4, up: this.uplinks[i]!.up.rate ?? 0, down: this.uplinks[i]!.down.rate ?? 0 }))
  }

  #ns(node: string): string {
    return this.lab.node(node).netns
  }

  #signal(): { signal?: AbortSignal } {
    return this.#init.signal ? { signal: this.#init.signal } : {}
  }

  /** iperf3 over every link at once, no tunnel: one flow (of `streams` streams) per link, bound to its addresses. */
  async raw(streams: number, seconds: number): Promise<Measured[]> {
    checkAborted(this.#init.signal)
    this.#say(`raw links: iperf3 -P${streams} over each of the ${this.uplinks.length} links at once, ${seconds} s`)
    const receivers = this.lab.links.map((l, i) => new IntervalReceiver({ netns: this.#ns(GATEWAY), bind: l.addrB.ipv4, port: PORT_RAW + i, runId: this.runId }))
    try {
      for (const r of receivers) await r.start()
      const runs = await Promise.all(
        this.lab.links.map((l, i) =>
          transfer({ netns: this.#ns(CLIENT), to: l.addrB.ipv4, bind: l.addrA.ipv4, receiver: receivers[i]!, seconds, streams, congestion: this.#init.congestion, ...this.#signal() }),
        ),
      )
      return runs.map((t) => measured(t, seconds))
    } finally {
      for (const r of receivers) await r.stop()
    }
  }

  async #daemons(tag: string, configFor: (node: string, config: Record<string, unknown>) => Record<string, unknown>): Promise<Map<string, LabDaemon>> {
    return startDaemons({ lab: this.lab, network: DEFAULT_NETWORK, detached: false, configFor, tag, ...this.#signal() })
  }

  #tunnelAddr(): string {
    return overlayAddresses(this.lab.spec, DEFAULT_NETWORK).get(GATEWAY)!.ipv4
  }

  /** QuicEther over each uplink alone: result[uplink][k] for `streamsList[k]`. */
  async singles(streamsList: readonly number[], seconds: number): Promise<Measured[][]> {
    const out: Measured[][] = []
    const links = this.links()
    for (let i = 0; i < this.uplinks.length; i++) {
      checkAborted(this.#init.signal)
      this.#say(`QuicEther over uplink ${i + 1} (${this.uplinks[i]!.name}) alone: ${streamsList.map((p) => `-P${p}`).join(', ')}, ${seconds} s each`)
      const daemons = await this.#daemons(`single${i + 1}`, (node, c) => (node === CLIENT ? singleUplinkClient(c, links, i, DEFAULT_NETWORK.port) : c))
      const receiver = new IntervalReceiver({ netns: this.#ns(GATEWAY), bind: this.#tunnelAddr(), port: PORT_TUNNEL, runId: this.runId })
      try {
        await receiver.start()
        const row: Measured[] = []
        for (const streams of streamsList) {
          const t = await transfer({ netns: this.#ns(CLIENT), to: this.#tunnelAddr(), receiver, seconds, streams, congestion: this.#init.congestion, ...this.#signal() })
          row.push(measured(t, seconds))
          if (t.error) {
            // A failed test can leave the server stuck in it: the next one gets a fresh server.
            await receiver.stop()
            await receiver.start()
          }
          this.#say(`  uplink ${i + 1} -P${streams}: ${describe(row[row.length - 1]!)}`)
        }
        out.push(row)
      } finally {
        await receiver.stop()
        for (const d of daemons.values()) await d.stop()
      }
    }
    return out
  }

  async #status(socket: string): Promise<unknown> {
    try {
      return await controlRequest(socket, 'status', {}, 3000)
    } catch {
      return null
    }
  }

  /** Polls the daemon until it reports every path up (at most 5 s; 2 s when it reports no paths at all); returns its last status. */
  async #waitForPaths(socket: string): Promise<{ status: unknown; paths: DaemonPath[] | null }> {
    const t0 = Date.now()
    let status: unknown = null
    let paths: DaemonPath[] | null = null
    while (Date.now() - t0 < 5000) {
      status = await this.#status(socket)
      paths = daemonPaths(status, GATEWAY)
      if (paths && pathsUp(paths) >= this.uplinks.length) break
      if (!paths && Date.now() - t0 > 2000) break
      await new Promise((r) => setTimeout(r, 250))
    }
    return { status, paths }
  }

  /** QuicEther bonded over every uplink, optionally cutting one mid-transfer (restored afterwards). */
  async bonded(o: { mode: BondMode; streams: number; seconds: number; cut: CutSpec | null; interactive: boolean }): Promise<BondedRun> {
    checkAborted(this.#init.signal)
    const links = this.links()
    const schemaModes = readSchemaModes()
    const sockets = new Map<string, string>([CLIENT, GATEWAY].map((n) => [n, join(this.lab.dir, n, 'control.sock')]))
    const tag = `bonded-${o.mode}-p${o.streams}${o.cut ? `-cut${o.cut.index + 1}` : ''}`
    this.#say(`QuicEther bonded (${o.mode}) over ${links.length} uplinks: -P${o.streams}, ${o.seconds} s${o.cut ? `, cutting uplink ${o.cut.index + 1} at ${o.cut.atS} s` : ''}`)
    const daemons = await this.#daemons(tag, (node, c) => {
      const s = (c['control'] as { socket?: unknown } | undefined)?.socket
      if (typeof s === 'string') sockets.set(node, s)
      return node === GATEWAY ? bondedGateway(c) : bondedClient(c, { links, mode: o.mode, port: DEFAULT_NETWORK.port, schemaModes })
    })
    const socket = sockets.get(CLIENT)!
    const gatewaySocket = sockets.get(GATEWAY)!
    const clientNs = this.#ns(CLIENT)
    const to = this.#tunnelAddr()
    const receiver = new IntervalReceiver({ netns: this.#ns(GATEWAY), bind: to, port: PORT_TUNNEL, runId: this.runId })
    let cutApplied = false
    try {
      await receiver.start()
      const { status: statusBefore, paths: pathsBefore } = await this.#waitForPaths(socket)
      const gatewayBefore = await this.#status(gatewaySocket)
      const idle = o.interactive ? await ping(clientNs, to, { count: 100, intervalMs: 20, tos: TOS_EF, ...this.#signal() }) : null
      const routers = this.lab.links.map((l) => l.router!)
      const ifBefore = await readIfCounters(clientNs)
      const netBefore = await readProcNet(clientNs)
      const rBefore = await Promise.all(routers.map((r) => readIfCounters(r)))
      const pingCount = Math.max(1, Math.floor((o.seconds - warmupFor(o.seconds)) * 5) - 1)
      const linkPings = this.lab.links.map((l) => after(warmupFor(o.seconds) * 1000, () => ping(clientNs, l.addrB.ipv4, { count: pingCount, intervalMs: 200, ...this.#signal() })))
      const loadedCount = Math.floor((o.seconds - warmupFor(o.seconds) - 0.5) * 50)
      const loaded = o.interactive && loadedCount > 0 ? after(warmupFor(o.seconds) * 1000, () => ping(clientNs, to, { count: loadedCount, intervalMs: 20, tos: TOS_EF, ...this.#signal() })) : null
      // Read before iperf3's own end: it closes its data connections with resets, which are not failures.
      const netDuring = after(resetReadingMs(o.seconds), () => readProcNet(clientNs))
      const cut = o.cut
      const atCut: { counters: Map<string, IfCounters> | null } = { counters: null }
      const applyCut = async (): Promise<void> => {
        atCut.counters = await readIfCounters(clientNs)
        await this.lab.cut(cut!.index)
        cutApplied = true
      }
      const t = await transfer({
        netns: clientNs,
        to,
        receiver,
        seconds: o.seconds,
        streams: o.streams,
        congestion: this.#init.congestion,
        ...(cut ? { cut: { atS: cut.atS, apply: applyCut } } : {}),
        ...this.#signal(),
      })
      const [pings, loadedPing] = await Promise.all([Promise.all(linkPings), loaded])
      const ifAfter = await readIfCounters(clientNs)
      const netAfter = await netDuring
      const rAfter = await Promise.all(routers.map((r) => readIfCounters(r)))
      const statusAfter = await this.#status(socket)
      const gatewayAfter = await this.#status(gatewaySocket)
      const pathsAfter = daemonPaths(statusAfter, GATEWAY)
      const durationS = Math.max(0.001, (t.endWallMs - t.startWallMs) / 1000)
      const txBytes = this.lab.links.map((l) => ifDelta(ifBefore, ifAfter, l.ifA).txBytes)
      const figures = this.lab.links.map((l, i) => {
        const dp = pathsAfter ? pathForLink(pathsAfter, l.ifA, l.addrB.ipv4) : null
        const dpBefore = pathsBefore ? pathForLink(pathsBefore, l.ifA, l.addrB.ipv4) : null
        const rtts = pings[i]!.rttsMs
        const rIn = ifDelta(rBefore[i]!, rAfter[i]!, linkIfname(this.runId, i, 'ra')).rxPackets
        const rOut = ifDelta(rBefore[i]!, rAfter[i]!, linkIfname(this.runId, i, 'rb')).txPackets
        const dLoss = pathLoss(dpBefore, dp)
        const rLoss = rIn > 0 ? Math.max(0, 1 - rOut / rIn) : null
        return {
          txBytes: txBytes[i]!,
          wireMbit: round((txBytes[i]! * 8) / durationS / 1e6, 2),
          rttMs: dp?.rttMs ?? (rtts.length ? round(median(rtts), 2) : null),
          rttSource: dp?.rttMs != null ? ('daemon' as const) : rtts.length ? ('link-ping' as const) : null,
          loss: dLoss ?? (rLoss === null ? null : round(rLoss, 5)),
          lossSource: dLoss !== null ? ('daemon' as const) : rLoss !== null ? ('router' as const) : null,
        }
      })
      // Which links carried the transfer at once: up to the cut, when there is one.
      const untilCut = atCut.counters ?? ifAfter
      const carrying = linksCarrying(this.lab.links.map((l) => ifDelta(ifBefore, untilCut, l.ifA).txBytes))
      const verdict = bondVerdict({ paths: pathsAfter ?? pathsBefore, carrying, uplinks: links.length, names: this.uplinks.map((u) => u.name), ...(atCut.counters ? { window: 'before the cut' } : {}) })
      const resets = Math.max(t.error ? 1 : 0, tcpFailures(netBefore, netAfter))
      let interactive: InteractiveFigures | null = null
      if (idle && loadedPing && idle.rttsMs.length && loadedPing.rttsMs.length) {
        const a = percentile(idle.rttsMs, 0.99)
        const b = percentile(loadedPing.rttsMs, 0.99)
        interactive = { idle_p99_ms: round(a, 3), loaded_p99_ms: round(b, 3), delta_ms: round(b - a, 3), loaded_received: loadedPing.received, loaded_sent: loadedPing.sent }
      }
      this.#say(`  bonded -P${o.streams}: ${describe(measured(t, o.seconds))}; ${verdict.why}`)
      // Reordering happens where the transfer arrives (the gateway); re-sends where it leaves (the client).
      const received = bondDelta(daemonBond(gatewayBefore, CLIENT), daemonBond(gatewayAfter, CLIENT))
      const sent = bondDelta(daemonBond(statusBefore, GATEWAY), daemonBond(statusAfter, GATEWAY))
      const bond = received || sent ? { mode: received?.mode ?? sent?.mode ?? null, reordered: received?.reordered ?? 0, late: received?.late ?? 0, dropped: received?.dropped ?? 0, resent: sent?.resent ?? 0 } : null
      return { verdict, daemonPaths: (pathsAfter ?? pathsBefore)?.length ?? null, bond, transfer: t, resets, links: figures, interactive }
    } finally {
      await receiver.stop()
      for (const d of daemons.values()) await d.stop()
      if (cutApplied && o.cut) await this.lab.cut(o.cut.index, false)
    }
  }

  /** Kernel MPTCP over the same links (set up on first use), optionally cutting one uplink (restored afterwards). */
  async mptcp(o: { streams: number; seconds: number; cut: CutSpec | null }): Promise<MptcpRun> {
    checkAborted(this.#init.signal)
    const clientNs = this.#ns(CLIENT)
    if (!this.#mptcpReady) {
      await setupMptcp(clientNs, this.#ns(GATEWAY), this.lab.links)
      this.#mptcpReady = true
    }
    this.#say(`kernel MPTCP over ${this.uplinks.length} links: -P${o.streams}, ${o.seconds} s${o.cut ? `, cutting uplink ${o.cut.index + 1} at ${o.cut.atS} s` : ''}`)
    const receiver = new IntervalReceiver({ netns: this.#ns(GATEWAY), bind: null, port: PORT_MPTCP, runId: this.runId, mptcp: true })
    let cutApplied = false
    try {
      await receiver.start()
      const ifBefore = await readIfCounters(clientNs)
      const netBefore = await readProcNet(clientNs)
      const netDuring = after(resetReadingMs(o.seconds), () => readProcNet(clientNs))
      const cut = o.cut
      const t = await transfer({
        netns: clientNs,
        to: this.lab.link(0).addrB.ipv4,
        receiver,
        seconds: o.seconds,
        streams: o.streams,
        congestion: this.#init.congestion,
        mptcp: true,
        ...(cut ? { cut: { atS: cut.atS, apply: () => this.lab.cut(cut.index).then(() => void (cutApplied = true)) } } : {}),
        ...this.#signal(),
      })
      const ifAfter = await readIfCounters(clientNs)
      const netAfter = await netDuring
      const txBytes = this.lab.links.map((l) => ifDelta(ifBefore, ifAfter, l.ifA).txBytes)
      const run: MptcpRun = {
        transfer: t,
        txBytes,
        connections: counterDelta(netBefore, netAfter, MPTCP_COUNTERS.capable),
        joined: counterDelta(netBefore, netAfter, MPTCP_COUNTERS.joined),
        carrying: linksCarrying(txBytes),
        resets: t.error ? 1 : 0,
        subflowFailures: tcpFailures(netBefore, netAfter),
      }
      this.#say(`  MPTCP -P${o.streams}: ${describe(measured(t, o.seconds))}, ${run.joined} subflow(s) joined to ${run.connections} connection(s), ${run.carrying.length} link(s) carried it`)
      return run
    } finally {
      await receiver.stop()
      if (cutApplied && o.cut) await this.lab.cut(o.cut.index, false)
    }
  }
}

export interface RunBondOptions {
  readonly uplinks: readonly UplinkSpec[]
  readonly mode: BondMode
  readonly streams: number
  readonly seconds: number
  readonly cut: CutSpec | null
  readonly congestion: string | null
  /** Also measure kernel MPTCP over the same links. */
  readonly mptcp: boolean
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

/** `lab bond` without --raw: singles, then bonded (with the cut), then MPTCP when asked. */
export async function runBond(o: RunBondOptions): Promise<BondResult & { mptcp?: MptcpFigures }> {
  const bl = new BondLab({ uplinks: o.uplinks, congestion: o.congestion, ...(o.signal ? { signal: o.signal } : {}), ...(o.progress ? { progress: o.progress } : {}) })
  try {
    await bl.start()
    const singles = (await bl.singles([o.streams], o.seconds)).map((row) => row[0]?.mbit ?? null)
    const run = await bl.bonded({ mode: o.mode, streams: o.streams, seconds: o.seconds, cut: o.cut, interactive: !o.cut })
    const result = bondResult({ run, uplinks: o.uplinks, ifnames: bl.lab.links.map((l) => l.ifA), singles, mode: o.mode, streams: o.streams, seconds: o.seconds, congestion: o.congestion, cut: o.cut, runId: bl.runId })
    if (!o.mptcp) return result
    const raw = await bl.raw(o.streams, o.seconds)
    const tcpSingles = raw.map((m) => m.mbit)
    const m = await bl.mptcp({ streams: o.streams, seconds: o.seconds, cut: o.cut })
    return { ...result, mptcp: mptcpFigures(m, tcpSingles, o.cut, o.seconds) }
  } finally {
    await bl.stop()
  }
}

/** `lab bond --raw`: the links alone, no QuicEther. */
export async function runRaw(o: Pick<RunBondOptions, 'uplinks' | 'streams' | 'seconds' | 'congestion' | 'signal' | 'progress'>): Promise<RawResult> {
  const bl = new BondLab({ uplinks: o.uplinks, congestion: o.congestion, ...(o.signal ? { signal: o.signal } : {}), ...(o.progress ? { progress: o.progress } : {}) })
  try {
    await bl.start()
    const runs = await bl.raw(o.streams, o.seconds)
    return rawResult({ runs, uplinks: o.uplinks, streams: o.streams, seconds: o.seconds, congestion: o.congestion, runId: bl.runId })
  } finally {
    await bl.stop()
  }
}
