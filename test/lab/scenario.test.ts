import t from 'tap'
import { readFileSync } from 'node:fs'
import { parseScenario, linkFromRaw } from '../../src/lab/scenario.js'

const example = readFileSync(new URL('../../examples/lab/two-sites.yaml', import.meta.url), 'utf8')

t.test('the example scenario parses into a topology with units normalized', async (t) => {
  const s = parseScenario(example, 'two-sites.yaml')
  t.equal(s.name, 'two sites and a laptop')
  t.same(s.topology.nodes.map((n) => [n.name, n.daemon]), [['office', true], ['home', true], ['laptop', true], ['server', false]])
  t.same(s.topology.nodes[1]?.config, { logging: { level: 'debug' } })
  const [dsl, wifi, lan] = s.topology.links
  t.same(dsl?.aToB, { rate: 10e6, delay: 15, jitter: 0, loss: 0 })
  t.same(dsl?.bToA, { rate: 50e6, delay: 15, jitter: 0, loss: 0 })
  t.equal(dsl?.nat, 'cone')
  t.same(wifi?.aToB, { rate: 20e6, delay: 25, jitter: 0, loss: 0.01 })
  t.equal(wifi?.nat, 'symmetric')
  t.same(lan?.aToB, { rate: null, delay: 0, jitter: 0, loss: 0 })
  t.equal(lan?.queue, null)
  t.equal(s.network.port, 7443)
})

t.test('a link with one direction given leaves the other unlimited', async (t) => {
  const l = linkFromRaw({ a: 'x', b: 'y', rate: { 'b-to-a': '50mbit' }, queue: '20ms' }, 3)
  t.equal(l.name, 'link3')
  t.same(l.aToB, { rate: null, delay: 0, jitter: 0, loss: 0 })
  t.same(l.bToA, { rate: 50e6, delay: 0, jitter: 0, loss: 0 })
  t.equal(l.queue, 20)
})

t.test('jitter per link, like delay: one value or per direction', async (t) => {
  const l = linkFromRaw({ a: 'x', b: 'y', delay: '40ms', jitter: { 'a-to-b': '10ms' } }, 0)
  t.same(l.aToB, { rate: null, delay: 40, jitter: 10, loss: 0 })
  t.same(l.bToA, { rate: null, delay: 40, jitter: 0, loss: 0 })
  t.same(linkFromRaw({ a: 'x', b: 'y', jitter: '2ms' }, 0).bToA.jitter, 2)
  const s = parseScenario('nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, delay: 20ms, jitter: 5ms}]')
  t.same(s.topology.links[0]?.aToB.jitter, 5)
})

const bad: [string, string, RegExp][] = [
  ['unknown key', 'nodes: [{name: a}]\nlinks: []\nextra: 1', /unknown key 'extra'/],
  ['unknown link key', 'nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, latency: 5ms}]', /unknown key 'latency'/],
  ['no nodes', 'nodes: []\nlinks: []', /nodes/],
  ['bad node name', 'nodes: [{name: Alpha}]\nlinks: []', /nodes.0.name/],
  ['router-like node name', 'nodes: [{name: r1}]\nlinks: []', /reserved/],
  ['duplicate node', 'nodes: [{name: a}, {name: a}]\nlinks: []', /defined twice/],
  ['link to a missing node', 'nodes: [{name: a}]\nlinks: [{a: a, b: zz}]', /'zz', which is not defined/],
  ['link to itself', 'nodes: [{name: a}]\nlinks: [{a: a, b: a}]', /itself/],
  ['bad rate', 'nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, rate: fast}]', /rate/],
  ['rate in bytes', 'nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, rate: 10MBps}]', /bytes per second/],
  ['bad loss', 'nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, loss: 150%}]', /loss/],
  ['bad nat', 'nodes: [{name: a}, {name: b}]\nlinks: [{a: a, b: b, nat: full-cone}]', /nat/],
  ['not YAML', 'nodes: [{name: a}\nlinks', /not valid YAML/],
]
for (const [what, text, re] of bad) {
  t.test(`rejected: ${what}`, async (t) => {
    t.throws(() => parseScenario(text, 'x.yaml'), { code: 'QE_LAB_SPEC', message: re })
  })
}
