/**
 * bench/throughput: QuicEther against raw veth, OpenVPN 2.6 and wireguard-go,
 * in one run, each on a fresh copy of the same topology (two namespaces, one
 * plain veth pair). Per tunnel: iperf3 TCP -P1 and -P4 (median of the
 * repetitions), idle ping RTT p50/p99 through the tunnel, and the tunnel
 * processes' CPU seconds per Gbit moved (from /proc/<pid>/stat).
 *
 * quicether-scraped is quicether again, each repetition an unscraped and a scraped run
 * (both daemons' /metrics fetched once a second) on the same tunnel in ABBA order, so the
 * ratio (issue 17: metrics cost no measurable throughput) is not the spread between labs.
 * quicether-policy does the same with a policy of 1,000 rules (issue 16): the flows match
 * the last one, so each new flow is decided through all of them, and every packet passes
 * the flow tracker; the unpolicied runs have no policy at all (a reload between runs).
 *
 *   sudo node --import tsx bench/throughput.ts [--seconds 10] [--reps 3] [--only raw,quicether,quicether-scraped,openvpn,wireguard-go] [--json] [--out FILE]
 *
 * Prints a table with QuicEther's ratios against each peer and the bar of
 * issue 3 beside the measured figures; the JSON goes to --out (default
 * <tmp>/quicether-throughput.json) or to stdout with --json (the table then
 * goes to stderr). Traffic stays inside the bench's own namespaces.
 */
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Lab } from '../src/lab/topology.js'
import { startDaemons } from '../src/lab/daemon.js'
import { CpuMeter, cpuPerGbit } from '../src/lab/cpu.js'
import { withInterrupts } from '../src/lab/interrupt.js'
import { LabAbortedError } from '../src/lab/errors.js'
import { LAB_METRICS_PORT, overlayAddresses } from '../src/lab/nodeconfig.js'
import { spawnIn } from '../src/lab/exec.js'
import type { ChildProcess } from 'node:child_process'
import { readFile, rename, writeFile } from 'node:fs/promises'
import YAML from 'yaml'
import { controlRequest } from '../src/observe/control-socket.js'
import { timeUntil } from '../src/lab/exec.js'
import { startOpenVpn, startWireguardGo } from '../src/lab/peers.js'
import { DEFAULT_NETWORK } from '../src/lab/scenario.js'
import { IperfServer, iperfClient, median, ping, percentile } from '../src/lab/traffic.js'
import { parsePositiveInt } from '../src/lab/units.js'
import type { TopologySpec } from '../src/lab/types.js'

const CASES = ['raw', 'quicether', 'quicether-scraped', 'quicether-policy', 'openvpn', 'wireguard-go'] as const
type CaseName = (typeof CASES)[number]

interface StreamResult {
  /** Median goodput of the repetitions, Mbit/s. */
  mbit: number
  runs_mbit: number[]
  retransmits: number[]
  /** Median CPU seconds per Gbit of the tunnel's processes; null for raw veth. */
  cpu_s_per_gbit: number | null
}

interface CaseResult {
  name: CaseName
  detail: string
  ok: boolean
  error?: string
  rtt_ms_p50?: number
  rtt_ms_p99?: number
  p1?: StreamResult
  p4?: StreamResult
  /** quicether-scraped / -policy: the same tunnel's runs without the variant, alternating with the ones with it (ABBA). */
  baseline?: { p1: StreamResult; p4: StreamResult }
  /** Median over the repetitions of with / without (the two runs of one repetition are back to back). */
  variant_ratio?: { p1: number; p4: number }
}

interface Tunnel {
  /** quicether-scraped / -policy: turns the variant (scrapers, the policy) on or off. */
  variant?: { name: string; set: (on: boolean) => Promise<void> }
  serverAddr: string
  pids: readonly number[]
  detail: string
  stop(): Promise<void>
}

const TOPOLOGY: TopologySpec = {
  nodes: [
    { name: 'alpha', daemon: true, config: null },
    { name: 'beta', daemon: true, config: null },
  ],
  links: [{ name: 'veth', a: 'alpha', b: 'beta', aToB: { rate: null, delay: 0, jitter: 0, loss: 0 }, bToA: { rate: null, delay: 0, jitter: 0, loss: 0 }, queue: null, nat: 'none' }],
}

async function openTunnel(name: CaseName, lab: Lab, signal: AbortSignal): Promise<Tunnel> {
  switch (name) {
    case 'raw':
      return { serverAddr: lab.link(0).addrB.ipv4, pids: [], detail: 'veth pair, no tunnel', stop: async () => undefined }
    case 'quicether':
    case 'quicether-scraped':
    case 'quicether-policy': {
      const daemons = await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false, signal })
      // A Prometheus stand-in in each namespace: GET /metrics every second, each body read whole.
      let scrapers: ChildProcess[] = []
      const scrape = async (on: boolean): Promise<void> => {
        for (const s of scrapers) s.kill()
        scrapers = on
          ? ['alpha', 'beta'].map((n) =>
            spawnIn(lab.node(n).netns, process.execPath, ['-e', `setInterval(() => fetch('http://127.0.0.1:${LAB_METRICS_PORT}/metrics').then((r) => r.text()).catch(() => {}), 1000)`], { runId: lab.runId, stdio: 'ignore' }))
          : []
      }
      let generation = 1
      let policyOn = false
      const policy = async (on: boolean): Promise<void> => {
        if (on === policyOn) return
        policyOn = on
        generation++
        for (const d of daemons.values()) {
          const doc = YAML.parse(await readFile(d.init.configPath, 'utf8')) as Record<string, unknown>
          if (on) doc.policies = bigPolicy(1000)
          else delete doc.policies
          await writeFile(`${d.init.configPath}.tmp`, YAML.stringify(doc))
          await rename(`${d.init.configPath}.tmp`, d.init.configPath)
        }
        for (const d of daemons.values()) {
          const sock = join(lab.dir, d.init.node, 'control.sock')
          const ok = await timeUntil(async () => ((await controlRequest(sock, 'status')) as { config: { generation: number } }).config.generation >= generation, 10_000, 50)
          if (ok === null) throw new Error(`${d.init.node} did not apply the policy change`)
        }
      }
      return {
        serverAddr: overlayAddresses(lab.spec, DEFAULT_NETWORK).get('beta')!.ipv4,
        pids: [...daemons.values()].map((d) => d.pid!).filter(Boolean),
        detail:
          name === 'quicether' ? 'two quicether daemons, QUIC DATAGRAM over UDP, TLS 1.3'
          : name === 'quicether-scraped' ? 'the same daemons, runs alternating unscraped and scraped (both /metrics once a second)'
          : 'the same daemons, runs alternating without a policy and with 1,000 rules (the flows match the last)',
        ...(name === 'quicether-scraped' ? { variant: { name: 'scraped', set: scrape } } : name === 'quicether-policy' ? { variant: { name: 'policy', set: policy } } : {}),
        stop: async () => {
          await scrape(false)
          for (const d of daemons.values()) await d.stop()
        },
      }
    }
    case 'openvpn':
      return startOpenVpn(lab, 'alpha', 'beta')
    case 'wireguard-go':
      return startWireguardGo(lab, 'alpha', 'beta')
  }
}

async function measure(name: CaseName, o: { seconds: number; reps: number; signal: AbortSignal; say: (s: string) => void }): Promise<CaseResult> {
  const lab = new Lab({ spec: TOPOLOGY })
  try {
    await lab.start()
    const tunnel = await openTunnel(name, lab, o.signal)
    try {
      const alpha = lab.node('alpha').netns
      const p = await ping(alpha, tunnel.serverAddr, { count: 100, intervalMs: 10, signal: o.signal })
      const server = new IperfServer({ netns: lab.node('beta').netns, bind: tunnel.serverAddr, runId: lab.runId })
      await server.start()
      const streams: Record<'p1' | 'p4', StreamResult> = {} as Record<'p1' | 'p4', StreamResult>
      const baseline: Record<'p1' | 'p4', StreamResult> = {} as Record<'p1' | 'p4', StreamResult>
      const ratios: Record<'p1' | 'p4', number> = { p1: 0, p4: 0 }
      for (const P of [1, 4] as const) {
        const runs = { on: [] as number[], off: [] as number[] }
        const retr = { on: [] as number[], off: [] as number[] }
        const cpus = { on: [] as number[], off: [] as number[] }
        for (let rep = 1; rep <= o.reps; rep++) {
          // Without a variant: one run a rep. With: a run without and one with it a rep, in ABBA order.
          const order: ('on' | 'off')[] = !tunnel.variant ? ['off'] : rep % 2 === 1 ? ['off', 'on'] : ['on', 'off']
          for (const phase of order) {
            await tunnel.variant?.set(phase === 'on')
            const meter = new CpuMeter(tunnel.pids)
            meter.start()
            const r = await iperfClient(alpha, tunnel.serverAddr, { seconds: o.seconds, streams: P, signal: o.signal })
            const cpu = meter.stop()
            runs[phase].push(r.mbit)
            retr[phase].push(r.retransmits)
            cpus[phase].push(cpuPerGbit(cpu, r.bytes))
            o.say(`${name} -P${P} run ${rep}/${o.reps}${tunnel.variant ? (phase === 'on' ? ` ${tunnel.variant.name}` : ' baseline') : ''}: ${r.mbit.toFixed(0)} Mbit/s${tunnel.pids.length ? `, ${cpuPerGbit(cpu, r.bytes).toFixed(2)} CPU s/Gbit` : ''}`)
          }
        }
        await tunnel.variant?.set(false)
        const result = (ph: 'on' | 'off'): StreamResult => ({ mbit: round(median(runs[ph])), runs_mbit: runs[ph].map(round), retransmits: retr[ph], cpu_s_per_gbit: tunnel.pids.length ? round(median(cpus[ph]), 3) : null })
        streams[P === 1 ? 'p1' : 'p4'] = result(tunnel.variant ? 'on' : 'off')
        if (tunnel.variant) {
          baseline[P === 1 ? 'p1' : 'p4'] = result('off')
          ratios[P === 1 ? 'p1' : 'p4'] = round(median(runs.on.map((x, i) => x / runs.off[i]!)), 3)
        }
      }
      await server.stop()
      return { name, detail: tunnel.detail, ok: true, rtt_ms_p50: percentile(p.rttsMs, 0.5), rtt_ms_p99: percentile(p.rttsMs, 0.99), ...streams, ...(tunnel.variant ? { baseline, variant_ratio: ratios } : {}) }
    } finally {
      await tunnel.stop()
    }
  } catch (err) {
    if (o.signal.aborted) throw err
    const msg = err instanceof Error ? err.message : String(err)
    o.say(`${name}: failed: ${msg.split('\n')[0]}`)
    return { name, detail: '', ok: false, error: msg }
  } finally {
    await lab.stop()
  }
}

function round(x: number, d = 1): number {
  const f = 10 ** d
  return Math.round(x * f) / f
}

interface Bar {
  what: string
  measured: string
  pass: boolean | null
}

function bars(results: CaseResult[]): Bar[] {
  const get = (n: CaseName): CaseResult | undefined => results.find((r) => r.name === n && r.ok)
  const q = get('quicether')
  const ovpn = get('openvpn')
  const raw = get('raw')
  const out: Bar[] = []
  const ratio = q?.p1 && ovpn?.p1 ? q.p1.mbit / ovpn.p1.mbit : null
  out.push({ what: 'QuicEther -P1 throughput ≥ 1.0× OpenVPN', measured: ratio === null ? 'n/a' : `${ratio.toFixed(2)}× (${q!.p1!.mbit} vs ${ovpn!.p1!.mbit} Mbit/s)`, pass: ratio === null ? null : ratio >= 1 })
  const qc = q?.p1?.cpu_s_per_gbit
  const oc = ovpn?.p1?.cpu_s_per_gbit
  out.push({ what: "QuicEther CPU/Gbit ≤ OpenVPN's (-P1)", measured: qc == null || oc == null ? 'n/a' : `${qc.toFixed(2)} vs ${oc.toFixed(2)} s/Gbit (${(qc / oc).toFixed(2)}×)`, pass: qc == null || oc == null ? null : qc <= oc })
  const added = q?.rtt_ms_p50 !== undefined && raw?.rtt_ms_p50 !== undefined ? q.rtt_ms_p50 - raw.rtt_ms_p50 : null
  // The scrape should cost nothing measurable (CPU per Gbit within 5 %); a policy costs the flow tracker's lookup per packet (reported, no bar).
  for (const [caseName, what, bar, cpuBar] of [['quicether-scraped', 'scraped every second', 0.95, 1.05], ['quicether-policy', 'with a policy of 1,000 rules', 0.95, null]] as const) {
    const sc = get(caseName)
    const un = sc?.baseline
    const sr = sc?.variant_ratio ? Math.min(sc.variant_ratio.p1, sc.variant_ratio.p4) : null
    out.push({ what: `${what} / without, throughput (paired runs)`, measured: sr === null ? 'n/a' : `${sr.toFixed(3)}× (median of the per-repetition ratios, the worse of -P1 ${sc!.variant_ratio!.p1} and -P4 ${sc!.variant_ratio!.p4})`, pass: sr === null ? null : sr >= bar })
    const cr = sc?.p1?.cpu_s_per_gbit && un?.p1.cpu_s_per_gbit && sc.p4?.cpu_s_per_gbit && un.p4.cpu_s_per_gbit ? Math.max(sc.p1.cpu_s_per_gbit / un.p1.cpu_s_per_gbit, sc.p4.cpu_s_per_gbit / un.p4.cpu_s_per_gbit) : null
    out.push({ what: `${what} / without, daemon CPU per Gbit`, measured: cr === null ? 'n/a' : `${cr.toFixed(3)}× (the worse of -P1 ${sc!.p1!.cpu_s_per_gbit} vs ${un!.p1.cpu_s_per_gbit}, -P4 ${sc!.p4!.cpu_s_per_gbit} vs ${un!.p4.cpu_s_per_gbit} s/Gbit)`, pass: cr === null || cpuBar === null ? null : cr <= cpuBar })
  }
  out.push({ what: 'added RTT over raw veth < 0.5 ms (p50)', measured: added === null ? 'n/a' : `${added.toFixed(3)} ms (${q!.rtt_ms_p50} vs ${raw!.rtt_ms_p50} ms)`, pass: added === null ? null : added < 0.5 })
  return out
}

function table(results: CaseResult[], seconds: number, reps: number): string {
  const lines: string[] = []
  const head = ['', '-P1 Mbit/s', '-P4 Mbit/s', 'RTT p50 ms', 'RTT p99 ms', 'CPU s/Gbit -P1', 'CPU s/Gbit -P4']
  const rows = results.map((r) =>
    r.ok
      ? [r.name, String(r.p1?.mbit), String(r.p4?.mbit), r.rtt_ms_p50!.toFixed(3), r.rtt_ms_p99!.toFixed(3), r.p1?.cpu_s_per_gbit?.toFixed(2) ?? '-', r.p4?.cpu_s_per_gbit?.toFixed(2) ?? '-']
      : [r.name, 'failed', '', '', '', '', ''],
  )
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')
  lines.push(`iperf3 TCP, ${seconds} s, median of ${reps}; ping idle, 100 × 10 ms; CPU of the tunnel's processes`, '', fmt(head))
  for (const r of rows) lines.push(fmt(r))
  const q = results.find((r) => r.name === 'quicether' && r.ok)
  if (q) {
    lines.push('', 'QuicEther against each:')
    for (const peer of results.filter((r) => r.ok && !r.name.startsWith('quicether'))) {
      const parts = [`-P1 ${(q.p1!.mbit / peer.p1!.mbit).toFixed(2)}×`, `-P4 ${(q.p4!.mbit / peer.p4!.mbit).toFixed(2)}×`]
      if (peer.p1?.cpu_s_per_gbit && q.p1?.cpu_s_per_gbit) parts.push(`CPU/Gbit ${(q.p1.cpu_s_per_gbit / peer.p1.cpu_s_per_gbit).toFixed(2)}×`)
      const d = q.rtt_ms_p50! - peer.rtt_ms_p50!
      parts.push(`RTT p50 ${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(3)} ms`)
      lines.push(`  vs ${peer.name.padEnd(13)} ${parts.join(', ')}`)
    }
  }
  lines.push('', 'Bars (issues 3, 16 and 17):')
  for (const b of bars(results)) lines.push(`  ${b.pass === null ? '  ?  ' : b.pass ? ' PASS' : ' FAIL'}  ${b.what.padEnd(42)} ${b.measured}`)
  for (const r of results.filter((x) => !x.ok)) lines.push('', `${r.name} failed: ${r.error}`)
  return lines.join('\n')
}

/** n rules that match nothing here (TEST-NET sources), then one that allows everything: each new flow is decided through all of them. */
function bigPolicy(n: number): Record<string, unknown> {
  const rules: Record<string, unknown>[] = []
  for (let i = 0; i < n - 1; i++) rules.push({ from: `198.51.${(i >> 8) & 255}.${i & 255}/32`, to: `203.0.113.${i % 256}/32`, proto: i % 2 ? 'udp' : 'tcp', ports: [1000 + (i % 5000)], action: 'deny' })
  rules.push({ name: 'the rest', from: 'any', to: 'any', action: 'allow' })
  return { default: 'deny', rules }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      reps: { type: 'string', default: '3' },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  })
  const seconds = parsePositiveInt(values.seconds, '--seconds', 600)
  const reps = parsePositiveInt(values.reps, '--reps', 20)
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...CASES]
  for (const n of only) if (!(CASES as readonly string[]).includes(n)) throw new Error(`--only: unknown case '${n}' (${CASES.join(', ')})`)
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/throughput needs root (network namespaces)\n')
    return 2
  }
  const say = (s: string): void => void process.stderr.write(`bench: ${s}\n`)
  const results = await withInterrupts(async (signal) => {
    const out: CaseResult[] = []
    for (const name of CASES.filter((c) => only.includes(c))) {
      say(`${name}: setting up`)
      out.push(await measure(name, { seconds, reps, signal, say }))
    }
    return out
  })
  const doc = {
    bench: 'throughput',
    date: new Date().toISOString(),
    machine: { cpus: (await import('node:os')).cpus().length, kernel: (await import('node:os')).release() },
    seconds,
    reps,
    results,
    bar: bars(results),
  }
  const text = table(results, seconds, reps)
  if (values.json) {
    process.stderr.write(text + '\n')
    process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
  } else {
    const file = values.out ?? join(tmpdir(), 'quicether-throughput.json')
    writeFileSync(file, JSON.stringify(doc, null, 2) + '\n')
    process.stdout.write(text + `\n\nJSON: ${file}\n`)
  }
  return results.every((r) => r.ok) ? 0 : 1
}

// An interrupt tears the lab down and says so (what was measured is saved above); no stack.
process.exitCode = await main().catch((err: unknown) => {
  if (!(err instanceof LabAbortedError)) throw err
  process.stderr.write(`${err.message}\n`)
  return 130
})
