/**
 * Discovery at internet scale, simulated: `npx tsx bench/discovery.ts
 * [--nodes 200] [--lookups 20] [--seeds 3] [--seed S] [--idle-seconds 20]
 * [--json] [--out FILE]`. No root; loopback only.
 *
 * `--nodes` private DHT nodes (`src/discovery/dht.ts`, the daemon's own) in
 * this one process on 127.0.0.1, each seeded only by `--seeds` bootstrap
 * nodes drawn by the seeded generator (the seed is printed; `--seed`
 * replays a run). Every node publishes one signed BEP 44 record (a member
 * record's size); then every node looks up the records of `--lookups` other
 * nodes drawn by the generator, all nodes at once. It prints:
 * - the wall time until every node found its records, per-lookup p50, p99
 *   and max, and the lookups that failed (no record, or not the newest);
 * - DHT datagrams sent per lookup (what a lookup costs, and how it grows:
 *   the projection to 10,000 nodes in README assumes O(log n));
 * - DHT datagrams per node per minute at idle (`--idle-seconds` measured,
 *   scaled to a minute).
 * Every node shares 127.0.0.1, so the per-source flood limit is lifted here
 * (it keys on the source address).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { Dht } from '../src/discovery/dht.js'
import { signItem, type SignedItem } from '../src/discovery/bep44.js'
import { silentLogger } from '../src/log.js'

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : def
}
const NODES = flag('nodes', 200)
const LOOKUPS = flag('lookups', 20)
const SEEDS = flag('seeds', 3)
const IDLE_S = flag('idle-seconds', 20)
const SEED = flag('seed', Math.floor(Math.random() * 2 ** 31))
const JSON_OUT = process.argv.includes('--json')
const outIdx = process.argv.indexOf('--out')
const OUT = outIdx >= 0 ? process.argv[outIdx + 1] : null

/** mulberry32: a small seeded generator, so a run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function pick(r: () => number, n: number, count: number, not: number): number[] {
  const out = new Set<number>()
  while (out.size < Math.min(count, n - 1)) {
    const i = Math.floor(r() * n)
    if (i !== not) out.add(i)
  }
  return [...out]
}

function pct(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s.length ? (s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number) : NaN
}

const sentTotal = (dhts: Dht[]) => dhts.reduce((a, d) => a + d.stats().packetsOut, 0)

async function main(): Promise<void> {
  const r = rng(SEED)
  const salt = randomBytes(16)
  const seedIdx = pick(r, NODES, SEEDS, -1)
  const dhts: Dht[] = []
  const items: SignedItem[] = []
  const lift = { maxQueriesPerSecondPerSource: 1_000_000 }
  // The bootstrap nodes first (each seeded by the ones before it), then everyone else from them.
  const ports: { host: string; port: number }[] = []
  for (let i = 0; i < NODES; i++) dhts.push(null as unknown as Dht)
  for (const i of seedIdx) {
    const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [...ports], rendezvous: true, ...lift }, { log: silentLogger })
    await d.start()
    dhts[i] = d
    ports.push({ host: '127.0.0.1', port: d.port })
  }
  const t0 = Date.now()
  for (let i = 0; i < NODES; i++) {
    if (dhts[i]) continue
    const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: ports, rendezvous: false, ...lift }, { log: silentLogger })
    await d.start()
    dhts[i] = d
  }
  // Let the routing tables fill (each node's bootstrap walk), then publish.
  await new Promise((res) => setTimeout(res, 3000))
  const joinMs = Date.now() - t0
  for (let i = 0; i < NODES; i++) {
    const { privateKey } = generateKeyPairSync('ed25519')
    items.push(signItem(privateKey, salt, 1, randomBytes(900)))
  }
  const tp = Date.now()
  const puts = await Promise.all(dhts.map((d, i) => d.put(items[i] as SignedItem)))
  const putMs = Date.now() - tp
  const unstored = puts.filter((p) => p.stored === 0).length

  // Every node looks up LOOKUPS others, all nodes at once.
  const plan = dhts.map((_, i) => pick(r, NODES, LOOKUPS, i))
  const before = sentTotal(dhts)
  const times: number[] = []
  let failed = 0
  const tl = Date.now()
  await Promise.all(
    dhts.map(async (d, i) => {
      for (const j of plan[i] as number[]) {
        const want = items[j] as SignedItem
        const s = Date.now()
        const got = await d.get(want.k, salt)
        times.push(Date.now() - s)
        if (!got || got.seq !== want.seq || !got.v.equals(want.v)) failed++
      }
    }),
  )
  const lookupWallMs = Date.now() - tl
  const lookups = NODES * Math.min(LOOKUPS, NODES - 1)
  const perLookup = (sentTotal(dhts) - before) / lookups

  const idleBefore = sentTotal(dhts)
  await new Promise((res) => setTimeout(res, IDLE_S * 1000))
  const idlePerNodePerMin = ((sentTotal(dhts) - idleBefore) / NODES) * (60 / IDLE_S)
  for (const d of dhts) await d.stop()

  const report = {
    seed: SEED,
    nodes: NODES,
    bootstrap_nodes: SEEDS,
    lookups_per_node: LOOKUPS,
    join_ms: joinMs,
    publish_ms: putMs,
    records_not_stored: unstored,
    all_found_ms: lookupWallMs,
    lookup_ms: { p50: pct(times, 0.5), p99: pct(times, 0.99), max: Math.max(...times) },
    lookups,
    lookups_failed: failed,
    datagrams_per_lookup: Math.round(perLookup * 10) / 10,
    idle_datagrams_per_node_per_minute: Math.round(idlePerNodePerMin * 10) / 10,
    idle_measured_s: IDLE_S,
  }
  if (OUT) writeFileSync(OUT, JSON.stringify(report, null, 2) + '\n')
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n')
    return
  }
  const rows: [string, string][] = [
    [`seed`, String(SEED)],
    [`nodes / bootstrap nodes`, `${NODES} / ${SEEDS}`],
    [`every node found ${LOOKUPS} records`, `${lookupWallMs} ms (all ${NODES} nodes at once)`],
    [`per lookup p50 / p99 / max`, `${report.lookup_ms.p50} / ${report.lookup_ms.p99} / ${report.lookup_ms.max} ms`],
    [`lookups failed`, `${failed} of ${lookups}`],
    [`datagrams sent per lookup`, String(report.datagrams_per_lookup)],
    [`idle datagrams per node per minute`, `${report.idle_datagrams_per_node_per_minute} (${IDLE_S} s measured)`],
    [`records not stored anywhere`, String(unstored)],
  ]
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(38)} ${v}\n`)
  process.stdout.write(JSON.stringify(report) + '\n')
}

await main()
