/**
 * Discovery bench: `node --import tsx bench/discovery.ts [--nodes 200] [--lookups 20]
 * [--seeds 3] [--seed S] [--idle-seconds 20] [--json] [--out FILE]`. No root.
 *
 * `--nodes` Dht nodes in this one process, all on 127.0.0.1 (ephemeral
 * ports; nothing leaves loopback). `--seeds` of them, chosen by the seeded
 * generator, are the bootstrap nodes (rendezvous on); every other node is
 * seeded from all of them. Each node publishes one signed item (put: the K
 * closest nodes + the rendezvous); then every node looks up the items of
 * `--lookups` others chosen by the generator, one after the other, all nodes
 * at once. Measured:
 * - wall time until every node has found all of its records;
 * - per lookup: latency p50/p99/max, failures (null or not the item put),
 *   nodes that answered (k-rpc's count; the mean is the O(log n) figure);
 *   then 100 of the same lookups one at a time, for the latency without the
 *   whole network's lookups queueing on this one process's CPU;
 * - idle: DHT datagrams per node per minute over `--idle-seconds` of rest
 *   after the lookups, scaled to a minute; and the figure the library's own
 *   maintenance gives over a longer time (it pings its whole routing table
 *   when the table has not changed for 15 min), projected from the mean
 *   table size because a short window cannot see it.
 * The seed is printed: `--seed` replays a run.
 */
import { generateKeyPairSync } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { signItem, type SignedItem } from '../src/discovery/bep44.js'
import { Dht } from '../src/discovery/dht.js'
import { silentLogger } from '../src/log.js'

/** bittorrent-dht 11.0.12: every ~1-1.5 min it checks; after 15 min without a table change it pings every node in it. */
const BUCKET_REFRESH_MIN = 15 + 1.25
/** Lookups timed one at a time after the concurrent phase. */
const ALONE_LOOKUPS = 100

interface Report {
  seed: number
  nodes: number
  seeds: number
  lookupsPerNode: number
  startMs: number
  publish: { wallMs: number; storedMean: number; storedMin: number; announcedMin: number }
  lookup: {
    wallMs: number
    total: number
    failed: number
    p50Ms: number
    p99Ms: number
    maxMs: number
    meanVisited: number
    log2Nodes: number
    /** Lookups one at a time after the load (nothing else running in the process). */
    alone: { count: number; failed: number; p50Ms: number; p99Ms: number; maxMs: number }
  }
  idle: { seconds: number; sentPerNodePerMin: number; inOutPerNodePerMin: number; meanTableSize: number; projectedSentPerNodePerMin: number }
  refusals: { floodDropped: number; badItems: number; blockedSends: number; malformed: number; handlerErrors: number }
  node: string
}

/** mulberry32: small, seedable, good enough to pick nodes. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

function pick(rand: () => number, n: number, count: number, exclude: number): number[] {
  const out = new Set<number>()
  while (out.size < Math.min(count, n - 1)) {
    const i = Math.floor(rand() * n)
    if (i !== exclude) out.add(i)
  }
  return [...out]
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Runs `fn` over `items`, `width` at a time. */
async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T)
    }),
  )
}

async function run(opts: { nodes: number; lookups: number; seeds: number; seed: number; idleSeconds: number }): Promise<Report> {
  const rand = rng(opts.seed)
  const n = opts.nodes
  const seedIdx = pick(rand, n, opts.seeds, -1)
  const isSeed = new Set(seedIdx)
  const dhts: Dht[] = new Array<Dht>(n)
  const t0 = performance.now()
  try {
    // Seeds first, each seeded from the ones before it; then everyone else from all seeds, in waves.
    const seedAddrs: { host: string; port: number }[] = []
    for (const i of seedIdx) {
      const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: [...seedAddrs], rendezvous: true }, { log: silentLogger })
      await d.start()
      dhts[i] = d
      seedAddrs.push({ host: '127.0.0.1', port: d.port })
    }
    const rest = Array.from({ length: n }, (_, i) => i).filter((i) => !isSeed.has(i))
    for (let w = 0; w < rest.length; w += 25) {
      await Promise.all(
        rest.slice(w, w + 25).map(async (i) => {
          const d = new Dht({ address: '127.0.0.1', port: 0, bootstrap: seedAddrs, rendezvous: false }, { log: silentLogger })
          await d.start()
          dhts[i] = d
        }),
      )
      await sleep(200)
    }
    await sleep(2000) // the last wave's bootstrap lookups
    const startMs = Math.round(performance.now() - t0)

    // Publish: one item per node.
    const salt = Buffer.from('bench-net')
    const items: SignedItem[] = dhts.map((_, i) => signItem(generateKeyPairSync('ed25519').privateKey, salt, 1_700_000_000_000 + i, Buffer.from(`record of node ${i}`.padEnd(160, '.'))))
    const stored: number[] = []
    const announced: number[] = []
    const p0 = performance.now()
    await pool(
      dhts.map((_, i) => i),
      50,
      async (i) => {
        const r = await dhts[i]!.put(items[i]!)
        stored.push(r.stored)
        announced.push(r.announced)
      },
    )
    const publishMs = Math.round(performance.now() - p0)

    // Lookups: every node, its `lookups` others, one after the other; all nodes at once.
    const plans = dhts.map((_, i) => pick(rand, n, opts.lookups, i))
    const before = dhts.map((d) => d.stats())
    const lat: number[] = []
    let failed = 0
    let failedAlone = 0
    const l0 = performance.now()
    await Promise.all(
      dhts.map(async (d, i) => {
        for (const j of plans[i]!) {
          const want = items[j]!
          const s = performance.now()
          const got = await d.get(want.k, want.salt)
          lat.push(performance.now() - s)
          if (!got || got.seq !== want.seq || !got.v.equals(want.v)) failed++
        }
      }),
    )
    const lookupMs = Math.round(performance.now() - l0)
    const after = dhts.map((d) => d.stats())
    const lookups = after.reduce((s, x, i) => s + x.lookups - (before[i]?.lookups ?? 0), 0)
    const visited = after.reduce((s, x, i) => s + x.lookupVisited - (before[i]?.lookupVisited ?? 0), 0)
    lat.sort((a, b) => a - b)
    // The same lookups one at a time: latency without 200 nodes' lookups sharing this process's CPU.
    const alone: number[] = []
    for (let x = 0; x < ALONE_LOOKUPS; x++) {
      const i = Math.floor(rand() * n)
      const j = plans[i]![Math.floor(rand() * plans[i]!.length)]!
      const s = performance.now()
      const got = await dhts[i]!.get(items[j]!.k, salt)
      alone.push(performance.now() - s)
      if (!got) failedAlone++
    }
    alone.sort((a, b) => a - b)

    // Idle: let the last replies and timeouts drain, then count.
    await sleep(3000)
    const i0 = dhts.map((d) => d.stats())
    await sleep(opts.idleSeconds * 1000)
    const i1 = dhts.map((d) => d.stats())
    const sent = i1.reduce((s, x, i) => s + x.packetsOut - (i0[i]?.packetsOut ?? 0), 0)
    const got = i1.reduce((s, x, i) => s + x.packetsIn - (i0[i]?.packetsIn ?? 0), 0)
    const perMin = 60 / opts.idleSeconds
    const meanTable = i1.reduce((s, x) => s + x.nodes, 0) / n
    const total = (f: (s: ReturnType<Dht['stats']>) => number): number => i1.reduce((s, x) => s + f(x), 0)
    return {
      seed: opts.seed,
      nodes: n,
      seeds: opts.seeds,
      lookupsPerNode: opts.lookups,
      startMs,
      publish: {
        wallMs: publishMs,
        storedMean: round(stored.reduce((s, x) => s + x, 0) / stored.length),
        storedMin: Math.min(...stored),
        announcedMin: Math.min(...announced),
      },
      lookup: {
        wallMs: lookupMs,
        total: lookups,
        failed,
        p50Ms: round(quantile(lat, 0.5)),
        p99Ms: round(quantile(lat, 0.99)),
        maxMs: round(lat[lat.length - 1] ?? 0),
        meanVisited: round(visited / Math.max(1, lookups)),
        log2Nodes: round(Math.log2(n)),
        alone: { count: ALONE_LOOKUPS, failed: failedAlone, p50Ms: round(quantile(alone, 0.5)), p99Ms: round(quantile(alone, 0.99)), maxMs: round(alone[alone.length - 1] ?? 0) },
      },
      idle: {
        seconds: opts.idleSeconds,
        sentPerNodePerMin: round((sent / n) * perMin, 2),
        inOutPerNodePerMin: round(((sent + got) / n) * perMin, 2),
        meanTableSize: round(meanTable),
        // A full-table ping every ~16 min: the node's own pings and their replies, plus the replies to everyone else's (as many).
        projectedSentPerNodePerMin: round((2 * meanTable) / BUCKET_REFRESH_MIN, 2),
      },
      refusals: {
        floodDropped: total((s) => s.floodDropped),
        badItems: total((s) => s.badItems),
        blockedSends: total((s) => s.blockedSends),
        malformed: total((s) => s.malformed),
        handlerErrors: total((s) => s.handlerErrors),
      },
      node: process.version,
    }
  } finally {
    await Promise.all(dhts.filter(Boolean).map((d) => d.stop()))
  }
}

function table(r: Report): string {
  const L = r.lookup
  return [
    `seed ${r.seed}: ${r.nodes} nodes on 127.0.0.1, ${r.seeds} bootstrap nodes, ${r.lookupsPerNode} lookups per node (started in ${r.startMs} ms)`,
    '',
    'publish (one item per node)           ' + `${r.publish.wallMs} ms wall; stored at ${r.publish.storedMean} nodes on average (min ${r.publish.storedMin}); announced to ≥ ${r.publish.announcedMin} rendezvous`,
    'every node found its records          ' + `${L.wallMs} ms wall (${L.total} lookups)`,
    'per lookup, all nodes at once         ' + `p50 ${L.p50Ms} ms · p99 ${L.p99Ms} ms · max ${L.maxMs} ms (one process: CPU-bound queueing)`,
    'per lookup, one at a time             ' + `p50 ${L.alone.p50Ms} ms · p99 ${L.alone.p99Ms} ms · max ${L.alone.maxMs} ms (${L.alone.count} lookups)`,
    'failed lookups                        ' + `${L.failed} of ${L.total} (one at a time: ${L.alone.failed} of ${L.alone.count})`,
    'nodes visited per lookup (mean)       ' + `${L.meanVisited} (log2 n = ${L.log2Nodes})`,
    'idle DHT packets per node per minute  ' + `${r.idle.sentPerNodePerMin} sent, ${r.idle.inOutPerNodePerMin} in+out (measured over ${r.idle.seconds} s, scaled to 60 s)`,
    '  … with the library\'s table refresh  ' + `≈ ${r.idle.projectedSentPerNodePerMin} sent (projected: 2 × mean table of ${r.idle.meanTableSize} nodes every ~${BUCKET_REFRESH_MIN} min)`,
    'refusals                              ' + Object.entries(r.refusals).map(([k, v]) => `${k} ${v}`).join(' · '),
  ].join('\n')
}

function positiveInt(s: string | undefined, flag: string, dflt: number, max: number): number {
  if (s === undefined) return dflt
  const n = Number(s)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag}: an integer from 1 to ${max}`)
  return n
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'nodes': { type: 'string' },
      'lookups': { type: 'string' },
      'seeds': { type: 'string' },
      'seed': { type: 'string' },
      'idle-seconds': { type: 'string' },
      'json': { type: 'boolean', default: false },
      'out': { type: 'string' },
    },
  })
  const nodes = positiveInt(values.nodes, '--nodes', 200, 2000)
  const opts = {
    nodes,
    lookups: positiveInt(values.lookups, '--lookups', 20, nodes - 1),
    seeds: positiveInt(values.seeds, '--seeds', 3, nodes),
    seed: values.seed !== undefined ? positiveInt(values.seed, '--seed', 0, 2 ** 32 - 1) : Math.floor(Math.random() * 2 ** 31),
    idleSeconds: positiveInt(values['idle-seconds'], '--idle-seconds', 20, 3600),
  }
  process.stderr.write(`bench/discovery: seed ${opts.seed} (replay with --seed ${opts.seed})\n`)
  const report = await run(opts)
  if (values.out) writeFileSync(values.out, JSON.stringify(report, null, 2) + '\n')
  if (values.json) console.log(JSON.stringify(report, null, 2))
  else console.log(`${JSON.stringify(report)}\n\n${table(report)}`)
}

await main()
