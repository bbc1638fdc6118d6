import t from 'tap'
import fc from 'fast-check'
import { loadConfigText, type Config } from '../../src/config/index.js'
import { diffEngine, engineFromConfig, engineStateEqual, normalizeEngineState, type EngineState } from '../../src/state/engine.js'

const key = (n: number) => Buffer.alloc(32, n).toString('base64')
const SELF = key(1)

function config(extra = ''): Config {
  const r = loadConfigText(
    `
node: { name: a }
network: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }
peers:
  - { name: me, key: "${SELF}" }
  - { name: c, key: "${key(3)}" }
  - { name: b, key: "${key(2)}" }
${extra}`,
    'engine.yaml',
  )
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics))
  return r.config
}

t.test('engineFromConfig: allowed keys sorted without our own, FIB sorted, uplinks in order, classes, accept, reorder', async (t) => {
  const cfg = config(`
interfaces: [ { name: wwan0, weight: 2, role: backup, priority: 3, cost: 20, bandwidth: { up: 20Mbps } }, { name: eth0, weight: 3 } ]
multipath:
  mode: aggregate
  accept: true
  reorder: { max-delay: 150ms, max-bytes: 1MiB }
  traffic-classes:
    - { name: voice, match: { dscp: [EF] } }
    - { name: ssh, match: { ports: [22] }, path: eth0 }
`)
  const s = engineFromConfig(cfg, { selfKey: SELF, fib: [{ prefix: '10.9.0.0/16', peer: key(3) }, { prefix: '10.1.0.0/16', peer: key(2) }] })
  t.same(s.allowedPeers, [key(2), key(3)].sort())
  t.notOk(s.allowedPeers.includes(SELF), 'never our own key')
  t.same(s.routes.map((r) => r.prefix), ['10.1.0.0/16', '10.9.0.0/16'])
  t.same(s.uplinks, [
    { name: 'wwan0', weight: 2, role: 'backup', priority: 3, cost: 20, rateBps: 2_500_000 },
    { name: 'eth0', weight: 3, role: 'primary', priority: 100, cost: 0 },
  ])
  t.same(s.classes, [{ dscp: [46], ports: [] }, { dscp: [], ports: [[22, 22]], uplink: 'eth0' }])
  t.equal(s.acceptBonded, true)
  t.same(s.reorder, { maxDelayMs: 150, maxBytes: 1024 * 1024 })
})

t.test('diffEngine names what changes, for people; equal states give nothing', async (t) => {
  const a = engineFromConfig(config(), { selfKey: SELF, fib: [] })
  t.same(diffEngine(a, a), [])
  const fresh = diffEngine(a, null, (k) => (k === key(2) ? 'b' : 'c'))
  t.same(fresh.map((x) => x.text), ['+ engine peer b', '+ engine peer c'], 'a fresh engine gets everything')

  const more = config(`  - { name: d, key: "${key(4)}" }\ninterfaces: [ { name: eth0 } ]\nmultipath: { accept: true }`)
  const b = engineFromConfig(more, { selfKey: SELF, fib: [{ prefix: '10.1.0.0/16', peer: key(2) }] })
  const texts = diffEngine(b, a, (k) => `k${Buffer.from(k, 'base64')[0]}`).map((x) => x.text)
  t.same(texts, ['+ engine peer k4', '+ engine route 10.1.0.0/16 → k2', '+ engine uplink eth0 (primary, weight 1, priority 100)', '~ engine setting multipath.accept false → true'])
  const back = diffEngine(a, b, (k) => `k${Buffer.from(k, 'base64')[0]}`).map((x) => x.text)
  t.same(back, ['- engine peer k4', '- engine route 10.1.0.0/16 → k2', '- engine uplink eth0', '~ engine setting multipath.accept true → false'])

  const moved = { ...b, routes: [{ prefix: '10.1.0.0/16', peer: key(3) }] }
  t.match(diffEngine(moved, b, (k) => `k${Buffer.from(k, 'base64')[0]}`)[0]?.text, '~ engine route 10.1.0.0/16 → k3 (was k2)')
  const reorder = { ...b, reorder: { maxDelayMs: 50, maxBytes: b.reorder.maxBytes } }
  t.match(diffEngine(reorder, b).map((x) => x.text), [/~ engine setting multipath\.reorder 150 ms .* → 50 ms/])
})

t.test('classes compare by position: first match wins, so a reorder is a change', async (t) => {
  const two = config(`multipath:\n  traffic-classes:\n    - { name: v, match: { dscp: [EF] } }\n    - { name: s, match: { max-packet-size: 256 } }\n`)
  const swapped = config(`multipath:\n  traffic-classes:\n    - { name: s, match: { max-packet-size: 256 } }\n    - { name: v, match: { dscp: [EF] } }\n`)
  const a = engineFromConfig(two, { selfKey: SELF, fib: [] })
  const b = engineFromConfig(swapped, { selfKey: SELF, fib: [] })
  t.same(diffEngine(b, a).map((x) => `${x.table} ${x.op}`), ['class change', 'class change'])
})

const arbState: fc.Arbitrary<EngineState> = fc.record({
  allowedPeers: fc.uniqueArray(fc.integer({ min: 2, max: 60 }).map(key), { maxLength: 6 }),
  routes: fc.uniqueArray(fc.record({ prefix: fc.integer({ min: 0, max: 255 }).map((n) => `10.${n}.0.0/16`), peer: fc.integer({ min: 2, max: 60 }).map(key) }), { maxLength: 6, selector: (r) => r.prefix }),
  uplinks: fc.uniqueArray(
    fc.record(
      { name: fc.constantFrom('eth0', 'eth1', 'wwan0', 'wlan0'), weight: fc.integer({ min: 1, max: 5 }), role: fc.constantFrom('primary' as const, 'backup' as const), priority: fc.integer({ min: 0, max: 3 }), cost: fc.integer({ min: 0, max: 255 }), rateBps: fc.integer({ min: 1, max: 1e8 }) },
      { requiredKeys: ['name', 'weight', 'role', 'priority', 'cost'] },
    ),
    { maxLength: 4, selector: (u) => u.name },
  ),
  classes: fc.array(
    fc.record(
      {
        dscp: fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 3 }),
        ports: fc.array(fc.integer({ min: 1, max: 9 }).map((p): [number, number] => [p, p]), { maxLength: 2 }),
        maxPacketSize: fc.integer({ min: 1, max: 1500 }),
        uplink: fc.constantFrom('eth0', 'wwan0'),
      },
      { requiredKeys: ['dscp', 'ports'] },
    ),
    { maxLength: 3 },
  ),
  acceptBonded: fc.boolean(),
  reorder: fc.record({ maxDelayMs: fc.integer({ min: 1, max: 1000 }), maxBytes: fc.integer({ min: 65536, max: 1 << 24 }) }),
})

t.test('property: diff is empty exactly when the normalized states are equal', async (t) => {
  fc.assert(
    fc.property(arbState, arbState, (a, b) => {
      const same = engineStateEqual(a, b)
      const texts = diffEngine(normalizeEngineState(a), normalizeEngineState(b))
      return same === (texts.length === 0)
    }),
    { numRuns: 500 },
  )
  fc.assert(fc.property(arbState, (a) => diffEngine(normalizeEngineState(a), normalizeEngineState(a)).length === 0 && engineStateEqual(a, normalizeEngineState(a))))
  t.pass('held for random states')
})

/** One change a person could make to a state: every field the engine enforces. */
const arbMutation = fc.oneof(
  fc.constant((s: EngineState): EngineState => ({ ...s, allowedPeers: [...s.allowedPeers, key(99)] })),
  fc.constant((s: EngineState): EngineState => ({ ...s, routes: [...s.routes, { prefix: '172.16.0.0/12', peer: key(99) }] })),
  fc.constant((s: EngineState): EngineState => ({ ...s, routes: s.routes.map((r, i) => (i === 0 ? { ...r, peer: key(98) } : r)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: [...s.uplinks, { name: 'lte9', weight: 1, role: 'primary', priority: 0, cost: 0 }] })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: s.uplinks.map((u, i) => (i === 0 ? { ...u, weight: u.weight + 1 } : u)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: s.uplinks.map((u, i) => (i === 0 ? { ...u, role: u.role === 'primary' ? 'backup' : 'primary' } : u)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: s.uplinks.map((u, i) => (i === 0 ? { ...u, priority: u.priority + 1 } : u)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: [...s.uplinks].reverse() })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: s.uplinks.map((u, i) => (i === 0 ? { ...u, cost: (u.cost + 1) % 256 } : u)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, uplinks: s.uplinks.map((u, i) => (i === 0 ? { ...u, rateBps: (u.rateBps ?? 0) + 1 } : u)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, classes: [...s.classes, { dscp: [46], ports: [] }] })),
  fc.constant((s: EngineState): EngineState => ({ ...s, classes: s.classes.map((k, i) => (i === 0 ? { ...k, maxPacketSize: (k.maxPacketSize ?? 0) + 1 } : k)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, classes: s.classes.map((k, i) => (i === 0 ? { ...k, uplink: k.uplink === 'eth0' ? 'wwan0' : 'eth0' } : k)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, classes: s.classes.map((k, i) => (i === 0 ? { ...k, ports: [...k.ports, [443, 443]] } : k)) })),
  fc.constant((s: EngineState): EngineState => ({ ...s, acceptBonded: !s.acceptBonded })),
  fc.constant((s: EngineState): EngineState => ({ ...s, reorder: { ...s.reorder, maxDelayMs: s.reorder.maxDelayMs + 1 } })),
  fc.constant((s: EngineState): EngineState => ({ ...s, reorder: { ...s.reorder, maxBytes: s.reorder.maxBytes + 1 } })),
)

t.test('property: any one change to any table is seen (an empty diff is what lets the reconciler skip a set)', async (t) => {
  fc.assert(
    fc.property(arbState, arbMutation, (a, mutate) => {
      const b = normalizeEngineState(mutate(a))
      const na = normalizeEngineState(a)
      if (engineStateEqual(na, b)) return true // a mutation with nothing to act on (no first route, no uplink)
      return diffEngine(b, na).length > 0 && diffEngine(na, b).length > 0
    }),
    { numRuns: 2000 },
  )
  t.pass('held for random states and mutations')
})
