/**
 * A lab topology, built: namespaces for nodes, links between them (plain or
 * through a router namespace with rate, delay, loss and NAT), a temp
 * directory for configs and logs. Constructors wire, `start()` builds,
 * `stop()` tears down — by name, so it also cleans what a failed `start()`
 * left half-built.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LabSpecError } from './errors.js'
import { runIn, type RunOptions, type RunResult } from './exec.js'
import { buildLink, setLinkCut, type BuiltLink } from './link.js'
import { createNetns } from './netns.js'
import { MAX_LINKS, checkNodeName, newRunId, nodeNetns, runDir } from './names.js'
import { labDown } from './teardown.js'
import type { DelayLineStats } from './delay.js'
import type { LinkHandle, NodeHandle, TopologySpec } from './types.js'

export interface LabInit {
  readonly spec: TopologySpec
  /** Default: a fresh random id. */
  readonly runId?: string
  /** Default: the OS temp dir. */
  readonly tmpBase?: string
  /** Leave the delay lines running after this process exits (`lab up`). */
  readonly detached?: boolean
  /** Seed of the links' jitter draws (see `delayLineSeed`); default: from the run id. */
  readonly seed?: number
}

/** Checks names, endpoints and counts of a topology; throws LabSpecError. */
export function checkTopology(spec: TopologySpec): void {
  const names = new Set<string>()
  for (const n of spec.nodes) {
    checkNodeName(n.name)
    if (names.has(n.name)) throw new LabSpecError(`node '${n.name}' is defined twice`)
    names.add(n.name)
  }
  if (spec.links.length > MAX_LINKS) throw new LabSpecError(`a lab has at most ${MAX_LINKS} links, this one has ${spec.links.length}`)
  const linkNames = new Set<string>()
  for (const l of spec.links) {
    if (linkNames.has(l.name)) throw new LabSpecError(`link '${l.name}' is defined twice`)
    linkNames.add(l.name)
    for (const end of [l.a, l.b]) if (!names.has(end)) throw new LabSpecError(`link '${l.name}' names node '${end}', which is not defined`)
    if (l.a === l.b) throw new LabSpecError(`link '${l.name}' connects node '${l.a}' to itself`)
    for (const [dir, d] of [['a-to-b', l.aToB], ['b-to-a', l.bToA]] as const) {
      if (d.rate !== null && (!Number.isFinite(d.rate) || d.rate < 8000)) throw new LabSpecError(`link '${l.name}' ${dir}: rate must be at least 8kbit`)
      if (!(d.delay >= 0 && d.delay <= 10_000)) throw new LabSpecError(`link '${l.name}' ${dir}: delay must be between 0 and 10 s`)
      if (!(d.jitter >= 0 && d.jitter <= 10_000)) throw new LabSpecError(`link '${l.name}' ${dir}: jitter must be between 0 and 10 s`)
      if (!(d.loss >= 0 && d.loss < 1)) throw new LabSpecError(`link '${l.name}' ${dir}: loss must be between 0% and 100%`)
    }
    if (l.queue !== null && !(l.queue > 0 && l.queue <= 10_000)) throw new LabSpecError(`link '${l.name}': queue must be between 0 and 10 s`)
  }
}

export class Lab {
  readonly runId: string
  readonly dir: string
  readonly spec: TopologySpec
  readonly #detached: boolean
  readonly #tmpBase: string | undefined
  readonly #seed: number | null
  #nodes = new Map<string, NodeHandle>()
  #links: BuiltLink[] = []

  constructor(init: LabInit) {
    checkTopology(init.spec)
    this.spec = init.spec
    this.runId = init.runId ?? newRunId()
    this.#tmpBase = init.tmpBase
    this.dir = runDir(this.runId, init.tmpBase)
    this.#detached = init.detached ?? false
    this.#seed = init.seed ?? null
  }

  get nodes(): readonly NodeHandle[] {
    return [...this.#nodes.values()]
  }

  get links(): readonly LinkHandle[] {
    return this.#links.map((l) => l.handle)
  }

  node(name: string): NodeHandle {
    const n = this.#nodes.get(name)
    if (!n) throw new LabSpecError(`no node '${name}' in this lab`)
    return n
  }

  /** A link by name or index. */
  link(which: string | number): LinkHandle {
    const l = typeof which === 'number' ? this.#links[which] : this.#links.find((x) => x.handle.spec.name === which)
    if (!l) throw new LabSpecError(`no link '${which}' in this lab`)
    return l.handle
  }

  /** Builds everything; on failure tears down what was built and rethrows. */
  async start(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: false, mode: 0o700 })
      await writeFile(join(this.dir, 'topology.json'), JSON.stringify({ runId: this.runId, seed: this.#seed, spec: this.spec }, null, 2))
      for (const n of this.spec.nodes) {
        const netns = nodeNetns(this.runId, n.name)
        await createNetns(netns)
        this.#nodes.set(n.name, { name: n.name, netns })
      }
      for (const [index, spec] of this.spec.links.entries()) {
        this.#links.push(
          await buildLink({ runId: this.runId, index, spec, nsA: this.node(spec.a).netns, nsB: this.node(spec.b).netns, detached: this.#detached, seed: this.#seed }),
        )
      }
      await writeFile(join(this.dir, 'links.json'), JSON.stringify(this.links, null, 2))
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  /** Runs a command in a node's namespace. */
  exec(node: string, cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return runIn(this.node(node).netns, cmd, args, opts)
  }

  /** Cuts link `which` (nothing passes) or restores it. */
  async cut(which: string | number, cut = true): Promise<void> {
    const h = this.link(which)
    await setLinkCut(h, this.node(h.spec.a).netns, this.node(h.spec.b).netns, cut, this.runId)
  }

  /** Tears down everything of this run (processes, namespaces, temp dir); returns the delay lines' counters. */
  async stop(): Promise<DelayLineStats[]> {
    const stats: DelayLineStats[] = []
    for (const l of this.#links) {
      const s = await l.delayLine?.stop().catch(() => null)
      if (s) stats.push(s)
    }
    this.#links = []
    this.#nodes.clear()
    await labDown({ runId: this.runId, ...(this.#tmpBase !== undefined ? { tmpBase: this.#tmpBase } : {}) })
    return stats
  }
}
