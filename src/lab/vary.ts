/**
 * Rate variation on a lab's links (`lab bond --vary`): every 2-5 s, a varied
 * direction's tbf rate moves to its base rate × a factor in [0.5, 1.5], the
 * way a shared cell's or a satellite beam's capacity moves under a flow. Each
 * direction of each link draws its own schedule from the seed (up and down
 * vary independently, and a link's schedule does not depend on which other
 * links vary), so a run replays from its printed seed.
 *
 * Two halves: `drawSchedule` is pure (what changes when, from the seed), and
 * `RateVariation` applies a schedule in real time with `tc qdisc change` on
 * the router's egress veths, where link.ts installed the tbf (a→b, "up",
 * leaves through the veth facing b; b→a, "down", through the one facing a),
 * with the same tbfParams the link was built with, so only the rate (and the
 * queue that follows it) moves: the bucket keeps the size it was built with
 * (varyParams). `stop()` puts the base rates back.
 */
import { performance } from 'node:perf_hooks'
import { LabCommandError, LabSpecError } from './errors.js'
import { run } from './exec.js'
import { linkRttMs } from './link.js'
import { linkIfname } from './names.js'
import { deriveSeed, seededRandom } from './random.js'
import { tbfArgs, tbfParams, type TbfParams } from './shaping.js'
import type { LinkHandle } from './types.js'

/** up = a → b (client → gateway in the bonding lab), down = b → a. */
export type VaryDirection = 'up' | 'down'

/** From `atMs` (since the variation started) on, the direction runs at `rateBps` (IP level, like a link's rate). */
export interface RateStep {
  readonly atMs: number
  readonly rateBps: number
}

export interface VaryShape {
  /** Time between two changes, ms, drawn uniformly in [min, max]. */
  readonly intervalMs: readonly [number, number]
  /** Factor on the base rate, drawn uniformly in [min, max]. */
  readonly factor: readonly [number, number]
}

export const DEFAULT_VARY_SHAPE: VaryShape = Object.freeze({ intervalMs: [2000, 5000] as const, factor: [0.5, 1.5] as const })

/** One direction to vary: which, and the rate it was built with. */
export interface VaryBase {
  /** 0-based link index. */
  readonly link: number
  readonly dir: VaryDirection
  readonly baseBps: number
}

export interface DirectionSchedule extends VaryBase {
  /** The first step is at 0: a varied direction starts at a drawn rate. */
  readonly steps: readonly RateStep[]
}

function checkShape(s: VaryShape): void {
  const [i0, i1] = s.intervalMs
  const [f0, f1] = s.factor
  if (!(i0 > 0 && i1 >= i0)) throw new LabSpecError(`vary: the interval range [${i0}, ${i1}] ms is not a range of positive times`)
  if (!(f0 > 0 && f1 >= f0)) throw new LabSpecError(`vary: the factor range [${f0}, ${f1}] is not a range of positive factors`)
}

/**
 * One direction's steps over `durationMs`: a step at 0, then one every
 * interval drawn from `shape` while before `durationMs`; each step's rate is
 * `baseBps` × a drawn factor, in whole bits/s. Pure: the same arguments draw
 * the same steps.
 */
export function drawSteps(seed: number, durationMs: number, baseBps: number, shape: VaryShape = DEFAULT_VARY_SHAPE): RateStep[] {
  checkShape(shape)
  if (!(durationMs >= 0)) throw new LabSpecError(`vary: the duration must be ≥ 0 ms, not ${durationMs}`)
  const rnd = seededRandom(seed)
  const between = (r: readonly [number, number]): number => r[0] + rnd() * (r[1] - r[0])
  const steps: RateStep[] = []
  for (let at = 0; at < durationMs || steps.length === 0; at += Math.round(between(shape.intervalMs))) {
    steps.push({ atMs: at, rateBps: Math.round(baseBps * between(shape.factor)) })
  }
  return steps
}

/** Each direction's schedule; direction (link, dir) draws from `deriveSeed(seed, 'vary', link, dir)`. Pure. */
export function drawSchedule(seed: number, durationMs: number, bases: readonly VaryBase[], shape: VaryShape = DEFAULT_VARY_SHAPE): DirectionSchedule[] {
  return bases.map((b) => ({ ...b, steps: drawSteps(deriveSeed(seed, 'vary', b.link, b.dir), durationMs, b.baseBps, shape) }))
}

/**
 * The time-weighted mean rate over [fromMs, toMs] of a direction that ran
 * at `baseBps` before its first step and at each step's rate from its
 * `atMs` on (steps in time order). An empty window gives the rate at `fromMs`.
 */
export function meanRate(steps: readonly RateStep[], baseBps: number, fromMs: number, toMs: number): number {
  if (!(toMs >= fromMs)) throw new LabSpecError(`vary: the window [${fromMs}, ${toMs}] ms ends before it starts`)
  const rateAt = (t: number): number => steps.reduce((r, s) => (s.atMs <= t ? s.rateBps : r), baseBps)
  if (toMs === fromMs) return rateAt(fromMs)
  let sum = 0
  let t = fromMs
  let rate = rateAt(fromMs)
  for (const s of steps) {
    if (s.atMs <= fromMs) continue
    if (s.atMs >= toMs) break
    sum += rate * (s.atMs - t)
    t = s.atMs
    rate = s.rateBps
  }
  sum += rate * (toMs - t)
  return sum / (toMs - fromMs)
}

/** Where a varied direction's tbf lives and how it was sized (link.ts). */
export interface VaryTarget extends VaryBase {
  readonly netns: string
  readonly dev: string
  readonly rttMs: number
  readonly queueMs: number | null
}

/** The targets of links `indices` (0-based), both directions each; throws LabSpecError for a link without a router or a rate. */
export function varyTargets(lab: { readonly runId: string; readonly links: readonly LinkHandle[] }, indices: readonly number[]): VaryTarget[] {
  const out: VaryTarget[] = []
  for (const i of indices) {
    const h = lab.links[i]
    if (!h) throw new LabSpecError(`vary: link ${i + 1} does not exist (the lab has ${lab.links.length})`)
    if (!h.router) throw new LabSpecError(`vary: link ${i + 1} (${h.spec.name}) has no router, so no tbf to change`)
    const rttMs = linkRttMs(h.spec)
    for (const [dir, spec, end] of [['up', h.spec.aToB, 'rb'], ['down', h.spec.bToA, 'ra']] as const) {
      if (spec.rate === null) throw new LabSpecError(`vary: link ${i + 1} (${h.spec.name}) has no rate ${dir === 'up' ? 'a → b' : 'b → a'} to vary`)
      out.push({ link: i, dir, baseBps: spec.rate, netns: h.router, dev: linkIfname(lab.runId, i, end), rttMs, queueMs: h.spec.queue })
    }
  }
  return out
}

export interface RateVariationInit {
  /** The built lab (a `Lab`, or BondLab's `lab`): its run id names the router veths. */
  readonly lab: { readonly runId: string; readonly links: readonly LinkHandle[] }
  /** 0-based links whose rate varies, both directions. */
  readonly indices: readonly number[]
  readonly seed: number
  /** How long the schedule runs after start(), ms; the last drawn rate holds from then until stop(). */
  readonly durationMs: number
  /** Default DEFAULT_VARY_SHAPE (tests shorten the interval). */
  readonly shape?: VaryShape
  /** Aborting stops further changes (stop() still has to put the base rates back). */
  readonly signal?: AbortSignal
  /** Told about each failed change, since a timer's failure has no caller to throw to. */
  readonly progress?: (line: string) => void
}

/** One direction in the JSON: what was drawn and what was applied when. */
export interface VariedDirectionReport extends DirectionSchedule {
  readonly dev: string
  /** The rates as applied: atMs is when `tc` returned, since start(); the last is the restore. */
  readonly applied: readonly RateStep[]
}

export interface VaryReport {
  readonly seed: number
  readonly durationMs: number
  readonly shape: VaryShape
  readonly directions: readonly VariedDirectionReport[]
  /** Changes that failed (the direction kept its previous rate); empty when all went through. */
  readonly errors: readonly string[]
}

/**
 * The tbf a varied direction moves to: `rateBps`, with the bucket the link was
 * built with. tbf takes a GSO packet whole when it fits the bucket at enqueue;
 * a smaller bucket after a rate cut left such a packet at the head that could
 * never gather its tokens, and the link sent nothing until the next step
 * (seen: 77.5 MB sent, then 3 s frozen with 131 packets queued after 290 →
 * 161 Mbit/s, and the tunnel over it declared dead).
 */
export function varyParams(t: Pick<VaryTarget, 'baseBps' | 'rttMs' | 'queueMs'>, rateBps: number): TbfParams {
  return tbfParams(rateBps, t.rttMs, t.queueMs, tbfParams(t.baseBps, t.rttMs, t.queueMs).burstBytes)
}

/**
 * Applies the drawn schedule to a built lab in real time. Single use: one
 * per measured transfer (the same seed gives every transfer the same
 * schedule, so they are compared under the same rates):
 *
 *   const v = new RateVariation({ lab, indices: [1], seed, durationMs: seconds * 1000 })
 *   await v.start()
 *   try { …transfer… } finally { await v.stop() }
 *   v.meanRates(warmupMs, seconds * 1000)   // the links' rates over the measured window
 *
 * Constructing draws the schedule and touches nothing. `start()` applies the
 * steps at 0 and throws LabCommandError when one fails; later changes run on
 * one timer and their failures are recorded (report().errors), never thrown.
 * `stop()` never throws either: it ends the timer, waits for a change in
 * flight and puts every direction back to its base rate; calling it again, or
 * without start(), or after start() failed, is safe.
 */
export class RateVariation {
  readonly #init: RateVariationInit
  readonly #targets: readonly VaryTarget[]
  readonly #schedule: readonly DirectionSchedule[]
  readonly #shape: VaryShape
  readonly #applied: RateStep[][]
  readonly #errors: string[] = []
  readonly #abort = new AbortController()
  #t0: number | null = null
  #timer: NodeJS.Timeout | null = null
  #inflight: Promise<void> = Promise.resolve()
  #stopping: Promise<void> | null = null

  constructor(init: RateVariationInit) {
    this.#init = init
    this.#shape = init.shape ?? DEFAULT_VARY_SHAPE
    this.#targets = varyTargets(init.lab, init.indices)
    this.#schedule = drawSchedule(init.seed, init.durationMs, this.#targets.map(({ link, dir, baseBps }) => ({ link, dir, baseBps })), this.#shape)
    this.#applied = this.#targets.map(() => [])
    if (init.signal?.aborted) this.#abort.abort()
    else init.signal?.addEventListener('abort', () => this.#abort.abort(), { once: true, signal: this.#abort.signal })
  }

  /** The drawn schedule, per direction (pure data, the same before and after start()). */
  schedule(): readonly DirectionSchedule[] {
    return this.#schedule
  }

  /** Applies the steps at 0, then the rest on a timer; resolves once the first rates are in place. */
  async start(): Promise<void> {
    if (this.#t0 !== null || this.#stopping !== null) throw new LabSpecError('vary: a RateVariation starts once, before stop(); make a new one per transfer')
    this.#t0 = performance.now()
    const first = this.#changesAt(0)
    const failed = await this.#apply(first)
    if (failed.length > 0) throw new LabCommandError(`vary: could not set the first rates: ${failed.join('; ')}`)
    this.#arm(0)
  }

  /** Ends the variation and puts the base rates back; never throws (failures land in report().errors). */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  /** Each direction's time-weighted mean rate over [fromMs, toMs] (ms since start()), from the rates as applied. */
  meanRates(fromMs: number, toMs: number): { link: number; dir: VaryDirection; baseBps: number; meanBps: number }[] {
    return this.#targets.map((t, i) => ({ link: t.link, dir: t.dir, baseBps: t.baseBps, meanBps: Math.round(meanRate(this.#applied[i]!, t.baseBps, fromMs, toMs)) }))
  }

  /** The seed, the schedule and what was applied, for the run's JSON. */
  report(): VaryReport {
    return {
      seed: this.#init.seed,
      durationMs: this.#init.durationMs,
      shape: this.#shape,
      directions: this.#schedule.map((s, i) => ({ ...s, dev: this.#targets[i]!.dev, applied: [...this.#applied[i]!] })),
      errors: [...this.#errors],
    }
  }

  /** The (direction, rate) pairs whose step falls at `atMs`. */
  #changesAt(atMs: number): { i: number; rateBps: number }[] {
    const out: { i: number; rateBps: number }[] = []
    this.#schedule.forEach((s, i) => {
      const step = s.steps.find((x) => x.atMs === atMs)
      if (step) out.push({ i, rateBps: step.rateBps })
    })
    return out
  }

  /** Sets the timer for the first step after `afterMs` (one timer for every direction). */
  #arm(afterMs: number): void {
    if (this.#abort.signal.aborted) return
    const next = Math.min(...this.#schedule.flatMap((s) => s.steps.map((x) => x.atMs)).filter((t) => t > afterMs))
    if (!Number.isFinite(next)) return
    const wait = Math.max(0, this.#t0! + next - performance.now())
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (this.#abort.signal.aborted) return
      this.#inflight = this.#apply(this.#changesAt(next)).then((failed) => {
        for (const f of failed) this.#init.progress?.(`vary: ${f}`)
        this.#arm(next)
      })
    }, wait)
  }

  /** Runs the changes in parallel; records the applied ones and returns the failures' messages (also recorded). */
  async #apply(changes: readonly { i: number; rateBps: number }[]): Promise<string[]> {
    const failed: string[] = []
    await Promise.all(
      changes.map(async ({ i, rateBps }) => {
        const t = this.#targets[i]!
        try {
          await run('tc', ['-n', t.netns, ...tbfArgs(t.dev, varyParams(t, rateBps), 'change')], { timeoutMs: 5000 })
          this.#applied[i]!.push({ atMs: Math.round(performance.now() - this.#t0!), rateBps })
        } catch (err) {
          const msg = `link ${t.link + 1} ${t.dir} to ${rateBps} bit/s: ${(err as Error).message}`
          failed.push(msg)
          this.#errors.push(msg)
        }
      }),
    )
    return failed
  }

  async #stop(): Promise<void> {
    this.#abort.abort()
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    if (this.#t0 === null) return // never started: nothing was changed
    await this.#inflight
    await this.#apply(this.#targets.map((t, i) => ({ i, rateBps: t.baseBps })))
  }
}
