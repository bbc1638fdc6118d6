/**
 * The NAT world of `lab nat` and `lab roam`: an internet router (`inet`), a
 * public server (`pub`) and access legs, each a host behind its own ISP
 * router namespace that NATs as one of the RFC 4787 types (nat-types.ts).
 * IPv4 only. Every address is a documentation or private range inside the
 * run's own namespaces.
 *
 *   pub 198.51.100.10 + .11/24 ── inet 198.51.100.1
 *   inet 203.0.113.{1,17}/28 ── ISP router WAN 203.0.113.{2,18} (its public address)
 *   ISP router LAN 192.168.{1,2}.1/24 ── host 192.168.{1,2}.2          (NAT types)
 *   ISP router LAN 203.0.113.{129,145}/28 ── host 203.0.113.{130,146}  ('public': routed, no NAT)
 *
 * Hosts have one default route, via their ISP router, so they reach pub and
 * each other only through their NATs. A leg's `rate` is a tbf on both of its
 * router's egress veths; its `delayMs` is one-way, each direction, held by a
 * delay line in `inet` (a pure router, so conntrack never sees a packet twice).
 *
 * Everything is named `qel-<run>-…`: teardown (labDown by run id) finds it by
 * name, so it also cleans what a failed build left half-made.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdir, rm } from 'node:fs/promises'
import { DelayLine, delayLineSeed, type DelayedDirection } from './delay.js'
import { LabCommandError, LabSpecError } from './errors.js'
import { ipBatch, run, runIn, spawnIn, stopChild, type RunOptions, type RunResult } from './exec.js'
import { NAT_TYPES, classifyNat, isNatType, natSysctls, natTypeTable, type NatBehaviour, type NatObservation, type NatType } from './nat-types.js'
import { createNetns, listLabNetns } from './netns.js'
import { LAB_PREFIX, isRunId, newRunId, nodeNetns, runDir } from './names.js'
import { tbfArgs, tbfParams } from './shaping.js'
import { labDown } from './teardown.js'
import { parseRate } from './units.js'

export interface NatWorldOptions {
  readonly a: NatType
  readonly b: NatType
  /** tbf rate of each access leg, both directions ('50mbit'); default unlimited. */
  readonly rate?: string
  /** One-way delay of each access leg, each direction, ms; default none. */
  readonly delayMs?: number
  /** Run id (4 hex digits); default a fresh unused one. */
  readonly run?: string
}

export interface NatWorldNamespaces {
  readonly inet: string
  readonly pub: string
  readonly ispA: string
  readonly ispB: string
  readonly a: string
  readonly b: string
}

export type NatWorldNode = keyof NatWorldNamespaces

export interface NatWorldAddresses {
  /** Host a's own address: private behind a NAT, public for 'public'. */
  readonly a: string
  readonly b: string
  /** The ISP routers' public (WAN) addresses: where a NATed host's traffic appears to come from. */
  readonly ispA: string
  readonly ispB: string
  /** pub's two addresses, on one link. */
  readonly pub1: string
  readonly pub2: string
}

export interface NatWorld {
  readonly runId: string
  readonly types: { readonly a: NatType; readonly b: NatType }
  readonly ns: NatWorldNamespaces
  readonly addr: NatWorldAddresses
  /** Runs a command in a node's namespace. */
  exec(node: NatWorldNode, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>
  /** Deletes everything of the run (processes, namespaces); safe to call twice. */
  teardown(): Promise<void>
}

export type Uplink = 'wifi' | 'lte'

export interface RoamWorldOptions {
  /** tbf rate of each uplink, both directions; default unlimited. */
  readonly rate?: string
  /** NAT of both uplinks' routers; default 'port-restricted'. */
  readonly nat?: NatType
  readonly run?: string
}

export interface RoamWorldNamespaces {
  readonly inet: string
  readonly server: string
  readonly ispWifi: string
  readonly ispLte: string
  readonly client: string
}

export type RoamWorldNode = keyof RoamWorldNamespaces

export interface UplinkInfo {
  /** The client's interface of this uplink. */
  readonly ifname: string
  /** The client's address on it (present only while the uplink is up). */
  readonly addr: string
  readonly prefix: number
  /** The uplink router's LAN address (the client's default route while up). */
  readonly gateway: string
  /** The router's public address (the client's address as the internet sees it, behind NAT). */
  readonly public: string
}

export interface RoamWorld {
  readonly runId: string
  readonly ns: RoamWorldNamespaces
  /** The server's two addresses (like pub's). */
  readonly addr: { readonly server: string; readonly server2: string }
  readonly uplinks: Readonly<Record<Uplink, UplinkInfo>>
  /** The uplink that is up now. */
  readonly current: Uplink
  exec(node: RoamWorldNode, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>
  /**
   * Takes the current uplink down (address removed, link down), then brings
   * `uplink` up (link up, address, default route): one uplink at a time.
   * Returns when each happened (Date.now()). Moving to the current uplink is a no-op.
   */
  moveTo(uplink: Uplink): Promise<{ readonly downAt: number; readonly upAt: number }>
  teardown(): Promise<void>
}

const PUB_NET = { inet: '198.51.100.1', pub1: '198.51.100.10', pub2: '198.51.100.11', prefix: 24 }

/** Per-leg addressing, leg 0 and 1 (a and b, or wifi and lte). */
function legNet(leg: 0 | 1, type: NatType): { wanInet: string; wanIsp: string; lanIsp: string; lanHost: string; lanPrefix: number; lanNet: string; wanNet: string } {
  const w = leg * 16
  const wan = { wanInet: `203.0.113.${w + 1}`, wanIsp: `203.0.113.${w + 2}`, wanNet: `203.0.113.${w}/28` }
  if (type === 'public') {
    const l = 128 + leg * 16
    return { ...wan, lanIsp: `203.0.113.${l + 1}`, lanHost: `203.0.113.${l + 2}`, lanPrefix: 28, lanNet: `203.0.113.${l}/28` }
  }
  return { ...wan, lanIsp: `192.168.${leg + 1}.1`, lanHost: `192.168.${leg + 1}.2`, lanPrefix: 24, lanNet: `192.168.${leg + 1}.0/24` }
}

/** `qel-<run>-<suffix>`: at most 15 characters with a suffix of up to 6. */
function ifname(runId: string, suffix: string): string {
  return `${LAB_PREFIX}${runId}-${suffix}`
}

/**
 * Claims a run id: its temp dir made with an exclusive mkdir (so two builds
 * at once never share one; labDown removes the dir) and no namespace of it
 * present. A failed build tears down by run id, so it must own the id.
 */
async function claimRunId(given: string | undefined): Promise<string> {
  if (given !== undefined && !isRunId(given)) throw new LabSpecError(`run id '${given}' is not 4 hex digits`)
  for (;;) {
    const id = given ?? newRunId()
    const claimed = await mkdir(runDir(id), { mode: 0o700 }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return false
        throw err
      },
    )
    if (claimed && (await listLabNetns(id)).length === 0) return id
    if (claimed) await rm(runDir(id), { recursive: true, force: true })
    if (given !== undefined) throw new LabSpecError(`run id '${given}' is in use by another lab run`)
  }
}

/** A veth with one end in each namespace, created straight there (the host's namespace never sees it). */
function veth(nsA: string, ifA: string, nsB: string, ifB: string): Promise<RunResult> {
  return run('ip', ['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB])
}

interface Leg {
  /** One letter for interface names ('a', 'b', 'w', 'l'). */
  readonly tag: string
  readonly type: NatType
  readonly isp: string
  readonly host: string
  readonly net: ReturnType<typeof legNet>
  /** inet's end of the WAN veth, the router's WAN and LAN ends, the host's end. */
  readonly ifInet: string
  readonly ifWan: string
  readonly ifLan: string
  readonly ifHost: string
}

function makeLeg(runId: string, tag: string, leg: 0 | 1, type: NatType, isp: string, host: string): Leg {
  return {
    tag,
    type,
    isp,
    host,
    net: legNet(leg, type),
    ifInet: ifname(runId, `${tag}i`),
    ifWan: ifname(runId, `${tag}w`),
    ifLan: ifname(runId, `${tag}l`),
    ifHost: ifname(runId, `${tag}h`),
  }
}

interface CoreInit {
  readonly runId: string
  readonly inet: string
  readonly pub: string
  readonly legs: readonly Leg[]
  /** Legs whose host side starts without address, link or route (a spare uplink). */
  readonly idle: ReadonlySet<string>
  readonly rateBps: number | null
  readonly delayMs: number
}

/**
 * Builds inet, pub and the legs. Independent steps run at once: namespaces,
 * then veths, then each namespace's addresses and routes in one `ip -batch`,
 * then each router's nft table, sysctls and qdiscs. Returns the delay line,
 * if any. Partial state is left for labDown.
 */
async function buildCore(c: CoreInit): Promise<DelayLine | null> {
  const { runId, inet, pub, legs } = c
  const hosts = [...new Set(legs.map((l) => l.host))]
  await Promise.all([inet, pub, ...legs.map((l) => l.isp), ...hosts].map(createNetns))

  const ifPub = ifname(runId, 'p')
  const ifPubInet = ifname(runId, 'pi')
  await Promise.all([
    veth(inet, ifPubInet, pub, ifPub),
    ...legs.map((l) => veth(inet, l.ifInet, l.isp, l.ifWan)),
    ...legs.map((l) => veth(l.isp, l.ifLan, l.host, l.ifHost)),
  ])

  const inetLines = [`addr add ${PUB_NET.inet}/${PUB_NET.prefix} dev ${ifPubInet}`, `link set ${ifPubInet} up`]
  for (const l of legs) {
    inetLines.push(`addr add ${l.net.wanInet}/28 dev ${l.ifInet}`, `link set ${l.ifInet} up`)
    if (l.type === 'public') inetLines.push(`route add ${l.net.lanNet} via ${l.net.wanIsp}`)
  }
  const hostLines = new Map<string, string[]>(hosts.map((h) => [h, []]))
  for (const l of legs) {
    const lines = hostLines.get(l.host) ?? []
    if (!c.idle.has(l.tag)) lines.push(...uplinkUpLines(l.ifHost, l.net.lanHost, l.net.lanPrefix, l.net.lanIsp))
    hostLines.set(l.host, lines)
  }
  await Promise.all([
    ipBatch(inet, inetLines),
    ipBatch(pub, [
      `addr add ${PUB_NET.pub1}/${PUB_NET.prefix} dev ${ifPub}`,
      `addr add ${PUB_NET.pub2}/${PUB_NET.prefix} dev ${ifPub}`,
      `link set ${ifPub} up`,
      `route add default via ${PUB_NET.inet}`,
    ]),
    ...legs.map((l) =>
      ipBatch(l.isp, [
        `addr add ${l.net.wanIsp}/28 dev ${l.ifWan}`,
        `link set ${l.ifWan} up`,
        `addr add ${l.net.lanIsp}/${l.net.lanPrefix} dev ${l.ifLan}`,
        `link set ${l.ifLan} up`,
        `route add default via ${l.net.wanInet}`,
      ]),
    ),
    ...[...hostLines].map(([h, lines]) => ipBatch(h, lines)),
  ])

  await Promise.all(legs.map((l) => configureRouter(runId, l, c.rateBps, c.delayMs)))
  if (c.delayMs <= 0) return null
  return startDelay(runId, inet, legs, c.delayMs)
}

function uplinkUpLines(dev: string, addr: string, prefix: number, gateway: string): string[] {
  return [`link set ${dev} up`, `addr add ${addr}/${prefix} dev ${dev}`, `route replace default via ${gateway} dev ${dev}`]
}

async function configureRouter(runId: string, l: Leg, rateBps: number | null, delayMs: number): Promise<void> {
  const table = natTypeTable(ifname(runId, `nat${l.tag}`), l.type, { lan: l.ifLan, wan: l.ifWan, publicAddr: l.net.wanIsp, hostAddr: l.net.lanHost })
  if (table !== null) {
    await runIn(l.isp, 'nft', ['-f', '-'], { input: table })
    // conntrack is loaded by now (the NAT table needs it): its UDP timeouts are this namespace's own.
    await runIn(l.isp, 'sysctl', ['-q', '-w', ...natSysctls()])
  }
  if (rateBps !== null) {
    const p = tbfParams(rateBps, 2 * delayMs, null)
    await Promise.all([run('tc', ['-n', l.isp, ...tbfArgs(l.ifWan, p)]), run('tc', ['-n', l.isp, ...tbfArgs(l.ifLan, p)])])
  }
}

/** Routing tables and rule priorities of the delay in inet (the run's own namespace). */
const DELAY_TABLE_BASE = 110
const PREF_UP = 1000
const PREF_OUT = 1100
const PREF_DOWN = 1200

/**
 * One delay line in inet with two TUNs per leg: packets from the leg (keyed
 * on their incoming veth) and packets to it (keyed on the leg's public
 * prefixes). A packet leaving a "to" TUN goes straight out through the main
 * table; one leaving a "from" TUN may still be bound to another leg and
 * enter that leg's "to" TUN. So a → b is delayed twice, once per leg.
 */
async function startDelay(runId: string, inet: string, legs: readonly Leg[], delayMs: number): Promise<DelayLine> {
  const dirs: DelayedDirection[] = []
  const rules: string[] = []
  for (const [i, l] of legs.entries()) {
    const up = { from: l.ifInet, tun: ifname(runId, `${l.tag}du`), delayMs, table: DELAY_TABLE_BASE + 2 * i }
    const down = { from: '', tun: ifname(runId, `${l.tag}dd`), delayMs, table: DELAY_TABLE_BASE + 2 * i + 1 }
    dirs.push(up, down)
    rules.push(
      `link set ${up.tun} up`,
      `link set ${down.tun} up`,
      `route add default dev ${up.tun} table ${up.table}`,
      `route add default dev ${down.tun} table ${down.table}`,
      `rule add iif ${l.ifInet} lookup ${up.table} pref ${PREF_UP}`,
      `rule add iif ${down.tun} lookup main pref ${PREF_OUT}`,
      `rule add to ${l.net.wanNet} lookup ${down.table} pref ${PREF_DOWN}`,
    )
    if (l.type === 'public') rules.push(`rule add to ${l.net.lanNet} lookup ${down.table} pref ${PREF_DOWN}`)
  }
  // No jitter here, so the seed draws nothing; the delay line takes one all the same.
  const line = new DelayLine({ netns: inet, runId, dirs, seed: delayLineSeed(null, runId, 0), detached: false })
  await line.start()
  await ipBatch(inet, rules)
  return line
}

/** The world of `lab nat`: hosts a and b behind NATs of the given types, pub on the internet. */
export async function buildNatWorld(o: NatWorldOptions): Promise<NatWorld> {
  for (const side of ['a', 'b'] as const) {
    if (!isNatType(o[side])) throw new LabSpecError(`NAT type of ${side} '${String(o[side])}' is not one of ${NAT_TYPES.join(', ')}`)
  }
  const rateBps = o.rate === undefined ? null : parseRate(o.rate)
  const delayMs = o.delayMs ?? 0
  if (!(delayMs >= 0 && delayMs <= 10_000)) throw new LabSpecError(`delay must be between 0 and 10 s, not ${delayMs} ms`)
  const runId = await claimRunId(o.run)
  const ns: NatWorldNamespaces = {
    inet: nodeNetns(runId, 'inet'),
    pub: nodeNetns(runId, 'pub'),
    ispA: nodeNetns(runId, 'isp-a'),
    ispB: nodeNetns(runId, 'isp-b'),
    a: nodeNetns(runId, 'a'),
    b: nodeNetns(runId, 'b'),
  }
  const legA = makeLeg(runId, 'a', 0, o.a, ns.ispA, ns.a)
  const legB = makeLeg(runId, 'b', 1, o.b, ns.ispB, ns.b)
  const down = teardownOnce(runId, () => delay)
  let delay: DelayLine | null = null
  try {
    delay = await buildCore({ runId, inet: ns.inet, pub: ns.pub, legs: [legA, legB], idle: new Set(), rateBps, delayMs })
  } catch (err) {
    await down()
    throw err
  }
  return {
    runId,
    types: { a: o.a, b: o.b },
    ns,
    addr: { a: legA.net.lanHost, b: legB.net.lanHost, ispA: legA.net.wanIsp, ispB: legB.net.wanIsp, pub1: PUB_NET.pub1, pub2: PUB_NET.pub2 },
    exec: (node, cmd, args, opts) => runIn(ns[node], cmd, args, opts),
    teardown: down,
  }
}

/** The world of `lab roam`: a client with a Wi-Fi and an LTE uplink, each behind its own NAT, and a server. */
export async function buildRoamWorld(o: RoamWorldOptions = {}): Promise<RoamWorld> {
  const nat = o.nat ?? 'port-restricted'
  if (!isNatType(nat)) throw new LabSpecError(`NAT type '${String(nat)}' is not one of ${NAT_TYPES.join(', ')}`)
  const rateBps = o.rate === undefined ? null : parseRate(o.rate)
  const runId = await claimRunId(o.run)
  const ns: RoamWorldNamespaces = {
    inet: nodeNetns(runId, 'inet'),
    server: nodeNetns(runId, 'server'),
    ispWifi: nodeNetns(runId, 'isp-wifi'),
    ispLte: nodeNetns(runId, 'isp-lte'),
    client: nodeNetns(runId, 'client'),
  }
  const legs: Record<Uplink, Leg> = {
    wifi: makeLeg(runId, 'w', 0, nat, ns.ispWifi, ns.client),
    lte: makeLeg(runId, 'l', 1, nat, ns.ispLte, ns.client),
  }
  const down = teardownOnce(runId, () => null)
  try {
    await buildCore({ runId, inet: ns.inet, pub: ns.server, legs: [legs.wifi, legs.lte], idle: new Set([legs.lte.tag]), rateBps, delayMs: 0 })
  } catch (err) {
    await down()
    throw err
  }
  const info = (l: Leg): UplinkInfo => ({ ifname: l.ifHost, addr: l.net.lanHost, prefix: l.net.lanPrefix, gateway: l.net.lanIsp, public: l.net.wanIsp })
  let current: Uplink = 'wifi'
  return {
    runId,
    ns,
    addr: { server: PUB_NET.pub1, server2: PUB_NET.pub2 },
    uplinks: { wifi: info(legs.wifi), lte: info(legs.lte) },
    get current() {
      return current
    },
    exec: (node, cmd, args, opts) => runIn(ns[node], cmd, args, opts),
    async moveTo(uplink) {
      if (uplink === current) {
        const now = Date.now()
        return { downAt: now, upAt: now }
      }
      const from = legs[current]
      const to = legs[uplink]
      await ipBatch(ns.client, [`addr flush dev ${from.ifHost}`, `link set ${from.ifHost} down`])
      const downAt = Date.now()
      await ipBatch(ns.client, uplinkUpLines(to.ifHost, to.net.lanHost, to.net.lanPrefix, to.net.lanIsp))
      const upAt = Date.now()
      current = uplink
      return { downAt, upAt }
    },
    teardown: down,
  }
}

function teardownOnce(runId: string, delay: () => DelayLine | null): () => Promise<void> {
  let done: Promise<void> | null = null
  return () => {
    done ??= (async () => {
      await delay()
        ?.stop()
        .catch(() => null)
      await labDown({ runId, graceMs: 500 })
    })()
    return done
  }
}

// ---- the RFC 4787 / RFC 5780 probe ----

const PROBE_PORT1 = 3478
const PROBE_PORT2 = 3479

/**
 * pub's side of the probe: three UDP sockets (IP1:port1, IP1:port2,
 * IP2:port1). "M…" is answered from the socket it reached with the source
 * address:port seen; "F…" (to IP1:port1 only) is answered from all three,
 * to the source seen. Prints "ready" once bound.
 */
const PROBE_SERVER_JS = `
const d = require('node:dgram'); const c = JSON.parse(process.argv[1]); const s = {}; let n = 0
for (const [tag, ip, port] of [['ip1p1', c.ip1, c.p1], ['ip1p2', c.ip1, c.p2], ['ip2p1', c.ip2, c.p1]]) {
  const u = d.createSocket('udp4'); s[tag] = u
  u.on('message', (m, r) => {
    const q = m.toString(); const seen = r.address + ':' + r.port
    if (q[0] === 'M') u.send(JSON.stringify({ tag, seen, q }), r.port, r.address)
    else if (q[0] === 'F' && tag === 'ip1p1') for (const t of Object.keys(s)) s[t].send(JSON.stringify({ tag: t, seen, q }), r.port, r.address)
  })
  u.bind(port, ip, () => { if (++n === 3) console.log('ready') })
}`

/**
 * The host's side: socket m sends "M" to the three endpoints (again every
 * 100 ms until each answered); socket f sends "F" to IP1:port1 only (again
 * until it answered), then listens 250 ms more for the other two. Prints one
 * JSON NatObservation. It gives up `budgetMs` after the first answer, or
 * `startMs + budgetMs` after its own start when nothing answers (the
 * servers start beside it and a loaded machine may take seconds to start a
 * Node process).
 */
const PROBE_CLIENT_JS = `
const d = require('node:dgram'); const c = JSON.parse(process.argv[1])
const eps = { ip1p1: [c.ip1, c.p1], ip1p2: [c.ip1, c.p2], ip2p1: [c.ip2, c.p1] }
const seen = { ip1p1: null, ip1p2: null, ip2p1: null }; const arrived = { ip1p1: false, ip1p2: false, ip2p1: false }
const m = d.createSocket('udp4'); const f = d.createSocket('udp4'); let local = ''
let tF = 0; let t0 = Date.now() + c.startMs
const finish = () => { console.log(JSON.stringify({ local, seen, arrived })); process.exit(0) }
const heard = () => { t0 = Math.min(t0, Date.now()) }
m.on('message', (b) => { heard(); const r = JSON.parse(b); if (r.q === 'M') seen[r.tag] = r.seen })
f.on('message', (b) => { heard(); const r = JSON.parse(b); if (r.q === 'F') { arrived[r.tag] = true; if (r.tag === 'ip1p1' && !tF) tF = Date.now() } })
const tick = () => {
  const mDone = Object.values(seen).every((x) => x !== null)
  if ((mDone && tF && Date.now() - tF >= 250) || Date.now() - t0 > c.budgetMs) return finish()
  if (!mDone) for (const [tag, [ip, port]] of Object.entries(eps)) if (seen[tag] === null) m.send('M', port, ip)
  if (!tF) f.send('F', c.p1, c.ip1)
  setTimeout(tick, tF && mDone ? 25 : 100)
}
m.bind(0, c.bind, () => { local = c.bind + ':' + m.address().port; f.bind(0, c.bind, tick) })`

/** Starts the probe's UDP servers in `ns`; resolves once they are bound. */
async function startProbeServer(ns: string, runId: string, ip1: string, ip2: string): Promise<ChildProcess> {
  const child = spawnIn(ns, process.execPath, ['-e', PROBE_SERVER_JS, JSON.stringify({ ip1, ip2, p1: PROBE_PORT1, p2: PROBE_PORT2 })], { runId })
  let err = ''
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d))
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new LabCommandError(`the NAT probe's servers in ${ns} did not start within 10 s`)), 10_000)
      child.stdout?.setEncoding('utf8').once('data', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new LabCommandError(`the NAT probe's servers in ${ns} exited (${code ?? 'signal'}): ${err.trim()}`))
      })
    })
  } catch (e) {
    await stopChild(child, 200)
    throw e
  }
  return child
}

/**
 * Measures the NAT in front of host `side` with real UDP, as RFC 4787/5780
 * describe (see the two scripts above), and classifies it. Starts and stops
 * its own processes; well under a second on an idle machine (each side's
 * Node start is most of it).
 */
export async function probeNat(world: NatWorld, side: 'a' | 'b'): Promise<NatBehaviour> {
  const { pub1, pub2 } = world.addr
  const cfg = { ip1: pub1, ip2: pub2, p1: PROBE_PORT1, p2: PROBE_PORT2, bind: world.addr[side], budgetMs: 1000, startMs: 8000 }
  // Both start at once: the client sends again until answered, so it need not wait for the servers.
  const server = startProbeServer(world.ns.pub, world.runId, pub1, pub2)
  const client = runIn(world.ns[side], process.execPath, ['-e', PROBE_CLIENT_JS, JSON.stringify(cfg)], { timeoutMs: 15_000 })
  const [s, c] = await Promise.allSettled([server, client])
  if (s.status === 'fulfilled') await stopChild(s.value, 200)
  if (s.status === 'rejected') throw s.reason
  if (c.status === 'rejected') throw c.reason
  return classifyNat(JSON.parse(c.value.stdout) as NatObservation)
}
