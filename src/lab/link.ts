/**
 * A link between two nodes. Without emulation it is a plain veth pair
 * (a ↔ b, one /24). With a rate, delay, jitter, loss or NAT it runs through a router
 * namespace: a ↔ R ↔ b, two /25s, where R carries the tbf qdiscs, the loss
 * and NAT tables and the delay line. Both veth ends are created straight in
 * the namespaces, so the host's namespace is never touched.
 *
 * Addresses of link i (i < 256):
 *   plain    a 10.251.i.1/24    b 10.251.i.2/24    fdc5:1ab:0:i::1,2/64
 *   routed   a 10.251.i.1/25    R 10.251.i.2/25    fdc5:1ab:1:i::1,2/64   (a side)
 *            R 10.251.i.129/25  b 10.251.i.130/25  fdc5:1ab:2:i::1,2/64   (b side)
 * Each node reaches the other's link address through that link only, so a
 * node with several links to one peer (uplinks for bonding) has one path per
 * link. Behind NAT, b has no route to a's side.
 */
import { ipBatch, run } from './exec.js'
import { createNetns } from './netns.js'
import { linkIfname, routerNetns } from './names.js'
import { lossTable, tbfArgs, tbfParams } from './shaping.js'
import { natTable } from './nat.js'
import { DELAY_TABLE_FROM_A, DELAY_TABLE_FROM_B, DelayLine, delayLineSeed, delayRoutes, type DelayedDirection } from './delay.js'
import type { DirectionSpec, IfAddr, LinkHandle, LinkSpec } from './types.js'

export interface LinkAddressing {
  readonly a: IfAddr
  readonly b: IfAddr
  /** Router ends facing a and b (routed links only). */
  readonly ra: IfAddr | null
  readonly rb: IfAddr | null
}

function v6(group: number, index: number, host: number): string {
  return `fdc5:1ab:${group}:${index.toString(16)}::${host}`
}

/** The addresses of link `index` (pure; see the table above). */
export function linkAddressing(index: number, routed: boolean): LinkAddressing {
  const net = `10.251.${index}`
  if (!routed) {
    return {
      a: { ipv4: `${net}.1`, prefix4: 24, ipv6: v6(0, index, 1), prefix6: 64 },
      b: { ipv4: `${net}.2`, prefix4: 24, ipv6: v6(0, index, 2), prefix6: 64 },
      ra: null,
      rb: null,
    }
  }
  return {
    a: { ipv4: `${net}.1`, prefix4: 25, ipv6: v6(1, index, 1), prefix6: 64 },
    ra: { ipv4: `${net}.2`, prefix4: 25, ipv6: v6(1, index, 2), prefix6: 64 },
    rb: { ipv4: `${net}.129`, prefix4: 25, ipv6: v6(2, index, 1), prefix6: 64 },
    b: { ipv4: `${net}.130`, prefix4: 25, ipv6: v6(2, index, 2), prefix6: 64 },
  }
}

function emulated(d: DirectionSpec): boolean {
  return d.rate !== null || delayed(d) || d.loss > 0
}

/** True when the direction goes through the delay line: a delay, a jitter, or both. */
export function delayed(d: DirectionSpec): boolean {
  return d.delay > 0 || d.jitter > 0
}

/**
 * The round trip the tbf queues are sized for, in ms: both delays plus both
 * jitters (a busy FIFO line's delays bunch toward delay + jitter; see
 * native/lab/jitter.h). Rate changes (vary.ts) size theirs the same way.
 */
export function linkRttMs(spec: LinkSpec): number {
  return spec.aToB.delay + spec.aToB.jitter + spec.bToA.delay + spec.bToA.jitter
}

/** True when the link needs a router namespace (any rate, delay, jitter, loss or NAT). */
export function needsRouter(spec: LinkSpec): boolean {
  return spec.nat !== 'none' || emulated(spec.aToB) || emulated(spec.bToA)
}

function addrLines(dev: string, a: IfAddr): string[] {
  return [`addr add ${a.ipv4}/${a.prefix4} dev ${dev}`, `addr add ${a.ipv6}/${a.prefix6} dev ${dev} nodad`, `link set ${dev} up`]
}

function subnet4(a: IfAddr): string {
  // The /25 containing the address (routed links only).
  const parts = a.ipv4.split('.').map(Number)
  const last = (parts[3] ?? 0) & 0x80
  return `${parts[0]}.${parts[1]}.${parts[2]}.${last}/25`
}

function subnet6(a: IfAddr): string {
  return a.ipv6.replace(/::[0-9a-f]+$/, '::/64')
}

export interface BuiltLink {
  readonly handle: LinkHandle
  /** The delay line process, when the link has a delay. */
  readonly delayLine: DelayLine | null
}

export interface BuildLinkInit {
  readonly runId: string
  readonly index: number
  readonly spec: LinkSpec
  readonly nsA: string
  readonly nsB: string
  /** Keep the delay line running after the lab command exits (`lab up`). */
  readonly detached: boolean
  /** Where the delay line writes its exit counters (detached runs). */
  readonly logFd?: number
  /** The lab's seed for jitter draws; null = from the run id (see `delayLineSeed`). */
  readonly seed?: number | null
}

/** Creates the link's veths, router, qdiscs, tables and delay line. Partial state is left for the caller's teardown. */
export async function buildLink(init: BuildLinkInit): Promise<BuiltLink> {
  const { runId, index, spec, nsA, nsB } = init
  const ifA = linkIfname(runId, index, 'a')
  const ifB = linkIfname(runId, index, 'b')
  const routed = needsRouter(spec)
  const ad = linkAddressing(index, routed)

  if (!routed) {
    await run('ip', ['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB])
    await ipBatch(nsA, addrLines(ifA, ad.a))
    await ipBatch(nsB, addrLines(ifB, ad.b))
    return { handle: { index, spec, router: null, ifA, ifB, addrA: ad.a, addrB: ad.b }, delayLine: null }
  }

  const ra = ad.ra!
  const rb = ad.rb!
  const nsR = routerNetns(runId, index)
  const ifRA = linkIfname(runId, index, 'ra')
  const ifRB = linkIfname(runId, index, 'rb')
  await createNetns(nsR)
  await run('ip', ['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifRA, 'netns', nsR])
  await run('ip', ['-n', nsB, 'link', 'add', ifB, 'type', 'veth', 'peer', 'name', ifRB, 'netns', nsR])
  await ipBatch(nsR, [...addrLines(ifRA, ra), ...addrLines(ifRB, rb)])
  await ipBatch(nsA, [...addrLines(ifA, ad.a), `route add ${subnet4(rb)} via ${ra.ipv4}`, `route add ${subnet6(rb)} via ${ra.ipv6}`])
  const bLines = addrLines(ifB, ad.b)
  if (spec.nat === 'none') bLines.push(`route add ${subnet4(ra)} via ${rb.ipv4}`, `route add ${subnet6(ra)} via ${rb.ipv6}`)
  await ipBatch(nsB, bLines)

  // Per-packet loss needs per-packet skbs: stop the senders from building GSO super-packets.
  if (spec.aToB.loss > 0) await run('ip', ['-n', nsA, 'link', 'set', ifA, 'gso_max_segs', '1'])
  if (spec.bToA.loss > 0) await run('ip', ['-n', nsB, 'link', 'set', ifB, 'gso_max_segs', '1'])

  const rtt = linkRttMs(spec)
  // tbf sits on the egress side: a→b leaves through the veth facing b.
  if (spec.aToB.rate !== null) await run('tc', ['-n', nsR, ...tbfArgs(ifRB, tbfParams(spec.aToB.rate, rtt, spec.queue))])
  if (spec.bToA.rate !== null) await run('tc', ['-n', nsR, ...tbfArgs(ifRA, tbfParams(spec.bToA.rate, rtt, spec.queue))])

  const dirs: DelayedDirection[] = []
  const da = spec.aToB
  const db = spec.bToA
  if (delayed(da)) dirs.push({ from: ifRA, tun: linkIfname(runId, index, 'da'), delayMs: da.delay, jitterMs: da.jitter, table: DELAY_TABLE_FROM_A })
  if (delayed(db)) dirs.push({ from: ifRB, tun: linkIfname(runId, index, 'db'), delayMs: db.delay, jitterMs: db.jitter, table: DELAY_TABLE_FROM_B })

  const tables = [
    lossTable(`qel-${runId}-loss${index}`, ifRA, ifRB, spec.aToB, spec.bToA),
    natTable(`qel-${runId}-nat${index}`, spec.nat, {
      inside: ifRA,
      outside: ifRB,
      delayFromInside: dirs.find((d) => d.from === ifRA)?.tun ?? null,
      delayFromOutside: dirs.find((d) => d.from === ifRB)?.tun ?? null,
    }),
  ].filter((t): t is string => t !== null)
  if (tables.length > 0) await run('ip', ['netns', 'exec', nsR, 'nft', '-f', '-'], { input: tables.join('\n') })

  let delayLine: DelayLine | null = null
  if (dirs.length > 0) {
    const seed = delayLineSeed(init.seed ?? null, runId, index)
    delayLine = new DelayLine({ netns: nsR, runId, dirs, seed, detached: init.detached, ...(init.logFd !== undefined ? { logFd: init.logFd } : {}) })
    await delayLine.start()
    const routes = delayRoutes(dirs)
    await ipBatch(nsR, routes.ipv4)
    await ipBatch(nsR, routes.ipv6, '-6')
  }
  return { handle: { index, spec, router: nsR, ifA, ifB, addrA: ad.a, addrB: ad.b }, delayLine }
}

/** Name of the nftables table that blackholes a cut routed link. */
export function cutTableName(runId: string, index: number): string {
  return `qel-${runId}-cut${index}`
}

/**
 * Cuts a link (nothing passes either way) or restores it. A routed link is
 * cut silently, like a modem that lost its line: the router drops every
 * packet while the nodes' interfaces stay up. A plain veth link has no
 * router, so its two ends are taken down instead.
 */
export async function setLinkCut(h: LinkHandle, nsA: string, nsB: string, cut: boolean, runId: string): Promise<void> {
  if (h.router) {
    const table = cutTableName(runId, h.index)
    const text = cut
      ? `table inet ${table} {\n  chain forward { type filter hook forward priority -20; policy drop; }\n  chain input { type filter hook input priority -20; policy drop; }\n}\n`
      : `delete table inet ${table}\n`
    await run('ip', ['netns', 'exec', h.router, 'nft', '-f', '-'], { input: text })
    return
  }
  const state = cut ? 'down' : 'up'
  await ipBatch(nsA, [`link set ${h.ifA} ${state}`])
  await ipBatch(nsB, [`link set ${h.ifB} ${state}`])
}
