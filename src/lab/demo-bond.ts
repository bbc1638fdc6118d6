/**
 * The demo's bonding scene: a rural desk with four uplinks (DSL, cable,
 * LTE, Starlink-like) at the rural user's real rates, bonded toward a cloud
 * gateway; a 10 s download (gateway → desk, the user's acceptance scenario)
 * with Starlink, the biggest downlink, cut half-way. It shows each path's share, the total
 * against the sum of the links, and how the transfer rode out the cut. When
 * this build's daemon does not bond, it says so plainly.
 */
import { BondLab } from './bond.js'
import { bondResult } from './bond-figures.js'
import type { UplinkSpec } from './bond-spec.js'
import { biggestUplinkOf } from './bond-direction.js'
import { formatRate } from './units.js'

/** The rural user of the product brief: rates up and down (Mbit/s), one-way delays, loss. */
const RURAL: readonly { name: string; up: number; down: number; delayMs: number; loss: number }[] = [
  { name: 'dsl', up: 5, down: 25, delayMs: 15, loss: 0 },
  { name: 'cable', up: 10, down: 50, delayMs: 10, loss: 0 },
  { name: 'lte', up: 20, down: 50, delayMs: 35, loss: 0.01 },
  { name: 'starlink', up: 20, down: 100, delayMs: 40, loss: 0 },
]

/** The same uplinks as `lab bond --uplink` values (bench/multipath's rural download scenario). */
export const RURAL_UPLINK_FLAGS: readonly string[] = RURAL.map((u) => `${u.name}=${u.up}/${u.down}mbit,${u.delayMs}ms${u.loss ? `,${u.loss * 100}%` : ''}`)

export const BOND_SCENE_SECONDS = 10

export function ruralUplinks(): UplinkSpec[] {
  return RURAL.map((u) => ({ name: u.name, up: { rate: u.up * 1e6, delay: u.delayMs, jitter: 0, loss: u.loss }, down: { rate: u.down * 1e6, delay: u.delayMs, jitter: 0, loss: u.loss } }))
}

export interface BondSceneResult {
  readonly bonded: boolean
  readonly total_mbit: number | null
  readonly sum_mbit: number
  readonly rate_efficiency: number | null
  readonly dip_ms: number | null
  readonly resets: number
}

export async function runBondScene(out: (line: string) => void, signal?: AbortSignal): Promise<BondSceneResult> {
  const uplinks = ruralUplinks()
  const cutIndex = biggestUplinkOf(uplinks, 'down')
  const cut = { index: cutIndex, atS: BOND_SCENE_SECONDS / 2 }
  out(`Bonding: a rural desk with ${uplinks.map((u) => `${u.name} ${formatRate(u.down.rate ?? 0)}`).join(", ")} down,`)
  out(`bonded toward a cloud gateway; ${uplinks[cutIndex]!.name} is cut ${cut.atS} s into a ${BOND_SCENE_SECONDS} s download.`)
  const bl = new BondLab({ uplinks, congestion: 'cubic', ...(signal ? { signal } : {}), progress: (l) => out(`      ${l}`) })
  try {
    await bl.start()
    const [run] = await bl.bonded({ mode: 'aggregate', streams: 4, seconds: BOND_SCENE_SECONDS, cut, interactive: false, direction: 'down' })
    if (!run) throw new Error('the bonded download did not run')
    const r = bondResult({
      run,
      uplinks,
      ifnames: bl.lab.links.map((l) => l.ifA),
      singles: uplinks.map(() => null),
      mode: 'aggregate',
      streams: 4,
      seconds: BOND_SCENE_SECONDS,
      congestion: 'cubic',
      cut,
      runId: bl.runId,
    })
    out('')
    if (!r.bonded) {
      out(`  this build did not bond the uplinks (${r.bond_detection}); the transfer used one path: ${r.total_mbit?.toFixed(1) ?? '-'} Mbit/s`)
      return { bonded: false, total_mbit: r.total_mbit, sum_mbit: r.sum_mbit, rate_efficiency: r.rate_efficiency, dip_ms: r.dip_ms, resets: r.resets }
    }
    for (const p of r.paths) out(`  ${p.name.padEnd(10)} ${String(p.rate_mbit).padStart(4)} Mbit/s down   carried ${p.mbit === null ? '   -' : p.mbit.toFixed(1).padStart(6)} Mbit/s`)
    out(`  bonded total   ${r.total_mbit?.toFixed(1) ?? '-'} Mbit/s of ${r.sum_mbit} Mbit/s of links (${r.rate_efficiency === null ? '-' : Math.round(r.rate_efficiency * 100)}%, the cut included)`)
    out(`  after the cut  ${r.dip_ms === null ? 'no dip measured' : `throughput under half the surviving capacity for ${r.dip_ms} ms`}; ${r.resets} connection resets`)
    return { bonded: true, total_mbit: r.total_mbit, sum_mbit: r.sum_mbit, rate_efficiency: r.rate_efficiency, dip_ms: r.dip_ms, resets: r.resets }
  } finally {
    await bl.stop()
  }
}


