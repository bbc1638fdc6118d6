import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { diff, inSync, PHASES } from '../../src/state/diff.js'
import { renderPlan } from '../../src/state/render.js'
import { simulate } from '../../src/state/simulate.js'
import type { ActualState, DesiredState, Route } from '../../src/state/types.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/state/', import.meta.url))
const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort()

function load(name: string): { desired: DesiredState; actual: ActualState; plan: string } {
  const read = (f: string): string => readFileSync(join(FIXTURES, name, f), 'utf8')
  return { desired: JSON.parse(read('desired.json')), actual: JSON.parse(read('actual.json')), plan: read('plan.txt') }
}

t.test('fixture cases exist', async (t) => {
  t.ok(cases.length >= 5, `found ${cases.join(', ')}`)
})

for (const name of cases) {
  t.test(`fixture ${name}: the plan renders as written in plan.txt`, async (t) => {
    const { desired, actual, plan } = load(name)
    t.equal(renderPlan(diff(desired, actual)), plan)
  })

  t.test(`fixture ${name}: applying the plan leaves nothing to do (idempotence)`, async (t) => {
    const { desired, actual } = load(name)
    const after = simulate(actual, diff(desired, actual))
    t.same(diff(desired, after).actions, [])
    t.ok(inSync(desired, after))
    // Applying an already-converged state is a no-op again.
    t.same(diff(desired, simulate(after, diff(desired, after))).actions, [])
  })
}

t.test('phases are non-decreasing through a plan', async (t) => {
  const { desired, actual } = load('mixed-changes')
  const phases = diff(desired, actual).actions.map((a) => a.phase)
  t.same(phases, [...phases].sort((a, b) => a - b))
})

t.test('deletes come before the addresses they need go, adds after the addresses come', async (t) => {
  const { desired, actual } = load('full-to-empty')
  const actions = diff(desired, actual).actions
  const lastRouteDel = Math.max(...actions.map((a, i) => (a.kind === 'route' ? i : -1)))
  const firstAddrDel = actions.findIndex((a) => a.kind === 'address')
  const firstRouteDel = actions.findIndex((a) => a.kind === 'route')
  const lastRuleDel = Math.max(...actions.map((a, i) => (a.kind === 'rule' ? i : -1)))
  t.ok(lastRuleDel < firstRouteDel, 'rules stop steering traffic before the routes go')
  t.ok(lastRouteDel < firstAddrDel, 'routes go before the addresses')
  const gw = actions.findIndex((a) => a.kind === 'route' && a.route.gateway !== null)
  const dev = actions.findIndex((a) => a.kind === 'route' && a.route.gateway === null)
  t.ok(gw < dev, 'a gateway route goes before the device routes its next hop may use')
})

t.test('link settings come first and rules last on the way up', async (t) => {
  const { desired, actual } = load('empty-to-full')
  const actions = diff(desired, actual).actions
  t.equal(actions[0]?.kind, 'sysctl')
  t.equal(actions[1]?.kind, 'link')
  t.equal(actions.at(-1)?.kind, 'rule')
  const firstRoute = actions.findIndex((a) => a.kind === 'route')
  const lastAddr = Math.max(...actions.map((a, i) => (a.kind === 'address' ? i : -1)))
  t.ok(lastAddr < firstRoute)
  t.equal(actions[1]?.phase, PHASES.link)
})

t.test('a changed route (same identity) is one replace, not a delete and an add', async (t) => {
  const { desired, actual } = load('mixed-changes')
  const plan = diff(desired, actual)
  const on192 = plan.actions.filter((a) => a.kind === 'route' && a.route.dst === '192.168.50.0/24')
  t.equal(on192.length, 1)
  t.equal(on192[0]?.op, 'replace')
  t.same(plan.summary, { add: 4, change: 2, del: 3 })
})

t.test('a missing desired link yields no action (validate reports it)', async (t) => {
  const { desired } = load('empty-to-full')
  const actual: ActualState = { links: [], addresses: [], routes: [], rules: [], sysctls: {}, foreignRoutes: [] }
  t.notOk(diff(desired, actual).actions.some((a) => a.kind === 'link'))
})

t.test('sysctls the desired state does not name are left alone', async (t) => {
  const base = load('in-sync')
  const actual = { ...base.actual, sysctls: { ...base.actual.sysctls, 'net.ipv4.conf.all.rp_filter': '2' } }
  t.same(diff(base.desired, actual).actions, [])
})

t.test('every action is marked live and carries its rendering', async (t) => {
  const { desired, actual } = load('mixed-changes')
  for (const a of diff(desired, actual).actions) {
    t.equal(a.live, true)
    t.match(a.text, /^[+~-] /)
  }
})

t.test('a plan is plain data: it survives a JSON round trip unchanged', async (t) => {
  const { desired, actual } = load('mixed-changes')
  const plan = diff(desired, actual)
  t.same(JSON.parse(JSON.stringify(plan)), plan)
})

t.test('10,000 routes diff into 10,000 ordered adds and converge', async (t) => {
  const routes: Route[] = Array.from({ length: 10_000 }, (_, i) => ({
    family: 4,
    table: 5280,
    dst: `10.${100 + (i >> 8)}.${i & 255}.0/24`,
    type: 'unicast',
    dev: 'qe0',
    gateway: null,
    metric: 200,
    protocol: 113,
    scope: 'link',
  }))
  const desired: DesiredState = { links: [], addresses: [], routes, rules: [], sysctls: {} }
  const actual: ActualState = { links: [], addresses: [], routes: [], rules: [], sysctls: {}, foreignRoutes: [] }
  const plan = diff(desired, actual)
  t.equal(plan.actions.length, 10_000)
  t.equal(plan.summary.add, 10_000)
  t.ok(inSync(desired, simulate(actual, plan)))
})
