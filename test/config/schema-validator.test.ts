/**
 * schemas/quicether.validator.generated.js is the schema compiled ahead of time and committed.
 * A schema edit without regenerating it is caught here: run `node scripts/gen-validator.mjs`.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import Ajv2020 from 'ajv/dist/2020.js'
import { validate } from '../../schemas/quicether.validator.generated.js'

interface Generator {
  generate(): string
  OUTPUT_FILE: URL
  TYPES_FILE: URL
  TYPES: string
  AJV_OPTIONS: Record<string, unknown>
}

// A computed specifier: the .mjs script has no type declarations.
const generator = (await import(new URL('../../scripts/gen-validator.mjs', import.meta.url).href)) as Generator

t.test('the committed validator is the schema as it is now', async (t) => {
  const stale = 'is stale: run node scripts/gen-validator.mjs and commit the result'
  t.ok(readFileSync(generator.OUTPUT_FILE, 'utf8') === generator.generate(), `schemas/quicether.validator.generated.js ${stale}`)
  t.ok(readFileSync(generator.TYPES_FILE, 'utf8') === generator.TYPES, `schemas/quicether.validator.generated.d.ts ${stale}`)
})

t.test('it reports what ajv compiling the schema at run time reports', async (t) => {
  const schema = JSON.parse(readFileSync(new URL('../../schemas/quicether.schema.json', import.meta.url), 'utf8')) as object
  const runtime = new Ajv2020.default({ ...generator.AJV_OPTIONS }).compile(schema)
  const docs: unknown[] = [
    {},
    { node: { name: 'a' }, network: { name: 'n' } },
    { node: { name: 'Bad Name', rol: 'x' }, network: { name: 'n', overlay: { ipv4: 'nope' } }, tun: { mtu: 'big' } },
    { node: { name: 'a' }, network: { name: 'n' }, interfaces: [{ name: 'eth0', bandwidth: { up: 'fast' }, weight: 0 }], subnets: ['10.0.0.0/8', { prefix: 1 }] },
    { node: { name: 'a' }, network: { name: 'n' }, policies: { groups: { 'BAD GROUP': ['x'] } }, multipath: { 'traffic-classes': [{ name: 'c', match: { dscp: ['XX', 99] } }] } },
    { node: { name: 'é'.repeat(70) }, network: 'n', peers: 'x' },
  ]
  for (const doc of docs) {
    const ok = validate(doc)
    t.equal(ok, runtime(doc), JSON.stringify(doc))
    t.same(validate.errors, runtime.errors)
  }
})
