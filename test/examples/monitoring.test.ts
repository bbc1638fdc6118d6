/**
 * examples/monitoring: the Prometheus config, the alerting rules and the
 * Grafana dashboard parse, carry the fields Prometheus and Grafana need, and
 * every metric their expressions use is one the exporter really serves (a
 * scrape of `Metrics` over a fake status snapshot), so a renamed family breaks
 * this test instead of an operator's dashboard.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { Metrics } from '../../src/observe/metrics.js'
import { fakeStatus } from '../observe/fake-status.js'

const DIR = new URL('../../examples/monitoring/', import.meta.url)
const read = (name: string): string => readFileSync(new URL(name, DIR), 'utf8')

interface Target { readonly expr?: unknown; readonly refId?: unknown; readonly datasource?: { readonly type?: unknown; readonly uid?: unknown } }
interface Panel {
  readonly id?: unknown
  readonly type?: unknown
  readonly title?: unknown
  readonly gridPos?: { readonly h?: unknown; readonly w?: unknown; readonly x?: unknown; readonly y?: unknown }
  readonly datasource?: { readonly type?: unknown; readonly uid?: unknown }
  readonly targets?: readonly Target[]
}
interface Dashboard {
  readonly title?: unknown
  readonly uid?: unknown
  readonly schemaVersion?: unknown
  readonly panels?: readonly Panel[]
  readonly __inputs?: readonly { name?: unknown; type?: unknown; pluginId?: unknown }[]
  readonly templating?: { readonly list?: readonly { name?: unknown; query?: unknown; definition?: unknown; datasource?: { uid?: unknown } }[] }
}
interface Rule { readonly alert?: unknown; readonly expr?: unknown; readonly for?: unknown; readonly labels?: Record<string, unknown>; readonly annotations?: Record<string, unknown> }
interface Rules { readonly groups?: readonly { name?: unknown; rules?: readonly Rule[] }[] }

const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' }
const PANEL_TYPES = new Set(['timeseries', 'stat', 'table', 'bargauge'])

const dashboard = JSON.parse(read('grafana-dashboard.json')) as Dashboard
const rules = parse(read('alerts.yml')) as Rules
const prometheus = parse(read('prometheus.yml')) as {
  global?: { scrape_interval?: unknown }
  rule_files?: unknown
  scrape_configs?: readonly { job_name?: unknown; scrape_interval?: unknown; static_configs?: readonly { targets?: readonly unknown[] }[] }[]
}

const panels = dashboard.panels ?? []
const alertRules = (rules.groups ?? []).flatMap((g) => g.rules ?? [])
const dashboardExprs = panels.flatMap((p) => (p.targets ?? []).map((x) => String(x.expr)))
const variableQueries = (dashboard.templating?.list ?? []).map((v) => (typeof v.query === 'string' ? v.query : String(v.definition)))
const alertExprs = alertRules.map((r) => String(r.expr))

/** Metric names an expression uses: quicether_…, process_… and nodejs_… words (not label names, not function names). */
function metricNames(expr: string): string[] {
  // Drop label matchers and legend-like strings so a label value never reads as a metric.
  const bare = expr.replace(/"[^"]*"/g, '""')
  return [...bare.matchAll(/\b(?:quicether|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0])
}

/** One real scrape: every family, with histogram and error samples. */
async function scrape(): Promise<{ names: Set<string>; types: Map<string, string> }> {
  const m = new Metrics({ snapshot: () => fakeStatus({ peers: 3, bondEvery: 2 }), version: '0.0.0-test' })
  m.observeApply('desired', true, 5, true)
  m.observeApply('desired', false, 5, true)
  const { body } = await m.scrape()
  const names = new Set<string>()
  const types = new Map<string, string>()
  for (const line of body.split('\n')) {
    const ty = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (ty) types.set(ty[1]!, ty[2]!)
    if (line === '' || line.startsWith('#')) continue
    names.add(/^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0])
  }
  return { names, types }
}

t.test('prometheus.yml scrapes the quicether job and loads the alerts', async (t) => {
  t.same(prometheus.rule_files, ['alerts.yml'])
  const job = (prometheus.scrape_configs ?? []).find((c) => c.job_name === 'quicether')
  t.ok(job, 'a scrape config with job_name quicether')
  t.equal(job?.scrape_interval ?? prometheus.global?.scrape_interval, '15s')
  t.ok(job?.static_configs?.some((s) => s.targets?.includes('127.0.0.1:9586')), 'the example target')
  t.match(read('prometheus.yml'), /metrics\.listen[\s\S]*no authentication/i, 'says metrics.listen must be reachable and has no auth')
})

t.test('the dashboard has what Grafana needs to import it', async (t) => {
  t.type(dashboard.title, 'string')
  t.type(dashboard.uid, 'string')
  t.ok((dashboard.uid as string).length > 0 && (dashboard.uid as string).length <= 40, 'uid of at most 40 characters')
  t.type(dashboard.schemaVersion, 'number')
  t.ok((dashboard.schemaVersion as number) >= 36, 'Grafana 10/11 schema')
  t.same(dashboard.__inputs?.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']])

  t.ok(panels.length >= 10, 'panels')
  const ids = panels.map((p) => p.id)
  t.ok(ids.every((id) => Number.isInteger(id)), 'integer ids')
  t.equal(new Set(ids).size, ids.length, 'unique panel ids')
  for (const p of panels) {
    const name = `panel ${String(p.id)} ${String(p.title)}`
    t.ok(PANEL_TYPES.has(String(p.type)), `${name}: type ${String(p.type)}`)
    t.type(p.title, 'string', `${name}: title`)
    const g = p.gridPos
    t.ok(g && [g.h, g.w, g.x, g.y].every((n) => Number.isInteger(n)), `${name}: gridPos h/w/x/y`)
    t.ok(g && (g.x as number) + (g.w as number) <= 24, `${name}: fits the 24 columns`)
    t.same(p.datasource, DS, `${name}: datasource \${DS_PROMETHEUS}`)
    t.ok((p.targets ?? []).length > 0, `${name}: targets`)
    const refIds = (p.targets ?? []).map((x) => x.refId)
    t.equal(new Set(refIds).size, refIds.length, `${name}: unique refIds`)
    for (const x of p.targets ?? []) {
      t.ok(typeof x.refId === 'string' && x.refId !== '', `${name}: refId`)
      t.ok(typeof x.expr === 'string' && x.expr !== '', `${name}: expr`)
      if (x.datasource) t.same(x.datasource, DS, `${name}: target datasource`)
    }
  }
  // Panels must not overlap (Grafana would move them around).
  const cells = new Set<string>()
  let overlap = 0
  for (const p of panels) {
    const g = p.gridPos as { h: number; w: number; x: number; y: number }
    for (let y = g.y; y < g.y + g.h; y++) for (let x = g.x; x < g.x + g.w; x++) {
      const k = `${x},${y}`
      if (cells.has(k)) overlap++
      cells.add(k)
    }
  }
  t.equal(overlap, 0, 'no overlapping panels')

  // Every datasource reference anywhere (panels, targets, variables) is the import's input.
  const refs: unknown[] = []
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk)
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'datasource' && (x as { type?: unknown } | null)?.type === 'prometheus') refs.push(x)
        walk(x)
      }
    }
  }
  walk(dashboard)
  t.ok(refs.length > panels.length, 'datasource references')
  t.ok(refs.every((r) => (r as { uid?: unknown }).uid === '${DS_PROMETHEUS}'), 'all of them use ${DS_PROMETHEUS}')

  // Each expression's brackets balance (a cheap guard against a broken edit).
  for (const e of [...dashboardExprs, ...alertExprs]) {
    const stack: string[] = []
    let ok = true
    for (const ch of e.replace(/"[^"]*"/g, '""')) {
      if ('([{'.includes(ch)) stack.push(ch)
      else if (')]}'.includes(ch) && stack.pop() !== '([{'[')]}'.indexOf(ch)]) ok = false
    }
    t.ok(ok && stack.length === 0, `balanced: ${e}`)
  }

  const vars = new Map((dashboard.templating?.list ?? []).map((v) => [v.name, v]))
  t.ok(vars.has('instance') && vars.has('peer'), 'instance and peer variables')
  t.match(String(vars.get('instance')?.definition), /label_values\(quicether_build_info, *instance\)/)
  t.match(String(vars.get('peer')?.definition), /label_values\(quicether_peer_[a-z_]+.*, *peer\)/)
  for (const v of vars.values()) t.same(v.datasource, DS, `variable ${String(v.name)}: datasource`)
  t.ok(dashboardExprs.some((e) => e.includes('$instance')), 'panels filter on $instance')
  t.ok(dashboardExprs.some((e) => e.includes('$peer')), 'panels filter on $peer')
})

t.test('every alert has expr, for, severity and annotations that say what to run', async (t) => {
  const names = alertRules.map((r) => r.alert)
  for (const want of ['QuicEtherPeerDown', 'QuicEtherPathDead', 'QuicEtherReconcileFailing', 'QuicEtherConfigNotApplied', 'QuicEtherNodeDown']) {
    t.ok(names.includes(want), want)
  }
  t.equal(new Set(names).size, names.length, 'unique alert names')
  for (const r of alertRules) {
    const name = String(r.alert)
    t.ok(typeof r.expr === 'string' && r.expr.trim() !== '', `${name}: expr`)
    t.match(String(r.for), /^\d+[smh]$/, `${name}: for`)
    t.type(r.labels?.severity, 'string', `${name}: severity`)
    t.type(r.annotations?.summary, 'string', `${name}: summary`)
    t.match(String(r.annotations?.description), /quicether (status|paths)|journalctl -u quicether|systemctl status quicether/, `${name}: says what to run`)
  }
  const expr = (n: string): string => String(alertRules.find((r) => r.alert === n)?.expr)
  t.match(expr('QuicEtherPeerDown'), /quicether_peer_up\s*==\s*0/)
  t.match(expr('QuicEtherPathDead'), /quicether_path_up\s*==\s*0/)
  t.match(expr('QuicEtherReconcileFailing'), /increase\(quicether_apply_errors_total\[10m\]\)\s*>\s*0/)
  t.match(expr('QuicEtherConfigNotApplied'), /quicether_config_errors\s*>\s*0/)
  t.match(expr('QuicEtherNodeDown'), /up\{job="quicether"\}\s*==\s*0/)
})

t.test('every metric the dashboard and the alerts use is in a real scrape', async (t) => {
  const { names, types } = await scrape()
  const used = new Map<string, string[]>()
  for (const [where, exprs] of [['dashboard', dashboardExprs], ['variables', variableQueries], ['alerts', alertExprs]] as const) {
    for (const e of exprs) for (const n of metricNames(e)) used.set(n, [...(used.get(n) ?? []), where])
  }
  t.ok(used.size >= 30, `the examples use many families (${used.size})`)
  t.ok([...used.keys()].some((n) => n.startsWith('process_')), 'process metrics used')
  t.ok([...used.keys()].some((n) => n.startsWith('nodejs_')), 'nodejs metrics used')
  for (const [name, where] of used) {
    // A histogram's series are family_bucket / _sum / _count; the family is what TYPE names.
    const family = name.replace(/_(bucket|sum|count)$/, '')
    if (family !== name && types.get(family) === 'histogram') {
      t.ok(names.has(name), `${name} (histogram ${family}, in ${[...new Set(where)].join(', ')}) is scraped`)
      continue
    }
    t.ok(types.has(name), `${name} (in ${[...new Set(where)].join(', ')}) is a family the exporter serves`)
    t.ok(names.has(name), `${name} has samples in the scrape`)
  }
  // rate()/increase() only over counters (or a histogram's _bucket/_sum/_count series): over a gauge they are wrong.
  for (const e of [...dashboardExprs, ...alertExprs]) {
    for (const m of e.matchAll(/\b(?:rate|irate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/g)) {
      const name = m[1]!
      const family = name.replace(/_(bucket|sum|count)$/, '')
      const ok = types.get(name) === 'counter' || (family !== name && types.get(family) === 'histogram')
      t.ok(ok, `rate/increase over ${name}: a counter (${types.get(name) ?? types.get(family) ?? 'unknown'})`)
    }
  }
  // The extraction itself: a label value or a function never reads as a metric.
  t.same(metricNames('histogram_quantile(0.9, sum by (le) (rate(quicether_apply_duration_seconds_bucket{peer="quicether_x"}[5m])))'),
    ['quicether_apply_duration_seconds_bucket'])
})
