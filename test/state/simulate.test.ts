import t from 'tap'
import fc from 'fast-check'
import { diff } from '../../src/state/diff.js'
import { simulate } from '../../src/state/simulate.js'
import { routeKey, addressKey, ruleKey } from '../../src/state/keys.js'
import { normalizeRoute, normalizeRule } from '../../src/state/normalize.js'
import type { Address, KernelState, LinkState, Route, Rule } from '../../src/state/types.js'

// A small universe, so random desired and actual states overlap a lot.
const prefixes4 = ['10.0.0.0/16', '10.1.0.0/16', '192.168.5.0/24', '0.0.0.0/0']
const prefixes6 = ['fd00::/48', 'fd01::/48', '::/0']

const route: fc.Arbitrary<Route> = fc.oneof(
  fc.record({
    family: fc.constant(4 as const),
    table: fc.constantFrom(5280, 5281),
    dst: fc.constantFrom(...prefixes4),
    type: fc.constantFrom('unicast' as const, 'blackhole' as const),
    dev: fc.constantFrom('qe0', 'qe1', null),
    gateway: fc.constantFrom(null, '10.0.0.1'),
    metric: fc.constantFrom(0, 100),
    protocol: fc.constant(113),
    scope: fc.constantFrom('link' as const, 'universe' as const),
  }),
  fc.record({
    family: fc.constant(6 as const),
    table: fc.constant(5280),
    dst: fc.constantFrom(...prefixes6),
    type: fc.constant('unicast' as const),
    dev: fc.constantFrom('qe0', 'qe1'),
    gateway: fc.constantFrom(null, 'fd00::1'),
    metric: fc.constantFrom(0, 1024, 200),
    protocol: fc.constant(113),
    scope: fc.constant('universe' as const),
  }),
)

const address: fc.Arbitrary<Address> = fc.oneof(
  fc.record({ family: fc.constant(4 as const), dev: fc.constantFrom('qe0', 'qe1'), address: fc.constantFrom('10.0.0.5', '10.0.0.6'), prefixLen: fc.constantFrom(16, 24), noPrefixRoute: fc.boolean() }),
  fc.record({ family: fc.constant(6 as const), dev: fc.constantFrom('qe0'), address: fc.constantFrom('fd00::5', 'fd00::6'), prefixLen: fc.constant(48), noPrefixRoute: fc.boolean() }),
)

const rule: fc.Arbitrary<Rule> = fc.record({
  family: fc.constantFrom(4 as const, 6 as const),
  priority: fc.constantFrom(5280, 5281),
  table: fc.constantFrom(5280, 5281),
  src: fc.constant(null),
  dst: fc.constant(null),
  fwmark: fc.constantFrom(null, 0x51),
  fwmask: fc.constant(null),
  iif: fc.constantFrom(null, 'qe0'),
  oif: fc.constant(null),
  invert: fc.boolean(),
  protocol: fc.constant(113),
})

const links: fc.Arbitrary<LinkState[]> = fc.tuple(fc.constantFrom(1380, 1400, 1500), fc.boolean(), fc.constantFrom(1400, 1500), fc.boolean()).map(([m0, u0, m1, u1]) => [
  { name: 'qe0', mtu: m0, up: u0 },
  { name: 'qe1', mtu: m1, up: u1 },
])

const uniq = <T>(items: T[], key: (t: T) => string): T[] => [...new Map(items.map((x) => [key(x), x])).values()]

const state: fc.Arbitrary<KernelState> = fc
  .record({
    links,
    addresses: fc.array(address, { maxLength: 4 }),
    routes: fc.array(route, { maxLength: 8 }),
    rules: fc.array(rule, { maxLength: 4 }),
    forward: fc.constantFrom(null, '0', '1'),
  })
  .map(({ links, addresses, routes, rules, forward }) => ({
    links,
    addresses: uniq(addresses, addressKey),
    // The kernel holds one object per identity (after its own spelling: IPv6 metric 0 is 1024).
    routes: uniq(routes.map(normalizeRoute), routeKey),
    rules: uniq(rules.map(normalizeRule), ruleKey),
    sysctls: (forward === null ? {} : { 'net.ipv4.ip_forward': forward }) as Record<string, string>,
  }))

t.test('any plan converges: after applying diff(desired, actual), nothing is left to do', async (t) => {
  fc.assert(
    fc.property(state, state, (desired, actual) => {
      const after = simulate(actual, diff(desired, actual))
      const rest = diff(desired, after)
      if (rest.actions.length !== 0) throw new Error(`left over: ${rest.actions.map((a) => a.text).join('; ')}`)
    }),
    { numRuns: 500 },
  )
  t.pass('500 random pairs converged')
})

t.test('a plan touches each identity at most once and runs phases in order', async (t) => {
  fc.assert(
    fc.property(state, state, (desired, actual) => {
      const plan = diff(desired, actual)
      const seen = new Set<string>()
      let phase = -1
      for (const a of plan.actions) {
        if (a.phase < phase) throw new Error('phases out of order')
        phase = a.phase
        // A changed address is a delete plus an add of two different identities; routes are replaced in place.
        const id = `${a.kind}:${a.op === 'del' ? 'del' : 'put'}:${a.text.slice(2)}`
        if (seen.has(id)) throw new Error(`twice: ${a.text}`)
        seen.add(id)
      }
    }),
    { numRuns: 500 },
  )
  t.pass('500 random plans are well-formed')
})

t.test('diff of a state with itself is empty, however its lists are ordered', async (t) => {
  fc.assert(
    fc.property(state, (s) => {
      const shuffled = { ...s, routes: [...s.routes].reverse(), rules: [...s.rules].reverse(), addresses: [...s.addresses].reverse() }
      if (diff(s, shuffled).actions.length !== 0) throw new Error('self-diff not empty')
    }),
    { numRuns: 300 },
  )
  t.pass('300 random states')
})
