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
import { ipBatch, runIn } from './exec.js'
import { LabSpecError } from './errors.js'
import { bondedClient, bondedGateway, singleUplinkClient, type BondLinkInfo } from './bond-config.js'
import { counterDelta, ifDelta, readIfCounters, readingBeforeEnd, readProcNet, resetReadingMs, tcpFailureDetail, tcpFailures, type IfCounters } from './bond-counters.js'
import { bondDelta, bondVerdict, daemonBond, daemonPaths, linksCarrying, pathForLink, pathLoss, pathsUp, type DaemonPath } from './bond-paths.js'
import { IntervalReceiver, transfer, withCutAt, type TransferResult } from './bond-transfer.js'
import { CpuMeter, MachineMeter } from './cpu.js'
import { outsideStalls, StallMeter } from './stall.js'
import { emulationFigures, type EmulationFigures } from './delay.js'
import { directionWord, directionsOf, rateOf, type Direction, type DirectionSet } from './bond-direction.js'
import { RateVariation } from './vary.js'
import { MPTCP_COUNTERS, setupMptcp } from './mptcp.js'
import { readSchemaModes } from './bond-schema.js'
import { round, type BondResult, type InteractiveFigures, type RawResult } from './bond-report.js'
import { Singles, bondResult, describe, measured, mptcpFigures, rawResult, seriesBytes, warmupFor, type BondedRun, type Measured, type MptcpFigures, type MptcpRun, type RunCpu } from './bond-figures.js'

const PORT_TUNNEL = 5201
const PORT_TUNNEL_DOWN = 5202
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
  /** 0-based uplinks whose rates vary during every tunnelled transfer (vary.ts), the same schedule each time. */
  readonly vary?: readonly number[]
  /** The seed of the links' jitter and of the variation. */
  readonly seed?: number
  /** iperf3 -C for every transfer; null = the namespaces' default (BBR). */
  readonly congestion: string | null
  /** The most a TCP socket may buffer in the client and the gateway (tcp_wmem and tcp_rmem max); unset: the kernel's defaults. */
  readonly tcpBuffer?: number
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
    this.lab = new Lab({ spec: bondTopology(init.uplinks), ...(init.seed !== undefined ? { seed: init.seed } : {}) })
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
    const buffer = this.#init.tcpBuffer
    if (buffer !== undefined) {
      // Inside the two namespaces only (both sysctls are per namespace): the host's TCP is never touched.
      for (const ns of [clientNs, this.#ns(GATEWAY)]) await runIn(ns, 'sysctl', ['-q', '-w', `net.ipv4.tcp_wmem=4096 16384 ${buffer}`, `net.ipv4.tcp_rmem=4096 131072 ${buffer}`])
    }
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

  /** Tears the lab down; returns how closely its delay lines kept their delays over the whole run. */
  async stop(): Promise<EmulationFigures | null> {
    this.#say(`tearing down run ${this.runId}`)
    return emulationFigures(await this.lab.stop())
  }

  /**
   * Runs `body` (which starts the lab) and tears the lab down whatever happens. The result carries the
   * delay lines' accuracy over the run (`emulation`), so a figure can be read beside how well the
   * lab emulated its links meanwhile.
   */
  async around<T extends object>(body: () => Promise<T>): Promise<T & { emulation: EmulationFigures | null }> {
    let out: T
    try {
      out = await body()
    } catch (err) {
      await this.stop()
      throw err
    }
    return { ...out, emulation: await this.stop() }
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

  /** iperf3 over every link at once, no tunnel: one flow (of `streams` streams) per link, bound to its addresses, in `direction`. */
  async raw(streams: number, seconds: number, direction: Direction = 'up'): Promise<Measured[]> {
    checkAborted(this.#init.signal)
    this.#say(`raw links: iperf3 -P${streams} ${directionWord(direction)} over each of the ${this.uplinks.length} links at once, ${seconds} s`)
    const up = direction === 'up'
    const receivers = this.lab.links.map((l, i) => new IntervalReceiver({ netns: this.#ns(up ? GATEWAY : CLIENT), bind: up ? l.addrB.ipv4 : l.addrA.ipv4, port: PORT_RAW + i, runId: this.runId }))
    try {
      for (const r of receivers) await r.start()
      const runs = await Promise.all(
        this.lab.links.map((l, i) =>
          transfer({
            netns: this.#ns(up ? CLIENT : GATEWAY),
            to: up ? l.addrB.ipv4 : l.addrA.ipv4,
            bind: up ? l.addrA.ipv4 : l.addrB.ipv4,
            receiver: receivers[i]!,
            seconds,
            streams,
            congestion: this.#init.congestion,
            ...this.#signal(),
          }),
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

  /** A node's overlay address (the tunnel's end there). */
  #tunnelAddr(node: string = GATEWAY): string {
    return overlayAddresses(this.lab.spec, DEFAULT_NETWORK).get(node)!.ipv4
  }

  /** The receiving end of a tunnelled transfer in `dir`: the gateway for uploads, the client for downloads. */
  #tunnelReceiver(dir: Direction): IntervalReceiver {
    const node = dir === 'up' ? GATEWAY : CLIENT
    return new IntervalReceiver({ netns: this.#ns(node), bind: this.#tunnelAddr(node), port: dir === 'up' ? PORT_TUNNEL : PORT_TUNNEL_DOWN, runId: this.runId })
  }

  /**
   * One transfer per direction of the set through the tunnel, at once; the
   * cut (if any) is applied by the first and placed on every series' clock.
   */
  async #tunnelTransfers(receivers: ReadonlyMap<Direction, IntervalReceiver>, o: { streams: number; seconds: number; cut?: { atS: number; apply: () => Promise<void> } }): Promise<{ runs: Map<Direction, TransferResult>; rates: Map<Direction, number[]> | null }> {
    const dirs = [...receivers.keys()]
    // Varied uplinks follow the same drawn schedule in every transfer (alone and bonded), so each is judged under the same rates.
    const vary = this.#init.vary?.length ? new RateVariation({ lab: this.lab, indices: this.#init.vary, seed: this.#init.seed ?? 0, durationMs: (o.seconds + 1) * 1000, ...this.#signal(), ...(this.#init.progress ? { progress: this.#init.progress } : {}) }) : null
    const t0 = Date.now()
    await vary?.start()
    let runs: TransferResult[]
    try {
      runs = await Promise.all(
      dirs.map((dir, k) =>
        transfer({
          netns: this.#ns(dir === 'up' ? CLIENT : GATEWAY),
          to: this.#tunnelAddr(dir === 'up' ? GATEWAY : CLIENT),
          receiver: receivers.get(dir)!,
          seconds: o.seconds,
          streams: o.streams,
          congestion: this.#init.congestion,
          ...(k === 0 && o.cut ? { cut: o.cut } : {}),
          ...this.#signal(),
        }),
      ),
      )
    } finally {
      await vary?.stop()
    }
    const cutWall = runs[0]?.cutWallMs ?? null
    const out = new Map(dirs.map((d, k) => [d, k === 0 ? runs[k]! : withCutAt(runs[k]!, cutWall)]))
    let rates: Map<Direction, number[]> | null = null
    if (vary) {
      // The links' mean rates over the measured window (after the warm-up), on the variation's clock.
      const zero = (runs[0]?.zeroWallMs ?? t0) - t0
      const means = vary.meanRates(zero + warmupFor(o.seconds) * 1000, zero + o.seconds * 1000)
      rates = new Map(
        dirs.map((d) => [d, this.uplinks.map((u, i) => means.find((m) => m.link === i && m.dir === d)?.meanBps ?? rateOf(u, d))]),
      )
    }
    return { runs: out, rates }
  }

  async #startReceivers(set: DirectionSet): Promise<Map<Direction, IntervalReceiver>> {
    const receivers = new Map<Direction, IntervalReceiver>(directionsOf(set).map((d) => [d, this.#tunnelReceiver(d)]))
    try {
      for (const r of receivers.values()) await r.start()
    } catch (err) {
      for (const r of receivers.values()) await r.stop()
      throw err
    }
    return receivers
  }

  /** The client's and the gateway's daemon processes, for their CPU. */
  #cpuMeter(daemons: ReadonlyMap<string, LabDaemon>): CpuMeter {
    return new CpuMeter([...daemons.values()].flatMap((d) => (d.pid === undefined ? [] : [d.pid])))
  }

  /**
   * QuicEther over each uplink alone, for every stream count and direction
   * set asked (one daemon pair per uplink): the baseline bonding is judged
   * against. A `both` set runs its upload and download at once, so the
   * baseline carries the same two-way load as the bonded run.
   */
  async singles(streamsList: readonly number[], seconds: number, sets: readonly DirectionSet[] = ['up']): Promise<Singles> {
    const out = new Singles(this.uplinks.length)
    const links = this.links()
    for (let i = 0; i < this.uplinks.length; i++) {
      checkAborted(this.#init.signal)
      const what = sets.map((s) => (s === 'both' ? 'up+down' : s)).join(', ')
      this.#say(`QuicEther over uplink ${i + 1} (${this.uplinks[i]!.name}) alone: ${streamsList.map((p) => `-P${p}`).join(', ')} × ${what}, ${seconds} s each`)
      // The other links are cut while uplink i is measured alone: the daemons learn each other's every
      // address, and a single-uplink client that moved to the gateway's address on another link
      // (observed: the cable "alone" measured at the DSL's rate) would measure the wrong link.
      const others = this.lab.links.map((_, j) => j).filter((j) => j !== i)
      for (const j of others) await this.lab.cut(j)
      let daemons: Map<string, LabDaemon>
      try {
        daemons = await this.#daemons(`single${i + 1}`, (node, c) => (node === CLIENT ? singleUplinkClient(c, links, i, DEFAULT_NETWORK.port) : c))
      } catch (err) {
        for (const j of others) await this.lab.cut(j, false)
        throw err
      }
      try {
        for (const set of sets) {
          let receivers = await this.#startReceivers(set)
          try {
            for (const streams of streamsList) {
              const cpu = this.#cpuMeter(daemons)
              cpu.start()
              const { runs } = await this.#tunnelTransfers(receivers, { streams, seconds })
              const cpuSeconds = cpu.stop()
              let bytes = 0
              const said: string[] = []
              for (const [dir, t] of runs) {
                const m = measured(t, seconds)
                out.set(set, dir, streams, i, m)
                bytes += seriesBytes(t)
                said.push(`${directionWord(dir)} ${describe(m)}`)
              }
              out.addCpu(set, streams, { seconds: cpuSeconds, bytes })
              this.#say(`  uplink ${i + 1} -P${streams}: ${said.join(', ')}`)
              if ([...runs.values()].some((t) => t.error)) {
                // A failed test can leave a server stuck in it: the next one gets fresh servers.
                for (const r of receivers.values()) await r.stop()
                receivers = await this.#startReceivers(set)
              }
            }
          } finally {
            for (const r of receivers.values()) await r.stop()
          }
        }
      } finally {
        for (const d of daemons.values()) await d.stop()
        for (const j of others) await this.lab.cut(j, false)
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

  /**
   * QuicEther bonded over every uplink, in each direction of `direction`
   * (default up) at once, optionally cutting one uplink mid-transfer
   * (restored afterwards): one BondedRun per direction, upload first.
   */
  async bonded(o: { mode: BondMode; streams: number; seconds: number; cut: CutSpec | null; interactive: boolean; direction?: DirectionSet }): Promise<BondedRun[]> {
    checkAborted(this.#init.signal)
    const set = o.direction ?? 'up'
    const links = this.links()
    const schemaModes = readSchemaModes()
    const sockets = new Map<string, string>([CLIENT, GATEWAY].map((n) => [n, join(this.lab.dir, n, 'control.sock')]))
    const tag = `bonded-${o.mode}-p${o.streams}-${set}${o.cut ? `-cut${o.cut.index + 1}` : ''}`
    this.#say(`QuicEther bonded (${o.mode}) over ${links.length} uplinks: ${set === 'both' ? 'upload and download at once' : directionWord(set)}, -P${o.streams}, ${o.seconds} s${o.cut ? `, cutting uplink ${o.cut.index + 1} at ${o.cut.atS} s` : ''}`)
    const daemons = await this.#daemons(tag, (node, c) => {
      const s = (c['control'] as { socket?: unknown } | undefined)?.socket
      if (typeof s === 'string') sockets.set(node, s)
      return node === GATEWAY ? bondedGateway(c) : bondedClient(c, { links, mode: o.mode, port: DEFAULT_NETWORK.port, schemaModes })
    })
    const socket = sockets.get(CLIENT)!
    const gatewaySocket = sockets.get(GATEWAY)!
    const clientNs = this.#ns(CLIENT)
    const gatewayNs = this.#ns(GATEWAY)
    const to = this.#tunnelAddr()
    let receivers: Map<Direction, IntervalReceiver> | null = null
    let cutApplied = false
    try {
      receivers = await this.#startReceivers(set)
      const { status: statusBefore, paths: pathsBefore } = await this.#waitForPaths(socket)
      const gatewayBefore = await this.#status(gatewaySocket)
      const idle = o.interactive ? await ping(clientNs, to, { count: 100, intervalMs: 20, tos: TOS_EF, ...this.#signal() }) : null
      const routers = this.lab.links.map((l) => l.router!)
      const ifBefore = await readIfCounters(clientNs)
      const netBefore = await Promise.all([readProcNet(clientNs), readProcNet(gatewayNs)])
      const rBefore = await Promise.all(routers.map((r) => readIfCounters(r)))
      const pingCount = Math.max(1, Math.floor((o.seconds - warmupFor(o.seconds)) * 5) - 1)
      const linkPings = this.lab.links.map((l) => after(warmupFor(o.seconds) * 1000, () => ping(clientNs, l.addrB.ipv4, { count: pingCount, intervalMs: 200, ...this.#signal() })))
      const loadedCount = Math.floor((o.seconds - warmupFor(o.seconds) - 0.5) * 50)
      // With the machine's stalls over the same span (stall.ts): read beside the pings.
      const loaded = o.interactive && loadedCount > 0 ? after(warmupFor(o.seconds) * 1000, async () => {
        const meter = StallMeter.start()
        try {
          const pinged = await ping(clientNs, to, { count: loadedCount, intervalMs: 20, tos: TOS_EF, timestamps: true, ...this.#signal() })
          const m = await meter
          return { pinged, stalls: await m.stop(), windows: m.windows() }
        } finally {
          await (await meter).stop()
        }
      }) : null
      // Read before iperf3's own end: it closes its data connections with resets, which are not failures.
      const netDuring = after(resetReadingMs(o.seconds), async () => {
        const at = Date.now()
        return { at, nets: await Promise.all([readProcNet(clientNs), readProcNet(gatewayNs)]) }
      })
      const cut = o.cut
      const atCut: { counters: Map<string, IfCounters> | null } = { counters: null }
      const applyCut = async (): Promise<void> => {
        atCut.counters = await readIfCounters(clientNs)
        await this.lab.cut(cut!.index)
        cutApplied = true
      }
      const cpu = this.#cpuMeter(daemons)
      const machine = new MachineMeter()
      cpu.start()
      machine.start()
      const { runs, rates } = await this.#tunnelTransfers(receivers, { streams: o.streams, seconds: o.seconds, ...(cut ? { cut: { atS: cut.atS, apply: applyCut } } : {}) })
      const cpuSeconds = cpu.stop()
      const machineBusy = machine.stop()
      const [pings, loadedRun] = await Promise.all([Promise.all(linkPings), loaded])
      const loadedPing = loadedRun?.pinged ?? null
      const ifAfter = await readIfCounters(clientNs)
      const netAfter = await netDuring
      const rAfter = await Promise.all(routers.map((r) => readIfCounters(r)))
      const statusAfter = await this.#status(socket)
      const gatewayAfter = await this.#status(gatewaySocket)
      const pathsAfter = daemonPaths(statusAfter, GATEWAY)
      const gwPathsBefore = daemonPaths(gatewayBefore, CLIENT)
      const gwPathsAfter = daemonPaths(gatewayAfter, CLIENT)
      const allRuns = [...runs.values()]
      const startWall = Math.min(...allRuns.map((t) => t.startWallMs))
      const endWall = Math.max(...allRuns.map((t) => t.endWallMs))
      const durationS = Math.max(0.001, (endWall - startWall) / 1000)
      const runCpu: RunCpu = { seconds: cpuSeconds, bytes: allRuns.reduce((s, t) => s + seriesBytes(t), 0), machineBusy, daemonsWaitPerSecond: cpu.waitPerSecond }
      // Which links carried the upload or download at once: up to the cut, when there is one.
      const untilCut = atCut.counters ?? ifAfter
      // A reading that ran late (a loaded machine) may hold iperf3's closing resets: then only iperf3's own errors count.
      const ends = allRuns.map((t) => (t.zeroWallMs ?? t.startWallMs) + o.seconds * 1000)
      const resetCounters = readingBeforeEnd(netAfter.at, ends) ? tcpFailureDetail([{ node: CLIENT, before: netBefore[0], after: netAfter.nets[0] }, { node: GATEWAY, before: netBefore[1], after: netAfter.nets[1] }]) : null
      const resets = Math.max(allRuns.some((t) => t.error) ? 1 : 0, Object.values(resetCounters ?? {}).reduce((s, d) => s + d, 0))
      let interactive: InteractiveFigures | null = null
      if (idle && loadedPing && idle.rttsMs.length && loadedPing.rttsMs.length) {
        const a = percentile(idle.rttsMs, 0.99)
        const b = percentile(loadedPing.rttsMs, 0.99)
        const stalls = loadedRun?.stalls ?? null
        // The same pings less those whose flight overlapped one of the machine's stalls: the tunnel's part.
        const kept = stalls && loadedPing.replies.length === loadedPing.rttsMs.length ? outsideStalls(loadedPing.replies, loadedRun?.windows ?? []) : null
        const c = kept?.length ? percentile(kept.map((r) => r.rttMs), 0.99) : null
        const outside = kept && c !== null ? { p99_ms: round(c, 3), delta_ms: round(c - a, 3), pings: kept.length, left_out: loadedPing.replies.length - kept.length } : null
        interactive = { idle_p99_ms: round(a, 3), loaded_p99_ms: round(b, 3), delta_ms: round(b - a, 3), loaded_received: loadedPing.received, loaded_sent: loadedPing.sent, stalls, outside_stalls: outside }
      }
      const out: BondedRun[] = []
      for (const [dir, t] of runs) {
        const up = dir === 'up'
        const bytesOf = (c: IfCounters): number => (up ? c.txBytes : c.rxBytes)
        const linkBytes = this.lab.links.map((l) => bytesOf(ifDelta(ifBefore, ifAfter, l.ifA)))
        const figures = this.lab.links.map((l, i) => {
          // The sending side's path: the client's for an upload, the gateway's (by the client's address on the link) for a download.
          const dp = up ? (pathsAfter ? pathForLink(pathsAfter, l.ifA, l.addrB.ipv4) : null) : gwPathsAfter ? pathForLink(gwPathsAfter, null, l.addrA.ipv4) : null
          const dpBefore = up ? (pathsBefore ? pathForLink(pathsBefore, l.ifA, l.addrB.ipv4) : null) : gwPathsBefore ? pathForLink(gwPathsBefore, null, l.addrA.ipv4) : null
          const rtts = pings[i]!.rttsMs
          const rIn = ifDelta(rBefore[i]!, rAfter[i]!, linkIfname(this.runId, i, up ? 'ra' : 'rb')).rxPackets
          const rOut = ifDelta(rBefore[i]!, rAfter[i]!, linkIfname(this.runId, i, up ? 'rb' : 'ra')).txPackets
          const dLoss = pathLoss(dpBefore, dp)
          const rLoss = rIn > 0 ? Math.max(0, 1 - rOut / rIn) : null
          return {
            txBytes: linkBytes[i]!,
            wireMbit: round((linkBytes[i]! * 8) / durationS / 1e6, 2),
            rttMs: dp?.rttMs ?? (rtts.length ? round(median(rtts), 2) : null),
            rttSource: dp?.rttMs != null ? ('daemon' as const) : rtts.length ? ('link-ping' as const) : null,
            loss: dLoss ?? (rLoss === null ? null : round(rLoss, 5)),
            lossSource: dLoss !== null ? ('daemon' as const) : rLoss !== null ? ('router' as const) : null,
          }
        })
        const carrying = linksCarrying(this.lab.links.map((l) => bytesOf(ifDelta(ifBefore, untilCut, l.ifA))))
        const verdict = bondVerdict({ paths: pathsAfter ?? pathsBefore, carrying, uplinks: links.length, names: this.uplinks.map((u) => u.name), ...(atCut.counters ? { window: 'before the cut' } : {}) })
        this.#say(`  bonded ${directionWord(dir)} -P${o.streams}: ${describe(measured(t, o.seconds))}; ${verdict.why}`)
        // Reordering happens where the transfer arrives; re-sends where it leaves.
        const received = up ? bondDelta(daemonBond(gatewayBefore, CLIENT), daemonBond(gatewayAfter, CLIENT)) : bondDelta(daemonBond(statusBefore, GATEWAY), daemonBond(statusAfter, GATEWAY))
        const sent = up ? bondDelta(daemonBond(statusBefore, GATEWAY), daemonBond(statusAfter, GATEWAY)) : bondDelta(daemonBond(gatewayBefore, CLIENT), daemonBond(gatewayAfter, CLIENT))
        const bond = received || sent ? { mode: received?.mode ?? sent?.mode ?? null, reordered: received?.reordered ?? 0, late: received?.late ?? 0, dropped: received?.dropped ?? 0, resent: sent?.resent ?? 0 } : null
        out.push({ direction: dir, rates: rates?.get(dir) ?? null, cpu: runCpu, verdict, daemonPaths: (pathsAfter ?? pathsBefore)?.length ?? null, bond, transfer: t, resets, resetCounters, links: figures, interactive })
      }
      return out
    } finally {
      if (receivers) for (const r of receivers.values()) await r.stop()
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
  /** The most a TCP socket may buffer at either end (BondLabInit.tcpBuffer); unset: the kernel's defaults. */
  readonly tcpBuffer?: number
  /** up (client → gateway), down (gateway → client), or both at once; default up. */
  readonly direction?: DirectionSet
  /** Also measure kernel MPTCP over the same links (uploads only). */
  readonly mptcp: boolean
  /** 0-based uplinks whose rates vary during each transfer (vary.ts), drawn from `seed`. */
  readonly vary?: readonly number[]
  readonly seed?: number
  readonly signal?: AbortSignal
  readonly progress?: (line: string) => void
}

/** What `lab bond` measured: one bonded result per direction (upload first). */
export interface LabBondResult {
  readonly direction: DirectionSet
  readonly results: readonly (BondResult & { mptcp?: MptcpFigures })[]
  /** How closely the delay lines kept their delays over the whole run (null: no delayed link). */
  readonly emulation: EmulationFigures | null
}

/** `lab bond` without --raw: singles, then bonded (with the cut), then MPTCP when asked. */
export async function runBond(o: RunBondOptions): Promise<LabBondResult> {
  const set = o.direction ?? 'up'
  if (o.mptcp && set !== 'up') throw new LabSpecError('--mptcp: kernel MPTCP is measured for uploads only (--direction up)')
  const bl = new BondLab({ uplinks: o.uplinks, congestion: o.congestion, ...(o.tcpBuffer !== undefined ? { tcpBuffer: o.tcpBuffer } : {}), ...(o.vary ? { vary: o.vary } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}), ...(o.signal ? { signal: o.signal } : {}), ...(o.progress ? { progress: o.progress } : {}) })
  return bl.around(async () => {
    await bl.start()
    const singles = await bl.singles([o.streams], o.seconds, [set])
    const runs = await bl.bonded({ mode: o.mode, streams: o.streams, seconds: o.seconds, cut: o.cut, interactive: !o.cut, direction: set })
    const results: (BondResult & { mptcp?: MptcpFigures })[] = runs.map((run) =>
      bondResult({ run, uplinks: o.uplinks, ifnames: bl.lab.links.map((l) => l.ifA), singles: singles.mbit(set, run.direction, o.streams), singlesCpu: singles.cpu(set, o.streams), mode: o.mode, streams: o.streams, seconds: o.seconds, congestion: o.congestion, tcpBuffer: o.tcpBuffer ?? null, cut: o.cut, runId: bl.runId }),
    )
    if (o.mptcp && results[0]) {
      const raw = await bl.raw(o.streams, o.seconds)
      const tcpSingles = raw.map((m) => m.mbit)
      const m = await bl.mptcp({ streams: o.streams, seconds: o.seconds, cut: o.cut })
      results[0] = { ...results[0], mptcp: mptcpFigures(m, tcpSingles, o.cut, o.seconds) }
    }
    return { direction: set, results }
  })
}

/** `lab bond --raw`: the links alone, no QuicEther, in each direction asked (one after the other). */
export async function runRaw(o: Pick<RunBondOptions, 'uplinks' | 'streams' | 'seconds' | 'congestion' | 'direction' | 'signal' | 'progress'>): Promise<RawResult[]> {
  const bl = new BondLab({ uplinks: o.uplinks, congestion: o.congestion, ...(o.signal ? { signal: o.signal } : {}), ...(o.progress ? { progress: o.progress } : {}) })
  try {
    await bl.start()
    const out: RawResult[] = []
    for (const dir of directionsOf(o.direction ?? 'up')) {
      const runs = await bl.raw(o.streams, o.seconds, dir)
      out.push(rawResult({ runs, uplinks: o.uplinks, streams: o.streams, seconds: o.seconds, congestion: o.congestion, runId: bl.runId, direction: dir }))
    }
    return out
  } finally {
    await bl.stop()
  }
}
