/**
 * What `quicether lab bond` is asked to build and do, parsed from the
 * command line (pure; every mistake is a LabSpecError naming the flag):
 *
 *   --uplink [NAME=]RATE[,DELAY[,LOSS]]   one per uplink, in order (uplink 1 first)
 *       RATE   50mbit, or up/down: 50/10mbit or 50mbit/10mbit (up = client → gateway)
 *       DELAY  one-way, 10ms (or up/down: 10/20ms); default none
 *       LOSS   1% (or up/down: 1/0%); default none
 *   --cut N@T                              cut uplink N (from 1) T seconds into the transfer
 *   --mode aggregate|failover|redundant|weighted
 *   --jitter N@MS                          uplink N's delay gains a random extra in [0, MS] per
 *                                          packet, without reordering (or up/down: 2@10/5ms)
 *   --vary N[,N…]                          uplink N's rate moves every 2-5 s to 0.5-1.5× its rate,
 *                                          each direction on its own (vary.ts)
 *   --seed S                               the seed of the jitter and the variation
 *
 * The topology: a `client` node with one link per uplink to a `gateway`
 * node. Every link is rate-limited, so every link is routed: its own router
 * namespace, its own /25 on each side, and so its own path. Like a real
 * multi-homed host, each uplink also has a default route (`uplinkRoutes`):
 * a socket bound to an uplink reaches every gateway address through that
 * uplink's own link, so a daemon may dial one gateway address from every
 * uplink (the way it reaches a gateway's single public address in real life).
 */
import { LabSpecError } from './errors.js'
import { linkAddressing } from './link.js'
import { parseDelay, parseLoss, parseRate } from './units.js'
import type { DirectionSpec, LinkSpec, TopologySpec } from './types.js'

export const BOND_MODES = ['aggregate', 'failover', 'redundant', 'weighted'] as const
export type BondMode = (typeof BOND_MODES)[number]

/** Uplinks a bonding lab takes (a link each; the lab's address plan allows far more). */
export const MAX_UPLINKS = 16

export const CLIENT = 'client'
export const GATEWAY = 'gateway'

export interface UplinkSpec {
  /** A label for output: the NAME= of the flag, else `uplink<n>`. */
  readonly name: string
  /** client → gateway. */
  readonly up: DirectionSpec
  /** gateway → client. */
  readonly down: DirectionSpec
}

export interface CutSpec {
  /** 0-based index of the uplink to cut (the flag counts from 1). */
  readonly index: number
  /** Seconds after the measured transfer starts. */
  readonly atS: number
}

const NAME = /^[a-z][a-z0-9-]{0,15}$/

/** Splits "a/b" into its two halves; a bare number in the first half borrows the second half's unit ("50/10mbit"). */
function halves(text: string): [string, string] {
  const parts = text.split('/')
  if (parts.length === 1) return [text, text]
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') throw new Error('split')
  let [a, b] = parts as [string, string]
  a = a.trim()
  b = b.trim()
  const unit = /^[0-9.]+\s*(.*)$/.exec(b)?.[1] ?? ''
  if (/^[0-9.]+$/.test(a) && unit !== '') a += unit
  return [a, b]
}

function perDirection<T>(text: string, parse: (s: string) => T, what: string): [T, T] {
  let h: [string, string]
  try {
    h = halves(text)
  } catch {
    throw new LabSpecError(`${what}: '${text}' is not a value or an up/down pair like 50/10mbit`)
  }
  return [parse(h[0]), parse(h[1])]
}

/** Parses one `--uplink` value; `index` is 0-based (the default name counts from 1). */
export function parseUplink(text: string, index: number): UplinkSpec {
  const what = `--uplink ${index + 1} ('${text}')`
  let body = text.trim()
  let name = `uplink${index + 1}`
  const eq = body.indexOf('=')
  if (eq >= 0) {
    name = body.slice(0, eq).trim()
    body = body.slice(eq + 1).trim()
    if (!NAME.test(name)) throw new LabSpecError(`${what}: name '${name}' is not valid: lowercase letters, digits and dashes, starting with a letter, at most 16 characters`)
  }
  const fields = body.split(',').map((f) => f.trim())
  if (fields.length > 3 || fields[0] === undefined || fields[0] === '') {
    throw new LabSpecError(`${what}: write RATE[,DELAY[,LOSS]], e.g. 50mbit,10ms,1% or 50/10mbit,20ms`)
  }
  const [rateText, delayText = '', lossText = ''] = fields as [string, string?, string?]
  const [rateUp, rateDown] = perDirection(rateText, (s) => parseRate(s, `${what} rate`), `${what} rate`)
  const [delayUp, delayDown] = delayText === '' ? [0, 0] : perDirection(delayText, (s) => parseDelay(s, `${what} delay`), `${what} delay`)
  const [lossUp, lossDown] = lossText === '' ? [0, 0] : perDirection(lossText, (s) => parseLoss(s, `${what} loss`), `${what} loss`)
  for (const r of [rateUp, rateDown]) if (r < 8000) throw new LabSpecError(`${what}: rate must be at least 8kbit`)
  return { name, up: { rate: rateUp, delay: delayUp, jitter: 0, loss: lossUp }, down: { rate: rateDown, delay: delayDown, jitter: 0, loss: lossDown } }
}

/** Parses every `--uplink` value and checks the set (count, unique names). */
export function parseUplinks(texts: readonly string[]): UplinkSpec[] {
  if (texts.length === 0) throw new LabSpecError('--uplink: give one --uplink per uplink, e.g. --uplink 50mbit,10ms --uplink 100mbit,30ms')
  if (texts.length > MAX_UPLINKS) throw new LabSpecError(`--uplink: at most ${MAX_UPLINKS} uplinks, got ${texts.length}`)
  const out = texts.map((t, i) => parseUplink(t, i))
  const seen = new Set<string>()
  for (const u of out) {
    if (seen.has(u.name)) throw new LabSpecError(`--uplink: the name '${u.name}' is used twice`)
    seen.add(u.name)
  }
  return out
}

/** Parses `--cut N@T` ("2@5", "2@4.5s") against the uplink count and the transfer length. */
export function parseCut(text: string, uplinks: number, seconds: number): CutSpec {
  const m = /^\s*([0-9]+)\s*@\s*([0-9]+(?:\.[0-9]+)?)\s*s?\s*$/.exec(text)
  if (!m) throw new LabSpecError(`--cut: '${text}' is not N@T (cut uplink N, counting from 1, T seconds into the transfer), e.g. 2@5`)
  const n = Number(m[1])
  const at = Number(m[2])
  if (n < 1 || n > uplinks) throw new LabSpecError(`--cut: uplink ${n} does not exist (there ${uplinks === 1 ? 'is 1 uplink' : `are ${uplinks} uplinks`})`)
  if (!(at > 0 && at < seconds)) throw new LabSpecError(`--cut: T must be after the start and before the end of the ${seconds} s transfer, got ${at}`)
  return { index: n - 1, atS: at }
}

/** Jitter for one uplink, from `--jitter N@MS`. */
export interface JitterSpec {
  /** 0-based index of the uplink (the flag counts from 1). */
  readonly index: number
  /** ms, client → gateway. */
  readonly up: number
  /** ms, gateway → client. */
  readonly down: number
}

/** The uplink number of a flag value ("2" → index 1), checked against the count. */
function uplinkNumber(text: string, uplinks: number, flag: string): number {
  if (!/^[0-9]+$/.test(text)) throw new LabSpecError(`${flag}: '${text}' is not an uplink number (counting from 1)`)
  const n = Number(text)
  if (n < 1 || n > uplinks) throw new LabSpecError(`${flag}: uplink ${n} does not exist (there ${uplinks === 1 ? 'is 1 uplink' : `are ${uplinks} uplinks`})`)
  return n - 1
}

/** Parses `--jitter N@MS` ("2@10", "2@10ms", "2@10/5ms" for up/down; a bare number is ms). */
export function parseJitter(text: string, uplinks: number): JitterSpec {
  const m = /^\s*([0-9]+)\s*@\s*(\S+)\s*$/.exec(text)
  if (!m) throw new LabSpecError(`--jitter: '${text}' is not N@MS (uplink N, counting from 1, gets an extra delay wandering up to MS ms), e.g. 2@10 or 2@10/5ms`)
  const index = uplinkNumber(m[1]!, uplinks, '--jitter')
  const what = `--jitter ${m[1]}`
  const [up, down] = perDirection(m[2]!, (s) => parseDelay(/^[0-9.]+$/.test(s) ? `${s}ms` : s, what), what)
  return { index, up, down }
}

/** Parses every `--jitter`; an uplink may be named once. */
export function parseJitters(texts: readonly string[], uplinks: number): JitterSpec[] {
  const out = texts.map((t) => parseJitter(t, uplinks))
  const seen = new Set<number>()
  for (const j of out) {
    if (seen.has(j.index)) throw new LabSpecError(`--jitter: uplink ${j.index + 1} is given twice`)
    seen.add(j.index)
  }
  return out
}

/** The uplinks with their jitter put into their directions (the others unchanged). */
export function withJitter(uplinks: readonly UplinkSpec[], jitters: readonly JitterSpec[]): UplinkSpec[] {
  return uplinks.map((u, i) => {
    const j = jitters.find((x) => x.index === i)
    return j ? { ...u, up: { ...u.up, jitter: j.up }, down: { ...u.down, jitter: j.down } } : u
  })
}

/** Parses every `--vary` ("2", "1,3"): the 0-based indices of the uplinks whose rate varies, in order. */
export function parseVary(texts: readonly string[], uplinks: number): number[] {
  const out: number[] = []
  for (const part of texts.flatMap((t) => t.split(','))) {
    const i = uplinkNumber(part.trim(), uplinks, '--vary')
    if (out.includes(i)) throw new LabSpecError(`--vary: uplink ${i + 1} is given twice`)
    out.push(i)
  }
  return out.sort((a, b) => a - b)
}

/** Largest seed: the generators (random.ts, the delay line) take 32 bits. */
export const MAX_SEED = 2 ** 32 - 1

/** Parses `--seed S`: a whole number in [0, 2^32). */
export function parseSeed(text: string): number {
  const n = Number(text.trim())
  if (!/^[0-9]+$/.test(text.trim()) || !Number.isSafeInteger(n) || n > MAX_SEED) throw new LabSpecError(`--seed: '${text}' is not a whole number between 0 and ${MAX_SEED}`)
  return n
}

/**
 * What `--vary` and `--seed` add to runBond's options (bond.ts starts a
 * RateVariation over each measured transfer and seeds the Lab's jitter with
 * `seed`). Optional, so the options without them mean what they always did.
 */
export interface BondEffects {
  /** 0-based uplinks whose rate varies, both directions. */
  readonly vary?: readonly number[]
  /** Seed of the rate variation and the jitter (printed and in the JSON, so a run replays). */
  readonly seed?: number
}

export function parseMode(text: string): BondMode {
  const m = BOND_MODES.find((x) => x === text.trim())
  if (!m) throw new LabSpecError(`--mode: '${text}' is not one of ${BOND_MODES.join(', ')}`)
  return m
}

/**
 * `--tcp-buffer`: the most a TCP socket may buffer (the max of tcp_wmem and tcp_rmem) in the lab's client and
 * gateway, in bytes: 32M, 8MiB, 1048576. Binary units; 1 MiB to 1 GiB.
 */
export function parseTcpBuffer(text: string): number {
  const m = /^(\d+)\s*(k|m|g)?(?:i?b)?$/i.exec(text.trim())
  if (!m) throw new LabSpecError(`--tcp-buffer: '${text}' is not a size like 32M, 8MiB or 1048576`)
  const power = { '': 0, k: 1, m: 2, g: 3 }[(m[2] ?? '').toLowerCase() as '' | 'k' | 'm' | 'g']
  const n = Number(m[1]) * 1024 ** power
  if (!(n >= 1024 ** 2 && n <= 1024 ** 3)) throw new LabSpecError(`--tcp-buffer: give between 1M and 1G (got ${text})`)
  return n
}

/** A TCP congestion control name for iperf3 -C (cubic, reno, bbr). */
export function parseCongestion(text: string): string {
  if (!/^[a-z][a-z0-9_]{0,15}$/.test(text.trim())) throw new LabSpecError(`--congestion: '${text}' is not a congestion control name like cubic, reno or bbr`)
  return text.trim()
}

/** The bonding lab: client and gateway, one link per uplink (a = client, b = gateway). */
export function bondTopology(uplinks: readonly UplinkSpec[]): TopologySpec {
  const links: LinkSpec[] = uplinks.map((u) => ({ name: u.name, a: CLIENT, b: GATEWAY, aToB: u.up, bToA: u.down, queue: null, nat: 'none' }))
  return {
    nodes: [
      { name: CLIENT, daemon: true, config: null },
      { name: GATEWAY, daemon: true, config: null },
    ],
    links,
  }
}

/** Sum of the uplinks' client → gateway rates, bits/s. */
export function rateSum(uplinks: readonly UplinkSpec[]): number {
  return uplinks.reduce((s, u) => s + (u.up.rate ?? 0), 0)
}

/** The 0-based index of the fastest uplink (client → gateway), first of equals. */
export function biggestUplink(uplinks: readonly UplinkSpec[]): number {
  let best = 0
  uplinks.forEach((u, i) => {
    if ((u.up.rate ?? 0) > (uplinks[best]?.up.rate ?? 0)) best = i
  })
  return best
}

/** "50/10 Mbit/s, 15 ms, 1% loss" (with jitter: "40±10 ms") for tables. */
export function describeUplink(u: UplinkSpec): string {
  const mbit = (r: number | null): string => (r === null ? '∞' : String(Math.round((r / 1e6) * 100) / 100))
  const rate = u.up.rate === u.down.rate ? `${mbit(u.up.rate)} Mbit/s` : `${mbit(u.up.rate)}/${mbit(u.down.rate)} Mbit/s`
  const parts = [rate]
  const delay = (d: DirectionSpec): string => (d.jitter ? `${d.delay}±${d.jitter}` : `${d.delay}`)
  if (u.up.delay || u.down.delay || u.up.jitter || u.down.jitter) {
    parts.push(delay(u.up) === delay(u.down) ? `${delay(u.up)} ms` : `${delay(u.up)}/${delay(u.down)} ms`)
  }
  if (u.up.loss || u.down.loss) {
    const pct = (x: number): string => String(Math.round(x * 100 * 1000) / 1000)
    parts.push(u.up.loss === u.down.loss ? `${pct(u.up.loss)}% loss` : `${pct(u.up.loss)}/${pct(u.down.loss)}% loss`)
  }
  return parts.join(', ')
}

/** Metric of uplink i's default route: uplink 1 is the one unbound traffic takes. */
export const UPLINK_ROUTE_METRIC = 100

/**
 * The routes that make every gateway address reachable through every uplink
 * (`ip -batch` lines, IPv4 and IPv6): in the client, a default route per
 * uplink via its link's router (metric 100 + i, so unbound traffic still
 * takes uplink 1 and the links' own /25 routes still win); in each router, a
 * default route to the gateway's end of its link. Traffic to any other
 * address dies at the gateway, which has no default route.
 */
export function uplinkRoutes(count: number): { client: { ipv4: string[]; ipv6: string[] }; routers: { ipv4: string[]; ipv6: string[] }[] } {
  const client = { ipv4: [] as string[], ipv6: [] as string[] }
  const routers: { ipv4: string[]; ipv6: string[] }[] = []
  for (let i = 0; i < count; i++) {
    const ad = linkAddressing(i, true)
    client.ipv4.push(`route add default via ${ad.ra!.ipv4} metric ${UPLINK_ROUTE_METRIC + i}`)
    client.ipv6.push(`route add default via ${ad.ra!.ipv6} metric ${UPLINK_ROUTE_METRIC + i}`)
    routers.push({ ipv4: [`route add default via ${ad.b.ipv4}`], ipv6: [`route add default via ${ad.b.ipv6}`] })
  }
  return { client, routers }
}
