import t from 'tap'
import { executePlan } from '../../src/reconcile/execute.js'
import { diff } from '../../src/state/diff.js'
import type { KernelState, Route } from '../../src/state/types.js'
import { NetlinkError } from '../../src/system/errors.js'
import { FakeAdapter } from './fake-adapter.js'

const route = (dst: string): Route => ({ family: 4, table: 5280, dst, type: 'unicast', dev: 'qe0', gateway: null, metric: 0, protocol: 113, scope: 'link' })
const state = (routes: Route[]): KernelState => ({ links: [], addresses: [], routes, rules: [], sysctls: {} })
const opts = { window: 4, attempts: 1, failAt: null, continueOnError: false }

function fake(): FakeAdapter {
  const f = new FakeAdapter()
  f.addLink('qe0')
  return f
}

t.test('all actions of a plan run; at most `window` are in flight', async (t) => {
  const f = fake()
  let inFlight = 0
  let peak = 0
  const orig = f.addRoute.bind(f)
  f.addRoute = async (r) => {
    inFlight++
    peak = Math.max(peak, inFlight)
    await new Promise((res) => setTimeout(res, 1))
    inFlight--
    return orig(r)
  }
  const plan = diff(state(Array.from({ length: 20 }, (_, i) => route(`10.0.${i}.0/24`))), state([]))
  const out = await executePlan(f, plan, opts)
  t.equal(out.applied, 20)
  t.same(out.failures, [])
  t.equal(peak, 4)
})

t.test('the first failure stops the run (no new actions start); with continueOnError all run', async (t) => {
  const f = fake()
  f.failWith = (_m, what) => (what === '10.0.3.0/24' ? new NetlinkError('add route', 'EINVAL') : null)
  const plan = diff(state(Array.from({ length: 20 }, (_, i) => route(`10.0.${i}.0/24`))), state([]))
  const out = await executePlan(f, plan, { ...opts, window: 1 })
  t.equal(out.failures.length, 1)
  const failed = out.failures[0]?.action
  t.equal(failed?.kind === 'route' ? failed.route.dst : null, '10.0.3.0/24')
  t.equal(out.applied, 3)
  const f2 = fake()
  f2.failWith = f.failWith
  const all = await executePlan(f2, plan, { ...opts, continueOnError: true })
  t.equal(all.applied, 19)
  t.equal(all.failures.length, 1)
})

t.test('failAt fails exactly the n-th action, before it reaches the kernel', async (t) => {
  const f = fake()
  const plan = diff(state([route('10.0.1.0/24'), route('10.0.2.0/24'), route('10.0.3.0/24')]), state([]))
  const out = await executePlan(f, plan, { ...opts, window: 1, failAt: 2 })
  t.equal(out.failures[0]?.index, 1)
  t.equal(out.failures[0]?.error.code, 'QE_INJECTED_FAULT')
  t.same(f.calls, ['addRoute 10.0.1.0/24'])
})

t.test('deleting what is already gone counts as done (deletes are idempotent)', async (t) => {
  const f = fake()
  const plan = diff(state([]), state([route('10.0.1.0/24')]))
  const out = await executePlan(f, plan, opts)
  t.same(out.failures, [])
  t.equal(out.applied, 1)
})

t.test('an error that is not a QeError is reported as a bug, never retried', async (t) => {
  const f = fake()
  f.failWith = () => new TypeError('boom')
  const plan = diff(state([route('10.0.1.0/24')]), state([]))
  const out = await executePlan(f, plan, { ...opts, attempts: 5 })
  t.same(out.failures[0]?.error, { code: 'QE_BUG', message: 'boom', retryable: false })
  t.equal(f.calls.length, 1)
})
