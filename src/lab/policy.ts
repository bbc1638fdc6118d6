/**
 * `quicether lab policy`: a policy enforced by real daemons, checked flow by
 * flow against what the policy says.
 *
 *   alice (admins) ─┐
 *   bob (staff)    ─┼─ gw (gateway, LAN 10.251.3.0/24 + fdc5:1ab:0:3::/64) ── server
 *   carol (sites)  ─┘
 *
 * Every node runs the same policy file. Each source tries TCP, UDP and ICMP
 * flows, IPv4 and IPv6, to the LAN server and to gw's overlay address; a
 * flow counts as allowed when a reply came back (a TCP answer, refusal
 * included; the UDP echo; the ping reply). Each result is compared with
 * what the policy's evaluator (src/policy) decides. Then two long-lived
 * streams run while the policy is reloaded: alice's stays allowed and must
 * not miss a beat; bob's is denied by the new policy and must stop.
 * `--rules N` puts N rules that match nothing in front (a big table must
 * decide the same). Traffic stays inside the run's namespaces.
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import YAML from 'yaml'
import { Lab } from './topology.js'
import { startDaemons, type LabDaemon } from './daemon.js'
import { runIn, spawnIn, stopChild, timeUntil } from './exec.js'
import { checkAborted } from './interrupt.js'
import { overlayAddresses } from './nodeconfig.js'
import { DEFAULT_NETWORK } from './scenario.js'
import { seededRandom } from './random.js'
import type { LinkSpec, TopologySpec } from './types.js'
import { controlRequest } from '../observe/control-socket.js'
import { compilePolicy, evaluate, type PolicyMember } from '../policy/policy.js'
import { loadConfigText } from '../config/index.js'

const LAN4 = '10.251.3.0/24'
const LAN6 = 'fdc5:1ab:0:3::/64'
const SERVER4 = '10.251.3.2'
const SERVER6 = 'fdc5:1ab:0:3::2'
const NO_EFFECT = { rate: null, delay: 0, jitter: 0, loss: 0 }

export interface PolicyFlow {
  readonly from: string
  readonly to: string
  readonly proto: 'tcp' | 'udp' | 'icmp'
  readonly port: number | null
  readonly expect: 'allow' | 'deny'
  readonly got: 'allow' | 'deny'
  readonly rule: string
}

export interface PolicyLabResult {
  readonly flows: number
  readonly rules: number
  /** Seed of the filler rules (replay with --seed). */
  readonly seed: number
  readonly mismatches: readonly PolicyFlow[]
  readonly results: readonly PolicyFlow[]
  /** Packets the nodes' engines dropped by a rule or the default while the flows ran. */
  readonly denied_counted: number
  readonly denied_flows: number
  /** Allowed long-lived flows that missed data across the reload (target 0). */
  readonly reload_dropped_allowed: number
  /** The flow the new policy denies stopped after the reload. */
  readonly reload_denied_stopped: boolean
  readonly runId: string
}

export function policyTopology(): TopologySpec {
  const link = (name: string, a: string, b: string): LinkSpec => ({ name, a, b, aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' })
  return {
    nodes: [
      { name: 'alice', daemon: true, config: null },
      { name: 'bob', daemon: true, config: null },
      { name: 'carol', daemon: true, config: null },
      { name: 'gw', daemon: true, config: { node: { role: 'gateway' }, subnets: [{ prefix: LAN4, masquerade: true }, { prefix: LAN6, masquerade: true }] } },
      { name: 'server', daemon: false, config: null },
    ],
    // Link i is 10.251.i.0/24 and fdc5:1ab:0:i::/64, a = .1, b = .2.
    links: [link('a', 'alice', 'gw'), link('b', 'bob', 'gw'), link('c', 'carol', 'gw'), link('lan', 'gw', 'server')],
  }
}

/**
 * The policy every node runs; `staffPorts` changes at the reload. `filler` rules drawn from `seed`
 * (sources in TEST-NET-2, so they match nothing here; any prefix length, protocol, port range and
 * action) stand in front of the real ones.
 */
export function labPolicy(filler: number, staffPorts: readonly number[], seed = 1): Record<string, unknown> {
  const rnd = seededRandom(seed)
  const int = (n: number) => Math.floor(rnd() * n)
  const rules: Record<string, unknown>[] = []
  for (let i = 0; i < filler; i++) {
    const plen = 24 + int(9)
    const host = int(256) & (plen >= 32 ? 255 : ~((1 << (32 - plen)) - 1) & 255)
    const proto = (['tcp', 'udp', 'icmp', 'any'] as const)[int(4)]
    const lo = 1 + int(60000)
    rules.push({
      name: `filler ${i + 1}`,
      from: `198.51.100.${host}/${plen}`,
      to: int(2) ? 'any' : `10.${int(256)}.${int(256)}.0/24`,
      proto,
      ...(proto === 'tcp' || proto === 'udp' ? { ports: [int(2) ? lo : `${lo}-${lo + int(5000)}`] } : {}),
      action: int(2) ? 'allow' : 'deny',
    })
  }
  rules.push(
    { name: 'no telnet', from: 'any', to: 'any', proto: 'tcp', ports: [23], action: 'deny' },
    { name: 'admins anywhere', from: 'group:admins', to: 'any', action: 'allow' },
    { name: 'staff web v4', from: 'group:staff', to: LAN4, proto: 'tcp', ports: staffPorts, action: 'allow' },
    { name: 'staff web v6', from: 'group:staff', to: LAN6, proto: 'tcp', ports: staffPorts, action: 'allow' },
    { name: 'staff ping', from: 'group:staff', to: 'any', proto: 'icmp', action: 'allow' },
    { name: 'sites dns v4', from: 'group:sites', to: LAN4, proto: 'udp', ports: [53], action: 'allow' },
    { name: 'sites dns v6', from: 'group:sites', to: LAN6, proto: 'udp', ports: [53], action: 'allow' },
  )
  return { default: 'deny', groups: { admins: ['alice'], staff: ['bob'], sites: ['carol'] }, rules }
}

/** Listeners: TCP (a stream of a byte every 50 ms on 2222 and 8080), a UDP echo on 53; IPv4 and IPv6. */
const SERVE = `
const net = require('node:net'), dgram = require('node:dgram')
for (const port of [22, 23, 80, 443, 2222, 8080]) {
  net.createServer((c) => {
    c.on('error', () => {})
    if (port === 2222 || port === 8080) { const t = setInterval(() => c.write('x'), 50); c.on('close', () => clearInterval(t)) }
  }).listen({ port, host: '::', ipv6Only: false })
}
const u = dgram.createSocket({ type: 'udp6', ipv6Only: false })
u.on('message', (m, r) => u.send(m, r.port, r.address))
u.bind(53, '::')
`

/** One probe from `ns`: did a reply come back within the timeout? */
async function probe(ns: string, proto: 'tcp' | 'udp' | 'icmp', host: string, port: number | null): Promise<'allow' | 'deny'> {
  const v6 = host.includes(':')
  if (proto === 'icmp') {
    const r = await runIn(ns, 'ping', [...(v6 ? ['-6'] : []), '-n', '-c', '1', '-W', '2', host], { allowFail: true, timeoutMs: 5000 })
    return r.code === 0 ? 'allow' : 'deny'
  }
  const script =
    proto === 'tcp'
      ? `const s=require('net').connect({host:'${host}',port:${port}});const t=setTimeout(()=>process.exit(1),2000);s.on('connect',()=>process.exit(0));s.on('error',(e)=>process.exit(e.code==='ECONNREFUSED'?0:1))`
      : `const d=require('dgram').createSocket('${v6 ? 'udp6' : 'udp4'}');d.on('message',()=>process.exit(0));const f=()=>d.send('x',${port},'${host}');f();setInterval(f,400);setTimeout(()=>process.exit(1),2000)`
  const r = await runIn(ns, process.execPath, ['-e', script], { allowFail: true, timeoutMs: 6000 })
  return r.code === 0 ? 'allow' : 'deny'
}

/** A long-lived TCP stream from `ns`: the times (ms) at which bytes arrived. */
function stream(ns: string, host: string, port: number, runId: string): { times: () => number[]; stop: () => Promise<void> } {
  const child = spawnIn(ns, process.execPath, ['-e', `const s=require('net').connect({host:'${host}',port:${port}});s.on('data',()=>process.stdout.write(Date.now()+'\\n'));s.on('error',()=>{})`], { runId, stdio: ['ignore', 'pipe', 'ignore'] })
  const times: number[] = []
  let buf = ''
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString()
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    for (const l of lines) if (l) times.push(Number(l))
  })
  return { times: () => times, stop: () => stopChild(child, 500) }
}

/** Longest gap between arrivals in [from, to] (the edges count), ms. */
function longestGap(times: readonly number[], from: number, to: number): number {
  const inside = [from, ...times.filter((x) => x > from && x < to), to]
  let gap = 0
  for (let i = 1; i < inside.length; i++) gap = Math.max(gap, inside[i]! - inside[i - 1]!)
  return gap
}

async function pool<T>(items: readonly (() => Promise<T>)[], n: number): Promise<T[]> {
  const out: T[] = new Array(items.length)
  let next = 0
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await items[i]!()
    }
  }))
  return out
}

export async function runPolicyLab(init: { rules: number; seed?: number; signal?: AbortSignal; progress?: (line: string) => void }): Promise<PolicyLabResult> {
  const seed = init.seed ?? Date.now() % 2 ** 31
  const say = (l: string) => init.progress?.(l)
  const lab = new Lab({ spec: policyTopology() })
  const daemons: LabDaemon[] = []
  const signal = init.signal ? { signal: init.signal } : {}
  const children: { stop: () => Promise<void> }[] = []
  try {
    say(`building run ${lab.runId}: alice, bob, carol ⇄ gw ⇄ LAN server; ${init.rules} filler rules (seed ${seed}) in front of 7`)
    await lab.start()
    const ns = (n: string) => lab.node(n).netns
    await runIn(ns('server'), 'ip', ['route', 'add', 'default', 'via', '10.251.3.1'])
    await runIn(ns('server'), 'ip', ['-6', 'route', 'add', 'default', 'via', 'fdc5:1ab:0:3::1'])
    say('starting the daemons')
    const started = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false, ...signal })
    daemons.push(...started.values())
    const setPolicy = async (policies: Record<string, unknown>, generation: number) => {
      for (const d of daemons) {
        const file = d.init.configPath
        const doc = YAML.parse(await readFile(file, 'utf8')) as Record<string, unknown>
        doc.policies = policies
        await writeFile(`${file}.tmp`, YAML.stringify(doc))
        await rename(`${file}.tmp`, file)
      }
      const ok = await timeUntil(async () => {
        for (const d of daemons) {
          const st = (await controlRequest(join(lab.dir, d.init.node, 'control.sock'), 'status')) as { config: { generation: number; errors: unknown[] } }
          if (st.config.errors.length > 0) throw new Error(`${d.init.node} refused the policy: ${JSON.stringify(st.config.errors)}`)
          if (st.config.generation < generation) return false
        }
        return true
      }, 10_000, 100)
      if (ok === null) throw new Error(`the policy did not reach generation ${generation} on every node`)
    }
    say('the policy goes live on every node (a reload)')
    await setPolicy(labPolicy(init.rules, [80, 443, 8080], seed), 2)
    for (const n of ['server', 'gw']) {
      const child = spawnIn(ns(n), process.execPath, ['-e', SERVE], { runId: lab.runId, stdio: 'ignore' })
      children.push({ stop: () => stopChild(child, 500) })
    }
    const ov = overlayAddresses(lab.spec, DEFAULT_NETWORK)
    // Every source must reach gw first (a ping each way is allowed for admins and staff; carol's is not, so wait on the mesh).
    for (const n of ['alice', 'bob', 'carol']) {
      const ok = await timeUntil(async () => ((await controlRequest(join(lab.dir, n, 'control.sock'), 'status')) as { peers: { name: string; state: string }[] }).peers.some((p) => p.name === 'gw' && p.state === 'up'), 20_000, 250)
      if (ok === null) throw new Error(`${n} never connected to gw`)
    }
    await timeUntil(async () => (await probe(ns('alice'), 'tcp', SERVER4, 22)) === 'allow', 10_000, 250)
    // (Flows are tried once the policy is live, below.)

    // What the policy says, with the members' real overlay addresses.
    const text = await readFile(daemons.find((d) => d.init.node === 'gw')!.init.configPath, 'utf8')
    const loaded = loadConfigText(text, 'gw.yaml')
    if (!loaded.ok) throw new Error(`gw's config does not load: ${loaded.diagnostics.map((d) => d.message).join('; ')}`)
    const members: PolicyMember[] = ['alice', 'bob', 'carol', 'gw'].map((n) => ({ name: n, addresses: [ov.get(n)!.ipv4, ov.get(n)!.ipv6], groups: [] }))
    const table = compilePolicy(loaded.config, members)

    const countDenied = async () => {
      let n = 0
      for (const d of daemons) {
        const st = (await controlRequest(join(lab.dir, d.init.node, 'control.sock'), 'status')) as { policy: { drops: { rule: number; default: number }; rules: { hits: number }[] } | null }
        const p = st.policy
        if (p) n += p.drops.rule + p.drops.default
      }
      return n
    }
    const deniedBefore = await countDenied()

    checkAborted(init.signal)
    const targets: { to: string; proto: 'tcp' | 'udp' | 'icmp'; port: number | null }[] = [
      { to: SERVER4, proto: 'tcp', port: 22 }, { to: SERVER4, proto: 'tcp', port: 80 }, { to: SERVER4, proto: 'tcp', port: 23 }, { to: SERVER4, proto: 'udp', port: 53 }, { to: SERVER4, proto: 'icmp', port: null },
      { to: SERVER6, proto: 'tcp', port: 22 }, { to: SERVER6, proto: 'tcp', port: 443 }, { to: SERVER6, proto: 'udp', port: 53 }, { to: SERVER6, proto: 'icmp', port: null },
      { to: ov.get('gw')!.ipv4, proto: 'tcp', port: 22 }, { to: ov.get('gw')!.ipv4, proto: 'icmp', port: null },
    ]
    const jobs: (() => Promise<PolicyFlow>)[] = []
    for (const from of ['alice', 'bob', 'carol']) {
      for (const x of targets) {
        jobs.push(async () => {
          const src = x.to.includes(':') ? ov.get(from)!.ipv6 : ov.get(from)!.ipv4
          const v = evaluate(table, { src, dst: x.to, proto: x.proto, dport: x.port, member: from })
          const got = await probe(ns(from), x.proto, x.to, x.port)
          return { from, to: x.to, proto: x.proto, port: x.port, expect: v.action, got, rule: v.rule ? v.rule.name : 'default' }
        })
      }
    }
    say(`${jobs.length} flows, six at a time`)
    const results = await pool(jobs, 6)
    const deniedFlows = results.filter((r) => r.got === 'deny').length
    const denied = (await countDenied()) - deniedBefore

    // Reload: staff lose 8080. alice's stream (admins) must not miss a beat; bob's must stop.
    checkAborted(init.signal)
    say('two streams; the policy is reloaded on every node: bob loses port 8080, alice keeps hers')
    const a = stream(ns('alice'), SERVER4, 2222, lab.runId)
    const b = stream(ns('bob'), SERVER4, 8080, lab.runId)
    children.push(a, b)
    await timeUntil(async () => a.times().length > 10 && b.times().length > 10, 10_000, 100)
    const reloadAt = Date.now()
    await setPolicy(labPolicy(init.rules, [80, 443], seed), 3)
    const appliedAt = Date.now()
    await new Promise((r) => setTimeout(r, 2000))
    const end = Date.now()
    const aGap = longestGap(a.times(), reloadAt - 500, end)
    const bAfter = b.times().filter((x) => x > appliedAt + 300).length
    await a.stop()
    await b.stop()
    const reloadFlow: PolicyFlow = { from: 'bob', to: SERVER4, proto: 'tcp', port: 8080, expect: 'deny', got: bAfter === 0 ? 'deny' : 'allow', rule: 'default (after the reload)' }
    const keptFlow: PolicyFlow = { from: 'alice', to: SERVER4, proto: 'tcp', port: 2222, expect: 'allow', got: aGap < 1000 ? 'allow' : 'deny', rule: 'admins anywhere (across the reload)' }
    const all = [...results, reloadFlow, keptFlow]
    return {
      flows: all.length,
      rules: table.rules.length,
      seed,
      mismatches: all.filter((r) => r.expect !== r.got),
      results: all,
      denied_counted: denied,
      denied_flows: deniedFlows,
      reload_dropped_allowed: aGap < 1000 ? 0 : 1,
      reload_denied_stopped: bAfter === 0,
      runId: lab.runId,
    }
  } finally {
    for (const c of children) await c.stop().catch(() => undefined)
    for (const d of daemons) await d.stop().catch(() => undefined)
    await lab.stop()
  }
}

export function renderPolicyLab(r: PolicyLabResult): string {
  const lines = [`lab policy (run ${r.runId}): ${r.flows} flows against ${r.rules} rules (filler seed ${r.seed})`, '']
  for (const f of r.results) {
    lines.push(`  ${f.expect === f.got ? 'ok  ' : 'MISS'} ${f.from.padEnd(6)} → ${`${f.to.includes(':') ? `[${f.to}]` : f.to}${f.port !== null ? `:${f.port}` : ''}/${f.proto}`.padEnd(28)} expect ${f.expect.padEnd(5)} got ${f.got.padEnd(5)} (${f.rule})`)
  }
  lines.push('', `mismatches ${r.mismatches.length}   denied flows ${r.denied_flows}, denied packets counted ${r.denied_counted}   reload: allowed flows dropped ${r.reload_dropped_allowed}, the newly denied flow stopped: ${r.reload_denied_stopped ? 'yes' : 'NO'}`)
  return lines.join('\n')
}
