import { readFileSync } from 'node:fs'
import t from 'tap'
import Ajv2020 from 'ajv/dist/2020.js'
import { parse } from 'yaml'
import { loadConfigText, renderConfigYaml, SCHEMA } from '../../src/config/index.js'
import { checkSchema } from '../../src/config/schema.js'

type S = Record<string, unknown>
const root = SCHEMA as S
const defs = root.$defs as Record<string, S>

t.test('SCHEMA is the published file, and a valid 2020-12 schema', async (t) => {
  const file = JSON.parse(readFileSync(new URL('../../schemas/quicether.schema.json', import.meta.url), 'utf8')) as unknown
  t.same(SCHEMA, file)
  t.equal(root.$schema, 'https://json-schema.org/draft/2020-12/schema')
  const ajv = new Ajv2020.default({ strict: true, allowUnionTypes: true })
  t.ok(ajv.validateSchema(SCHEMA), JSON.stringify(ajv.errors))
  t.ok(Object.isFrozen(SCHEMA) && Object.isFrozen(defs.cidr), 'frozen')
})

/** Every schema object reachable from the root, with a readable location. */
function walk(s: unknown, where: string, visit: (s: S, where: string) => void): void {
  if (!s || typeof s !== 'object') return
  const node = s as S
  visit(node, where)
  for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${where}.${k}`, visit)
  for (const k of ['items', 'then', 'else', 'additionalProperties', 'propertyNames'] as const) {
    if (node[k] && typeof node[k] === 'object') walk(node[k], `${where}/${k}`, visit)
  }
}

t.test('every field has a description; every object refuses unknown keys', async (t) => {
  const missing: string[] = []
  const open: string[] = []
  walk(root, '', (s, where) => {
    if (/\/(then|else|propertyNames)$/.test(where)) return // branches of a field, described by the field
    if (typeof s.description !== 'string' || s.description.length < 3) missing.push(where || '(root)')
    if (s.type === 'object' && s.properties && s.additionalProperties !== false) open.push(where)
  })
  for (const [name, d] of Object.entries(defs)) if (typeof d.description !== 'string') missing.push(`$defs/${name}`)
  t.same(missing, [], 'fields without a description')
  t.same(open, [], 'objects that allow unknown keys')
})

t.test('every schema default is what the loader fills in', async (t) => {
  // One item in every list, so defaults inside list items are exercised too.
  const key = Buffer.alloc(32, 1).toString('base64')
  const minimal = [
    'node: { name: n1 }',
    'network: { name: net }',
    `peers: [{ name: p1, key: "${key}" }]`,
    'interfaces: [{ name: eth0 }]',
    'multipath: { traffic-classes: [{ name: c1 }] }',
    'subnets: [{ prefix: 10.0.0.0/24 }]',
    'routes: [{ to: 10.1.0.0/16, via: p1 }]',
    'policies: { rules: [{ action: allow }] }',
    'gateway: { ingress: [{ listen: "0.0.0.0:8080", to: "p1:80" }] }',
  ].join('\n')
  const r = loadConfigText(minimal, 'min.yaml')
  t.ok(r.ok, JSON.stringify(r.diagnostics))
  if (!r.ok) return
  // Compare in the file's own terms: the effective config rendered back to YAML.
  const rendered = parse(renderConfigYaml(r.config)) as unknown
  let checked = 0
  const visit = (s: unknown, doc: unknown, where: string): void => {
    if (!s || typeof s !== 'object') return
    const node = s as S
    const target = node.$ref ? { ...defs[String(node.$ref).replace('#/$defs/', '')], ...node } : node
    if ('default' in target && doc !== undefined && !(typeof target.default === 'object' && target.default !== null)) {
      t.same(doc, target.default, `default of ${where}`)
      checked++
    }
    // A subnet without options is rendered as a plain prefix: its `exit` is the default.
    if (typeof doc === 'string' && target.else && where.startsWith('.subnets')) doc = { prefix: doc, exit: false, masquerade: false, priority: 100 }
    if (doc && typeof doc === 'object' && !Array.isArray(doc)) {
      for (const [k, sub] of Object.entries((target.properties ?? {}) as S)) visit(sub, (doc as S)[k], `${where}.${k}`)
      if (target.else) visit(target.else, doc, where)
    }
    if (Array.isArray(doc) && target.items && doc.length > 0) visit(target.items, doc[0], `${where}[0]`)
  }
  visit(root, rendered, '')
  // Every scalar default of the schema was reached.
  let total = 0
  walk(root, '', (s) => {
    const d = s.$ref ? { ...defs[String(s.$ref).replace('#/$defs/', '')], ...s }.default : s.default
    if (d !== undefined && (typeof d !== 'object' || d === null)) total++
  })
  t.equal(checked, total, `checked all ${total} scalar defaults`)
})

t.test('ajv errors become messages at the right path', async (t) => {
  const problems = checkSchema({
    node: { name: 'n1', role: 'gatway', stateDir: '/x' },
    network: { name: 'net' },
    uplinks: [],
    tun: { mtu: 70000 },
    listen: { port: '7443' },
    discovery: { dht: 'yes' },
    subnets: [5],
  })
  const by = (p: string): string | undefined => problems.find((x) => x.path.join('.') === p)?.message
  t.match(by('node.role'), "is not one of: client, gateway, bootstrap; did you mean 'gateway'?")
  t.match(by('node.stateDir'), "did you mean 'state-dir'?")
  t.match(by('uplinks'), "did you mean 'interfaces'?")
  t.match(by('tun.mtu'), 'must be at most 9000')
  t.match(by('listen.port'), 'without quotes')
  t.match(by('discovery.dht'), 'true or false')
  t.match(by('subnets.0'), 'expected a prefix (like 192.168.1.0/24) or a mapping with prefix and exit, found the number 5')
  t.equal(problems.find((x) => x.path.join('.') === 'node.stateDir')?.at, 'key', 'unknown keys point at the key')
  t.same(checkSchema({ node: { name: 'n1' }, network: { name: 'net' } }), [], 'a minimal document passes')
})
