/**
 * `quicether lab demo`: a newcomer's first run, under a minute. Two sites
 * over an emulated 100 Mbit/s link with 10 ms one-way delay, a quicether
 * daemon at each; it shows them finding each other (peer-up lines from their
 * logs), a ping and a 5 s transfer through the tunnel, prints a table, and
 * tears everything down. Then the bonding scene (`demo-bond.ts`): four
 * uplinks bonded, the biggest cut half-way.
 */
import { Lab } from './topology.js'
import { startDaemons, type LabDaemon } from './daemon.js'
import { checkAborted } from './interrupt.js'
import { overlayAddresses } from './nodeconfig.js'
import { DEFAULT_NETWORK } from './scenario.js'
import { IperfServer, iperfClient, ping, percentile } from './traffic.js'
import { formatRate } from './units.js'
import { round } from './pair.js'
import type { TopologySpec } from './types.js'
import { runBondScene, type BondSceneResult } from './demo-bond.js'

export const DEMO_RATE = 100e6
export const DEMO_DELAY_MS = 10

export function demoTopology(): TopologySpec {
  const dir = { rate: DEMO_RATE, delay: DEMO_DELAY_MS, jitter: 0, loss: 0 }
  return {
    nodes: [
      { name: 'home', daemon: true, config: null },
      { name: 'office', daemon: true, config: null },
    ],
    links: [{ name: 'internet', a: 'home', b: 'office', aToB: dir, bToA: dir, queue: null, nat: 'none' }],
  }
}

export interface DemoResult {
  readonly bonding: BondSceneResult
  readonly found_ms: number
  readonly rtt_ms_p50: number
  readonly mbit: number
  readonly run_id: string
}

/** A line of a daemon's log that says a peer came up, as "time node: msg". */
const PEER_UP = /peer.*\b(up|connected|established)\b|\bconnected\b/i

function peerUpLine(name: string, d: LabDaemon, all: ReadonlyMap<string, LabDaemon>): string {
  const e = d.events(PEER_UP)[0]
  if (!e) return `      ${name}: (no peer-up line in its log)`
  const key = typeof e['peer'] === 'string' ? e['peer'] : typeof e['key'] === 'string' ? e['key'] : null
  const peer = key ? ([...all.values()].find((x) => x.init.key === key)?.init.node ?? `${key.slice(0, 8)}…`) : null
  const remote = e['remote'] as { address?: string; port?: number } | string | undefined
  const via = typeof remote === 'string' ? remote : remote?.address ? `${remote.address}:${remote.port ?? ''}` : null
  return `      ${name}'s log: "${String(e['msg'])}"${peer ? ` ${peer}` : ''}${via ? ` via ${via}` : ''}${key ? ` (key ${key.slice(0, 8)}…, pinned)` : ''}`
}

export async function runDemo(out: (line: string) => void, signal?: AbortSignal): Promise<DemoResult> {
  const lab = new Lab({ spec: demoTopology() })
  const t0 = Date.now()
  try {
    out(`QuicEther lab demo: two sites, "home" and "office", over an emulated`)
    out(`${formatRate(DEMO_RATE)} link with ${DEMO_DELAY_MS} ms one-way delay, each running a quicether daemon.`)
    out('')
    out(`[1/4] building the network (namespaces qel-${lab.runId}-home, qel-${lab.runId}-office, router qel-${lab.runId}-r0)`)
    await lab.start()
    checkAborted(signal)
    out(`[2/4] starting the daemons; home dials office at ${lab.link(0).addrB.ipv4}:${DEFAULT_NETWORK.port}`)
    const t1 = Date.now()
    const daemons = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false, ...(signal ? { signal } : {}) })
    const foundMs = Date.now() - t1
    out(`      they found each other in ${(foundMs / 1000).toFixed(1)} s:`)
    for (const [name, d] of daemons) out(peerUpLine(name, d, daemons))
    const ov = overlayAddresses(lab.spec, DEFAULT_NETWORK)
    const office = ov.get('office')!
    const home = lab.node('home').netns
    out(`[3/4] ping through the tunnel, home → office ${office.ipv4}`)
    const p = await ping(home, office.ipv4, { count: 10, intervalMs: 100, ...(signal ? { signal } : {}) })
    const rtt = percentile(p.rttsMs, 0.5)
    out(`      ${p.received}/${p.sent} replies, median ${rtt.toFixed(1)} ms (the link alone: ${2 * DEMO_DELAY_MS} ms)`)
    out(`[4/4] 5 s TCP transfer through the tunnel (iperf3)`)
    const server = new IperfServer({ netns: lab.node('office').netns, bind: office.ipv4, runId: lab.runId })
    await server.start()
    const r = await iperfClient(home, office.ipv4, { seconds: 5, ...(signal ? { signal } : {}) })
    await server.stop()
    out('')
    const rows: [string, string][] = [
      ['link', `${formatRate(DEMO_RATE)}, ${DEMO_DELAY_MS} ms each way`],
      ['found each other', `${(foundMs / 1000).toFixed(1)} s after start`],
      ['ping over the tunnel', `${rtt.toFixed(1)} ms median`],
      ['TCP through the tunnel', `${r.mbit.toFixed(1)} Mbit/s (${Math.round((r.mbit * 1e6 * 100) / DEMO_RATE)}% of the link)`],
      ['encryption', 'TLS 1.3 over QUIC, keys pinned per peer'],
    ]
    const w = Math.max(...rows.map(([k]) => k.length))
    for (const [k, v] of rows) out(`  ${k.padEnd(w)}  ${v}`)
    out('')
    for (const d of daemons.values()) await d.stop()
    await lab.stop()
    out('')
    const bonding = await runBondScene(out, signal)
    out('')
    return { bonding, found_ms: foundMs, rtt_ms_p50: round(rtt, 3), mbit: round(r.mbit, 1), run_id: lab.runId }
  } finally {
    await lab.stop()
    out(`torn down (run ${lab.runId}, ${((Date.now() - t0) / 1000).toFixed(1)} s in all). Build your own: quicether lab up examples/lab/two-sites.yaml, quicether lab bond --uplink 50mbit,10ms --uplink 100mbit,30ms --cut 2@5`)
    out('See a node in its web UI (topology, live rates, the bond of each uplink): keep a mesh up, then open the address this prints:')
    out('  sudo quicether lab up examples/lab/rural-exit.yaml && sudo quicether lab ui desktop')
  }
}
