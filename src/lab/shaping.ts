/**
 * Rate limits and random loss on a link's router.
 *
 * Rate: a `tbf` on each of the router's egress veths, so both directions are
 * limited independently. A link's rate is an IP-level rate, like a speed
 * test's: the veth's 14-byte Ethernet header is a lab artefact, so the tbf
 * rate is raised by 1514/1500 to leave full-size IP packets the whole rate. The burst is about 2 ms at the rate (at least 16 KiB
 * so full-size frames and small GSO packets pass; tbf segments bigger GSO
 * packets itself); the queue holds `queue` ms at the rate (default: the
 * link's round-trip delay, at least 25 ms), enough buffer for one TCP flow to
 * keep the link busy (≥95% of the rate).
 *
 * Loss: an nftables table in the router drops `numgen random` shares of the
 * packets per direction, keyed on the interface they came in on (so a packet
 * that passes the delay line twice is judged once).
 */
import type { DirectionSpec } from './types.js'

/** tbf counts the 14-byte Ethernet header; a link's rate counts IP bytes (see above). */
export const L2_OVERHEAD_FACTOR = 1514 / 1500

export interface TbfParams {
  /** The rate tbf enforces on Ethernet frames, bits/s. */
  readonly rateBps: number
  readonly burstBytes: number
  readonly limitBytes: number
}

const MIN_BURST = 16 * 1024
const MAX_BURST = 512 * 1024
const MIN_QUEUE_MS = 25

/** tbf parameters for a direction limited to `rateBps` (IP level); `rttMs` is the link's round-trip delay, `queueMs` an explicit queue, `burst` a bucket size to keep (else 2 ms of the rate). */
export function tbfParams(rateBps: number, rttMs: number, queueMs: number | null, burst?: number): TbfParams {
  const bytesPerMs = rateBps / 8 / 1000
  const burstBytes = burst ?? Math.round(Math.min(MAX_BURST, Math.max(MIN_BURST, bytesPerMs * 2)))
  const queue = queueMs ?? Math.max(MIN_QUEUE_MS, rttMs)
  const limitBytes = Math.round(Math.max(bytesPerMs * queue, 4 * 1514) + burstBytes)
  return { rateBps: Math.round(rateBps * L2_OVERHEAD_FACTOR), burstBytes, limitBytes }
}

/**
 * The `tc` arguments that install `p` as the root qdisc of `dev` ('replace'),
 * or move an installed tbf to `p` ('change': the queued packets stay).
 */
export function tbfArgs(dev: string, p: TbfParams, verb: 'replace' | 'change' = 'replace'): string[] {
  return ['qdisc', verb, 'dev', dev, 'root', 'tbf', 'rate', `${p.rateBps}bit`, 'burst', `${p.burstBytes}`, 'limit', `${p.limitBytes}`]
}

/** numgen range for loss rules: the share is resolved to one in a million. */
export const LOSS_SCALE = 1_000_000

/**
 * The nftables table (in a router namespace) that drops packets at random:
 * packets entering on `fromA` are the a→b direction, on `fromB` b→a.
 * Returns null when neither direction is lossy.
 */
export function lossTable(table: string, fromA: string, fromB: string, aToB: DirectionSpec, bToA: DirectionSpec): string | null {
  const rules: string[] = []
  for (const [iif, dir] of [[fromA, aToB], [fromB, bToA]] as const) {
    const n = Math.round(dir.loss * LOSS_SCALE)
    if (n > 0) rules.push(`    iifname "${iif}" numgen random mod ${LOSS_SCALE} < ${n} counter drop`)
  }
  if (rules.length === 0) return null
  return [
    `table inet ${table} {`,
    `  chain forward {`,
    `    type filter hook forward priority -10; policy accept;`,
    ...rules,
    `  }`,
    `}`,
    '',
  ].join('\n')
}
