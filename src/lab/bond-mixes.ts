/**
 * Uplink mixes drawn from a seed for bench/multipath --random (pure): the
 * bonding is judged on whatever a user's street offers, not on three fixed
 * scenarios. The same seed draws the same mixes, so a failing one can be
 * replayed (`--seed S`, and `--mix K` for one of them).
 *
 * Each mix has 2-5 uplinks. Each uplink's download rate is drawn
 * log-uniformly in 5-300 Mbit/s and its upload at 10-100% of it (at least
 * 5): asymmetric, like DSL, cable, LTE and satellite. One-way delay is drawn
 * log-uniformly in 2-150 ms (most links are short, some are satellite-long);
 * half the uplinks are loss-free, the others lose 0-3% each way. About a
 * third vary their rate during a run (within ±50%, vary.ts), about a third
 * have jitter (up to half their delay, at most 30 ms). Every other mix cuts
 * one uplink at a random time in the middle half of the transfer.
 *
 * The lab emulates every link on this machine (a delay line costs ~40% of
 * a core at 150 Mbit/s), so a mix whose rates sum past `budgetMbit` in a
 * direction is scaled down to it (every rate by the same factor, none under
 * 5 Mbit/s): the shape of the mix is kept, and the raw-link check says
 * whether the emulation still kept up.
 */
import { seededRandom } from './random.js'

export interface MixUplink {
  readonly name: string
  readonly upMbit: number
  readonly downMbit: number
  /** One-way, ms, the same both ways. */
  readonly delayMs: number
  /** Per direction, 0..0.03. */
  readonly lossUp: number
  readonly lossDown: number
  /** Rate varies during the run (both directions, independently). */
  readonly vary: boolean
  /** Extra one-way delay up to this, ms; 0: none. */
  readonly jitterMs: number
}

export interface Mix {
  /** 1-based, in the order drawn. */
  readonly index: number
  readonly uplinks: readonly MixUplink[]
  /** Cut uplink `index` (0-based) at `atFrac` of the transfer; null: no cut. */
  readonly cut: { readonly index: number; readonly atFrac: number } | null
  /** The factor the rates were scaled by to fit the budget (1: none). */
  readonly scaled: number
}

export const MIX_LIMITS = { minUplinks: 2, maxUplinks: 5, minMbit: 5, maxMbit: 300, minDelayMs: 2, maxDelayMs: 150, maxLoss: 0.03, varyShare: 1 / 3, jitterShare: 1 / 3, maxJitterMs: 30 } as const

const NAMES = ['dsl', 'cable', 'fiber', 'lte', 'sat', 'wifi', 'nr', 'wisp'] as const

function logUniform(r: () => number, lo: number, hi: number): number {
  return Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo)))
}

const round1 = (x: number): number => Math.round(x * 10) / 10

/** `count` mixes from `seed`; rates are scaled to at most `budgetMbit` per direction. */
export function drawMixes(seed: number, count: number, budgetMbit: number): Mix[] {
  const r = seededRandom(seed)
  const L = MIX_LIMITS
  const out: Mix[] = []
  for (let m = 0; m < count; m++) {
    const n = L.minUplinks + Math.floor(r() * (L.maxUplinks - L.minUplinks + 1))
    let ups: MixUplink[] = []
    for (let i = 0; i < n; i++) {
      const down = logUniform(r, L.minMbit, L.maxMbit)
      const up = Math.max(L.minMbit, down * (0.1 + 0.9 * r()))
      const delayMs = logUniform(r, L.minDelayMs, L.maxDelayMs)
      const lossy = r() < 0.5
      const lossUp = lossy ? r() * L.maxLoss : 0
      const lossDown = lossy ? r() * L.maxLoss : 0
      const vary = r() < L.varyShare
      const jitter = r() < L.jitterShare ? Math.min(L.maxJitterMs, (delayMs / 2) * r()) : 0
      const name = `${NAMES[Math.floor(r() * NAMES.length)]}${i + 1}`
      ups.push({ name, upMbit: up, downMbit: down, delayMs, lossUp, lossDown, vary, jitterMs: jitter })
    }
    const sumUp = ups.reduce((s, u) => s + u.upMbit, 0)
    const sumDown = ups.reduce((s, u) => s + u.downMbit, 0)
    const scaled = Math.min(1, budgetMbit / Math.max(sumUp, sumDown))
    ups = ups.map((u) => ({
      ...u,
      upMbit: round1(Math.max(L.minMbit, u.upMbit * scaled)),
      downMbit: round1(Math.max(L.minMbit, u.downMbit * scaled)),
      delayMs: round1(u.delayMs),
      lossUp: Math.round(u.lossUp * 10_000) / 10_000,
      lossDown: Math.round(u.lossDown * 10_000) / 10_000,
      jitterMs: round1(u.jitterMs),
    }))
    const cutIndex = Math.floor(r() * n)
    const cutFrac = 0.35 + 0.3 * r()
    out.push({ index: m + 1, uplinks: ups, cut: m % 2 === 1 ? { index: cutIndex, atFrac: Math.round(cutFrac * 100) / 100 } : null, scaled: Math.round(scaled * 1000) / 1000 })
  }
  return out
}

/** The mix's uplinks as `lab bond --uplink` values (jitter and variation are given separately). */
export function mixUplinkFlags(mix: Mix): string[] {
  return mix.uplinks.map((u) => {
    const loss = u.lossUp || u.lossDown ? `,${round3(u.lossUp * 100)}/${round3(u.lossDown * 100)}%` : ''
    return `${u.name}=${u.upMbit}/${u.downMbit}mbit,${u.delayMs}ms${loss}`
  })
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000

/** Whether no uplink of the mix loses more than `max` in `dir` (rate efficiency is judged only then). */
export function lossAtMost(mix: Mix, dir: 'up' | 'down', max: number): boolean {
  return mix.uplinks.every((u) => (dir === 'up' ? u.lossUp : u.lossDown) <= max)
}

/** A fresh seed from the clock (printed by the bench; never chosen because it passes). */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16)) >>> 0
}
