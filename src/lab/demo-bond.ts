/**
 * The demo's bonding scene: a rural desk with four uplinks (DSL, cable,
 * LTE, Starlink-like), bonded toward a cloud gateway; a 10 s transfer with
 * the biggest uplink cut half-way. It shows each path's share, the total
 * against the sum of the links, and how the transfer rode out the cut. When
 * this build's daemon does not bond, it says so plainly.
 */
import { BondLab } from './bond.js'
import { bondResult } from './bond-figures.js'
import { biggestUplink, type UplinkSpec } from './bond-spec.js'
import { formatRate } from './units.js'

/** The rural user of the product brief: rates down (gateway → desk), one-way delays. */
const RURAL: readonly { name: string; mbit: number; delayMs: number }[] = [
  { name: 'dsl', mbit: 25, delayMs: 15 },
  { name: 'cable', mbit: 50, delayMs: 10 },
  { name: 'lte', mbit: 50, delayMs: 35 },
  { name: 'starlink', mbit: 100, delayMs: 40 },
]

export const BOND_SCENE_SECONDS = 10

export function ruralUplinks(): UplinkSpec[] {
  return RURAL.map((u) => {
    const dir = { rate: u.mbit * 1e6, delay: u.delayMs, jitter: 0, loss: 0 }
    return { name: u.name, up: dir, down: dir }
  })
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
  const cutIndex = biggestUplink(uplinks)
  const cut = { index: cutIndex, atS: BOND_SCENE_SECONDS / 2 }
  out(`Bonding: a rural desk with ${uplinks.map((u) => `${u.name} ${formatRate(u.down.rate ?? 0)}`).join(', ')},`)
  out(`bonded toward a cloud gateway; ${uplinks[cutIndex]!.name} is cut ${cut.atS} s into a ${BOND_SCENE_SECONDS} s transfer.`)
  const bl = new BondLab({ uplinks, congestion: 'cubic', ...(signal ? { signal } : {}), progress: (l) => out(`      ${l}`) })
  try {
    await bl.start()
    const run = await bl.bonded({ mode: 'aggregate', streams: 4, seconds: BOND_SCENE_SECONDS, cut, interactive: false })
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
    for (const p of r.paths) out(`  ${p.name.padEnd(10)} ${String(p.rate_mbit).padStart(4)} Mbit/s link   carried ${p.mbit === null ? '   -' : p.mbit.toFixed(1).padStart(6)} Mbit/s`)
    out(`  bonded total   ${r.total_mbit?.toFixed(1) ?? '-'} Mbit/s of ${r.sum_mbit} Mbit/s of links (${r.rate_efficiency === null ? '-' : Math.round(r.rate_efficiency * 100)}%, the cut included)`)
    out(`  after the cut  ${r.dip_ms === null ? 'no dip measured' : `throughput under half the surviving capacity for ${r.dip_ms} ms`}; ${r.resets} connection resets`)
    return { bonded: true, total_mbit: r.total_mbit, sum_mbit: r.sum_mbit, rate_efficiency: r.rate_efficiency, dip_ms: r.dip_ms, resets: r.resets }
  } finally {
    await bl.stop()
  }
}


