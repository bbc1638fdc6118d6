/**
 * `quicether lab up SCENARIO`: builds the scenario's topology, starts its
 * daemons, and leaves everything running (detached) until `quicether lab
 * down`. Returns what a person needs to reach the nodes.
 */
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isRunId, runDir } from './names.js'
import { join } from 'node:path'
import { Lab } from './topology.js'
import { startDaemons } from './daemon.js'
import { overlayAddresses } from './nodeconfig.js'
import type { Scenario } from './scenario.js'
import { LabSpecError } from './errors.js'

export interface UpNode {
  readonly name: string
  readonly netns: string
  readonly daemon: boolean
  readonly overlay: { ipv4: string; ipv6: string } | null
  readonly underlay: readonly { link: string; ipv4: string; ipv6: string }[]
  readonly config: string | null
  readonly log: string | null
}

export interface UpResult {
  readonly runId: string
  readonly dir: string
  readonly nodes: readonly UpNode[]
  readonly links: readonly { name: string; a: string; b: string; router: string | null }[]
}

export async function labUp(s: Scenario, opts: { daemons: boolean; signal?: AbortSignal; progress?: (line: string) => void }): Promise<UpResult> {
  const lab = new Lab({ spec: s.topology, detached: true })
  const say = opts.progress ?? (() => undefined)
  try {
    say(`building ${s.topology.nodes.length} namespaces and ${s.topology.links.length} links`)
    await lab.start()
    const withDaemons = opts.daemons && s.topology.nodes.some((n) => n.daemon)
    if (withDaemons) say(`starting ${s.topology.nodes.filter((n) => n.daemon).length} daemons and waiting for them to answer`)
    if (withDaemons) await startDaemons({ lab, network: s.network, detached: true, configFor: (node, c) => linkInterfaces(lab, node, c), ...(opts.signal ? { signal: opts.signal } : {}) })
    const ov = overlayAddresses(s.topology, s.network)
    const nodes: UpNode[] = s.topology.nodes.map((n) => {
      const runs = withDaemons && n.daemon
      const underlay = lab.links.flatMap((l) =>
        l.spec.a === n.name ? [{ link: l.spec.name, ...pick(l.addrA) }] : l.spec.b === n.name ? [{ link: l.spec.name, ...pick(l.addrB) }] : [],
      )
      return {
        name: n.name,
        netns: lab.node(n.name).netns,
        daemon: runs,
        overlay: runs ? ov.get(n.name)! : null,
        underlay,
        config: runs ? join(lab.dir, n.name, 'quicether.yaml') : null,
        log: runs ? join(lab.dir, n.name, 'daemon.log') : null,
      }
    })
    const result: UpResult = {
      runId: lab.runId,
      dir: lab.dir,
      nodes,
      links: lab.links.map((l) => ({ name: l.spec.name, a: l.spec.a, b: l.spec.b, router: l.router })),
    }
    await writeFile(join(lab.dir, 'up.json'), JSON.stringify(result, null, 2))
    return result
  } catch (err) {
    await lab.stop()
    throw err
  }
}

function pick(a: { ipv4: string; ipv6: string }): { ipv4: string; ipv6: string } {
  return { ipv4: a.ipv4, ipv6: a.ipv6 }
}

/**
 * `interfaces[].name: "@LINK"` in a scenario's node config names that link's
 * interface on this node (its real name carries the run's id): how a
 * scenario bonds a node's links as uplinks.
 */
export function linkInterfaces(lab: Pick<Lab, 'links'>, node: string, config: Record<string, unknown>): Record<string, unknown> {
  const list = config['interfaces']
  if (!Array.isArray(list)) return config
  const interfaces = list.map((u: unknown) => {
    if (typeof u !== 'object' || u === null) return u
    const name = (u as { name?: unknown }).name
    if (typeof name !== 'string' || !name.startsWith('@')) return u
    const l = lab.links.find((x) => x.spec.name === name.slice(1) && (x.spec.a === node || x.spec.b === node))
    if (!l) throw new LabSpecError(`node ${node}: interfaces names ${name}, but no link of that name ends at ${node}`)
    return { ...u, name: l.spec.a === node ? l.ifA : l.ifB }
  })
  return { ...config, interfaces }
}

/** What `lab up` of run `runId` built (its up.json); with no id, the only run up. */
export async function readUpResult(runId: string | null): Promise<UpResult> {
  let id = runId
  if (id === null) {
    const runs = (await readdir(tmpdir())).filter((d) => d.startsWith('qel-') && isRunId(d.slice(4)))
    const withUp: string[] = []
    for (const d of runs) if (await readFile(join(tmpdir(), d, 'up.json')).then(() => true, () => false)) withUp.push(d.slice(4))
    if (withUp.length !== 1) throw new LabSpecError(withUp.length === 0 ? 'no lab run is up (start one with quicether lab up)' : `several lab runs are up (${withUp.join(', ')}): name one with --run`)
    id = withUp[0]!
  }
  const text = await readFile(join(runDir(id), 'up.json'), 'utf8').catch(() => {
    throw new LabSpecError(`run ${id} is not up (no ${join(runDir(id), 'up.json')})`)
  })
  return JSON.parse(text) as UpResult
}
