/**
 * How long loading and validating a config takes, after Node has started:
 *   - the largest shipped example (examples/*.yaml, quicether.example.yaml);
 *   - a generated config with 1,000 routes, 500 policy rules and 100 static peers.
 * Warm figures: the median of RUNS loads after WARMUP loads (the schema is compiled
 * once per process, on the first load, which is reported separately as "first").
 *
 *   node --import tsx bench/validate.ts [--runs N] [--json-only]
 *
 * Prints JSON, then a table. Exits 1 when the generated config misses the target.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { loadConfigFile } from '../src/config/index.js'
import { clearIpCaches as resetParseCaches } from '../src/net/index.js'
import { normalize } from '../src/config/normalize.js'
import { parseConfigText } from '../src/config/parse.js'
import { LazyPositions } from '../src/config/positions.js'
import { checkRules } from '../src/config/rules.js'
import { checkSchema } from '../src/config/schema.js'

const TARGET_MS = 50
const args = process.argv.slice(2)
const runsArg = args.indexOf('--runs')
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 30
const WARMUP = 5
const jsonOnly = args.includes('--json-only')
const root = fileURLToPath(new URL('../', import.meta.url))

/** A valid config of the given size; keys are derived, not random, so every run is the same. */
export function generateConfig(o: { routes: number; rules: number; peers: number }): string {
  const key = (i: number): string => createHash('sha256').update(`bench-peer-${i}`).digest().toString('base64')
  const peers = Array.from({ length: o.peers }, (_, i) => ({
    name: `peer-${i}`,
    key: key(i),
    endpoints: [`peer-${i}.example.com:7443`, `198.51.100.${(i % 250) + 1}:${7443 + i}`],
    groups: [`team-${i % 10}`],
  }))
  // 1,000 distinct /24s spread over 10.0.0.0/8, via the peers in turn.
  const routes = Array.from({ length: o.routes }, (_, i) => ({ to: `10.${Math.floor(i / 250)}.${i % 250}.0/24`, via: `peer-${i % o.peers}`, metric: 100 + (i % 3) }))
  const rules = Array.from({ length: o.rules }, (_, i) => ({
    name: `rule-${i}`,
    from: i % 3 === 0 ? `group:team-${i % 10}` : i % 3 === 1 ? `peer:peer-${i % o.peers}` : `172.${16 + (i % 16)}.${i % 256}.0/24`,
    to: `10.${i % 4}.${i % 250}.0/24`,
    proto: i % 2 === 0 ? 'tcp' : 'udp',
    ports: [22 + (i % 1000), `${8000 + (i % 100)}-${8100 + (i % 100)}`],
    action: i % 5 === 0 ? 'deny' : 'allow',
  }))
  const doc = {
    node: { name: 'bench-gw', role: 'gateway' },
    network: { name: 'bench', overlay: { ipv4: '100.88.0.0/16' } },
    peers,
    discovery: { dht: true, bootstrap: ['boot.example.com:7443'], 'connect-to': peers.slice(0, 10).map((p) => p.name) },
    interfaces: [
      { name: 'eth0', bandwidth: { up: '50Mbps', down: '250Mbps' } },
      { name: 'eth1', bandwidth: { up: '20Mbps', down: '100Mbps' } },
    ],
    multipath: { mode: 'aggregate', scheduler: 'weighted', target: 'peer-0' },
    subnets: ['192.168.0.0/24', '192.168.1.0/24'],
    routes,
    policies: { default: 'deny', groups: { admins: ['peer-0', 'peer-1'] }, rules },
  }
  return stringify(doc)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const round = (x: number): number => Math.round(x * 100) / 100

interface Case {
  name: string
  file: string
  bytes: number
  firstMs: number
  medianMs: number
  /** Median process CPU time (user + system) per load: less sensitive to a busy machine than wall time. */
  cpuMedianMs: number
  minMs: number
  maxMs: number
  phasesMs: { parse: number; schema: number; rules: number; normalize: number }
  /** Whether the text took the js-yaml fast path (positions built only on demand). */
  fastPath: boolean
  /** Whether anything asked for positions during the phase runs (it should not, on a valid file). */
  positionsBuilt: boolean
}

async function measure(name: string, file: string, text: string): Promise<Case> {
  let t0 = performance.now()
  const first = await loadConfigFile(file)
  const firstMs = performance.now() - t0
  if (!first.ok) throw new Error(`${name} does not validate: ${JSON.stringify(first.diagnostics.slice(0, 3))}`)
  for (let i = 0; i < WARMUP; i++) await loadConfigFile(file)
  const times: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const c0 = process.cpuUsage()
    t0 = performance.now()
    await loadConfigFile(file)
    times.push(performance.now() - t0)
    const c = process.cpuUsage(c0)
    cpu.push((c.user + c.system) / 1000)
  }
  // Where the time goes (median of the same number of runs per phase).
  const phase = { parse: [] as number[], schema: [] as number[], rules: [] as number[], normalize: [] as number[] }
  let fastPath = true
  let positionsBuilt = false
  for (let i = 0; i < RUNS; i++) {
    resetParseCaches() // as loadConfigText does: nothing carries over between loads
    let t = performance.now()
    const p = parseConfigText(text, file)
    phase.parse.push(performance.now() - t)
    if (!p.ok) throw new Error('parse failed')
    t = performance.now()
    checkSchema(p.data)
    phase.schema.push(performance.now() - t)
    t = performance.now()
    checkRules(p.data, p.positions)
    phase.rules.push(performance.now() - t)
    t = performance.now()
    normalize(p.data)
    phase.normalize.push(performance.now() - t)
    if (p.positions instanceof LazyPositions) positionsBuilt ||= p.positions.built
    else fastPath = false
  }
  return {
    name,
    file: relative(root, file) || file,
    bytes: Buffer.byteLength(text),
    firstMs: round(firstMs),
    medianMs: round(median(times)),
    cpuMedianMs: round(median(cpu)),
    minMs: round(Math.min(...times)),
    maxMs: round(Math.max(...times)),
    phasesMs: { parse: round(median(phase.parse)), schema: round(median(phase.schema)), rules: round(median(phase.rules)), normalize: round(median(phase.normalize)) },
    fastPath,
    positionsBuilt,
  }
}

async function main(): Promise<number> {
  const candidates = [join(root, 'quicether.example.yaml'), ...readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.yaml')).map((f) => join(root, 'examples', f))]
  const largest = candidates.sort((a, b) => statSync(b).size - statSync(a).size)[0]!
  const dir = mkdtempSync(join(tmpdir(), 'qe-bench-'))
  try {
    const generatedText = generateConfig({ routes: 1000, rules: 500, peers: 100 })
    const generated = join(dir, 'generated.yaml')
    writeFileSync(generated, generatedText)
    const cases = [
      await measure('largest example', largest, readFileSync(largest, 'utf8')),
      await measure('generated: 1,000 routes, 500 rules, 100 peers', generated, generatedText),
    ]
    const gen = cases[1]!
    const pass = gen.medianMs < TARGET_MS
    const report = { node: process.version, cpus: availableParallelism(), loadavg: loadavg().map(round), runs: RUNS, warmup: WARMUP, targetMs: TARGET_MS, pass, cases }
    process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    if (!jsonOnly) {
      const rows = cases.map((c) => [c.name, `${(c.bytes / 1024).toFixed(1)} KiB`, c.firstMs.toFixed(2), c.medianMs.toFixed(2), c.cpuMedianMs.toFixed(2), `${c.minMs.toFixed(2)}-${c.maxMs.toFixed(2)}`, `${c.phasesMs.parse}/${c.phasesMs.schema}/${c.phasesMs.rules}/${c.phasesMs.normalize}`, c.fastPath ? 'js-yaml' : 'yaml'])
      const head = ['config', 'size', 'first ms', 'median ms', 'cpu ms', 'range ms', 'parse/schema/rules/normalize ms', 'parser']
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
      const line = (r: string[]): string => r.map((x, i) => x.padEnd(widths[i]!)).join('  ')
      process.stdout.write(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`)
      process.stdout.write(`\ntarget: generated config < ${TARGET_MS} ms (median, warm): ${pass ? 'PASS' : 'FAIL'} (${gen.medianMs} ms)\n`)
      process.stdout.write(`'first' includes compiling the schema (once per process); load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs\n`)
    }
    return pass ? 0 : 1
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// Run only when executed, not when a test imports generateConfig.
if (process.argv[1] && resolve(process.argv[1]).replace(/\.ts$/, '') === fileURLToPath(import.meta.url).replace(/\.ts$/, '')) {
  main().then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`bench/validate: ${err instanceof Error ? err.message : String(err)}\n`)
      process.exitCode = 2
    },
  )
}
