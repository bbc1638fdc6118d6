/**
 * Every key this version does not act on says so: a warning with the stable code
 * QE_NOT_IMPLEMENTED at the key (file:line:col), naming it, when it is set to
 * anything but its default; nothing when it is left alone.
 */
import t from 'tap'
import { loadConfigText } from '../../src/config/index.js'
import { NOT_IMPLEMENTED } from '../../src/config/not-implemented.js'

const HEAD = 'node: { name: n1, role: gateway }\nnetwork: { name: net }\n'

/** For each table entry: a document that sets it (the key on line 3 or 4), and one that sets it to its default. */
const SAMPLES: Record<string, { set: string; line: number; col: number; path: string; quiet?: string }> = {
  'interfaces[].bandwidth.down': { set: HEAD + 'interfaces:\n  - name: eth0\n    bandwidth: { up: 5Mbps, down: 50Mbps }\n', line: 5, col: 29, path: 'interfaces[0].bandwidth.down', quiet: HEAD + 'interfaces:\n  - name: eth0\n    bandwidth: { up: 5Mbps }\n    cost: 20\n' },
  'multipath.scheduler': { set: HEAD + 'multipath:\n  scheduler: round-robin\n', line: 4, col: 3, path: 'multipath.scheduler', quiet: HEAD + 'multipath:\n  scheduler: min-rtt\n' },
}

t.test('every entry of the table is tested here, and only those', async (t) => {
  t.same(Object.keys(SAMPLES).sort(), NOT_IMPLEMENTED.map((k) => k.key).sort())
})

for (const { key } of NOT_IMPLEMENTED) {
  t.test(key, async (t) => {
    const s = SAMPLES[key]!
    const r = loadConfigText(s.set, 'f.yaml')
    t.ok(r.ok, 'still loads: a warning, not an error')
    const w = r.diagnostics.filter((d) => d.code === 'QE_NOT_IMPLEMENTED' && d.path === s.path)
    t.equal(w.length, 1, 'one warning at the key')
    t.match(w[0], { file: 'f.yaml', line: s.line, col: s.col, path: s.path, severity: 'warning', message: new RegExp(`^${s.path.replace(/[[\].]/g, '\\$&')} is not acted on by this version`) })
    const quiet = loadConfigText(s.quiet ?? HEAD, 'f.yaml')
    t.ok(quiet.ok)
    t.same(quiet.diagnostics.filter((d) => d.code === 'QE_NOT_IMPLEMENTED'), [], 'nothing when left at its default')
  })
}

t.test('the scheduler names: min-rtt, ecf and weighted are quiet, round-robin says it runs the aggregate scheduler', async (t) => {
  for (const name of ['min-rtt', 'ecf', 'weighted']) {
    t.same(loadConfigText(HEAD + `multipath: { scheduler: ${name} }\n`, 'f.yaml').diagnostics, [], name)
  }
  const r = loadConfigText(HEAD + 'multipath: { scheduler: round-robin }\n', 'f.yaml')
  t.match(r.diagnostics, [{ code: 'QE_NOT_IMPLEMENTED', message: /runs the aggregate scheduler, as min-rtt and ecf do/ }])
})

t.test('a flag that sets an inert key is reported against the flag', async (t) => {
  const r = loadConfigText(HEAD, 'f.yaml', { overrides: [{ path: ['multipath', 'scheduler'], value: 'round-robin', source: '--scheduler' }] })
  t.match(r.diagnostics, [{ file: '--scheduler', code: 'QE_NOT_IMPLEMENTED', severity: 'warning' }])
})

t.test('every inert key in the schema text says it is not acted on', async (t) => {
  const { SCHEMA } = await import('../../src/config/index.js')
  for (const { key } of NOT_IMPLEMENTED) {
    if (key === 'multipath.scheduler') continue
    let node = SCHEMA as Record<string, unknown>
    for (const seg of key.split('.')) {
      const props = (n: Record<string, unknown>): Record<string, Record<string, unknown>> => n['properties'] as Record<string, Record<string, unknown>>
      if (seg.endsWith('[]')) {
        node = props(node)[seg.slice(0, -2)]!['items'] as Record<string, unknown>
        if (node['else']) node = node['else'] as Record<string, unknown>
      } else node = props(node)[seg]!
    }
    t.match(node['description'], /[Nn]ot acted on by this version/, key)
  }
})
