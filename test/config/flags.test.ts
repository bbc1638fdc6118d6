import t from 'tap'
import { applyOverrides, makeLoader } from '../../src/config/index.js'

const KEY = 'uoOoqwZeOD30ygCxFPgfshKq8st8qg8jTGnLDKcI58w='

const file = (subnets: string[], uplinks: string): string => `node: { name: a }
network: { name: home }
peers: [{ name: gw, key: ${KEY} }]
subnets: [${subnets.join(', ')}]
interfaces:
${uplinks}`

t.test('applyOverrides is pure: the same flags and document give the same overrides, and the document is not touched', async (t) => {
  const doc = { subnets: ['10.1.0.0/16'], interfaces: [{ name: 'eth0', weight: 3 }, { name: 'wlan0' }] }
  const before = structuredClone(doc)
  const flags = { multipath: 'aggregate', advertiseSubnet: ['10.2.0.0/16'], interfaces: ['wwan0', 'eth0'] }
  const a = applyOverrides(flags, doc)
  t.same(a, applyOverrides(flags, doc))
  t.same(doc, before, 'the document is left as it was')
  t.same(a, [
    { path: ['multipath', 'mode'], value: 'aggregate', source: '--multipath' },
    { path: ['subnets', '1'], value: '10.2.0.0/16', source: '--advertise-subnet' },
    { path: ['interfaces'], value: [{ name: 'wwan0' }, { name: 'eth0', weight: 3 }], source: '--interfaces' },
  ])
  t.same(applyOverrides({}, doc), [], 'no flags, no overrides')
  t.same(applyOverrides({ advertiseSubnet: ['10.2.0.0/16'] }, undefined), [{ path: ['subnets'], value: ['10.2.0.0/16'], source: '--advertise-subnet' }], 'no document: the list is the flag\'s')
})

t.test('a loader merges the merging flags into each new text, not the first one\'s positions', async (t) => {
  const load = makeLoader({ logLevel: 'debug', advertiseSubnet: ['10.9.0.0/16'], interfaces: ['eth0'] })
  const first = load(file(['10.1.0.0/16'], '  - { name: eth0, weight: 3 }\n  - { name: wlan0 }'), 'a.yaml')
  t.ok(first.ok)
  if (!first.ok) return
  t.same(first.config.subnets.map((s) => s.prefix), ['10.1.0.0/16', '10.9.0.0/16'])
  t.same(first.config.interfaces.map((u) => [u.name, u.weight]), [['eth0', 3]])
  t.equal(first.config.logging.level, 'debug')
  // The reload: two subnets in the file now, eth0's weight changed.
  const next = load(file(['10.1.0.0/16', '10.2.0.0/16'], '  - { name: wlan0 }\n  - { name: eth0, weight: 5 }'), 'a.yaml')
  t.ok(next.ok)
  if (!next.ok) return
  t.same(next.config.subnets.map((s) => s.prefix), ['10.1.0.0/16', '10.2.0.0/16', '10.9.0.0/16'], 'appended after the new file\'s subnets')
  t.same(next.config.interfaces.map((u) => [u.name, u.weight]), [['eth0', 5]], 'the new file\'s settings for eth0')
  t.equal(next.config.logging.level, 'debug', 'flags still win')
})

t.test('a broken file still has its list flags checked', async (t) => {
  const r = makeLoader({ advertiseSubnet: ['10.0.0.5/16'] })('node: [', 'b.yaml')
  t.notOk(r.ok)
  t.ok(r.diagnostics.some((d) => d.file === 'b.yaml' && d.severity === 'error'), 'the file\'s own error')
  t.ok(r.diagnostics.some((d) => d.file === '--advertise-subnet' && d.code === 'host-bits-set'), 'and the flag\'s')
})
