/**
 * bench/metrics: how long one Prometheus scrape takes to build, for 10, 100
 * and 1,000 peers (a third of them bonded over three uplinks), from fake
 * status snapshots whose counters grow between scrapes as a live node's do.
 * The bar (issue 17): a scrape of 100 peers in at most 10 ms. Each size is
 * scraped `--scrapes` times after a warm-up, 20 ms apart (a real Prometheus
 * scrapes every 15 s or so; back-to-back scrapes would time the garbage
 * collector of the previous ones); the table gives p50, p99 and the worst,
 * and the body size.
 *
 *   node --import tsx bench/metrics.ts [--scrapes 200] [--json]
 *
 * In the same process, the status snapshot alone (the daemon's part) is
 * timed beside the scrape, so the ratio says what the exporter adds.
 */
import { parseArgs } from 'node:util'
import { Metrics } from '../src/observe/metrics.js'
import { fakeStatus } from '../test/observe/fake-status.js'
import { percentile } from '../src/lab/traffic.js'

const { values } = parseArgs({ options: { scrapes: { type: 'string', default: '200' }, json: { type: 'boolean', default: false } } })
const scrapes = Math.max(10, Number(values.scrapes) || 200)
const BAR_MS = 10
const gapMs = 20

interface Row {
  peers: number
  series: number
  body_kb: number
  snapshot_ms_p50: number
  scrape_ms_p50: number
  scrape_ms_p99: number
  scrape_ms_max: number
}

async function measure(peers: number): Promise<Row> {
  let tick = 1
  const snapshot = () => fakeStatus({ peers, bondEvery: 3, uplinks: ['dsl', 'cable', 'lte'], tick })
  const m = new Metrics({ snapshot, version: 'bench' })
  for (let i = 0; i < 20; i++, tick++) await m.scrape()
  const times: number[] = []
  const snaps: number[] = []
  let body = ''
  for (let i = 0; i < scrapes; i++, tick++) {
    const s0 = performance.now()
    snapshot()
    snaps.push(performance.now() - s0)
    const t0 = performance.now()
    body = (await m.scrape()).body
    times.push(performance.now() - t0)
    // Prometheus scrapes every 15 s or so: leave the event loop a moment between scrapes, as a node has.
    await new Promise((r) => setTimeout(r, gapMs))
  }
  const r3 = (x: number) => Math.round(x * 1000) / 1000
  return {
    peers,
    series: body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length,
    body_kb: Math.round(Buffer.byteLength(body) / 1024),
    snapshot_ms_p50: r3(percentile(snaps, 0.5)),
    scrape_ms_p50: r3(percentile(times, 0.5)),
    scrape_ms_p99: r3(percentile(times, 0.99)),
    scrape_ms_max: r3(Math.max(...times)),
  }
}

const rows: Row[] = []
for (const n of [10, 100, 1000]) rows.push(await measure(n))
const hundred = rows.find((r) => r.peers === 100)!
const doc = { bench: 'metrics', date: new Date().toISOString(), scrapes, bar_ms: BAR_MS, rows, pass: hundred.scrape_ms_p99 <= BAR_MS }
const head = ['peers', 'series', 'body kB', 'snapshot p50 ms', 'scrape p50 ms', 'scrape p99 ms', 'worst ms']
const table = [head, ...rows.map((r) => [r.peers, r.series, r.body_kb, r.snapshot_ms_p50, r.scrape_ms_p50, r.scrape_ms_p99, r.scrape_ms_max].map(String))]
const w = head.map((_, i) => Math.max(...table.map((r) => r[i]!.length)))
const text = [
  `one scrape = one status snapshot + the exposition text; ${scrapes} scrapes per size, ${gapMs} ms apart, after 20 warm-up`,
  '',
  ...table.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')),
  '',
  `Bar (issue 17): scrape of 100 peers ≤ ${BAR_MS} ms (p99): ${doc.pass ? 'PASS' : 'FAIL'} (${hundred.scrape_ms_p99} ms, worst ${hundred.scrape_ms_max} ms)`,
].join('\n')
if (values.json) {
  process.stderr.write(text + '\n')
  process.stdout.write(JSON.stringify(doc, null, 2) + '\n')
} else process.stdout.write(text + '\n')
