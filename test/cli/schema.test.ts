import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { SCHEMA_FILE } from '../../src/cli/schema.js'
import { run } from './run.js'

t.test('quicether schema prints the published JSON Schema', async (t) => {
  const r = await run(['schema'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const printed = JSON.parse(r.stdout) as Record<string, unknown>
  const published = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Record<string, unknown>
  t.same(printed, published)
  t.equal(printed['$schema'], 'https://json-schema.org/draft/2020-12/schema')
  t.ok(typeof printed['properties'] === 'object', 'a real schema, not an empty object')
})

t.test('the schema file is found from the package root, not the cwd', async (t) => {
  t.equal(fileURLToPath(SCHEMA_FILE), fileURLToPath(new URL('../../schemas/quicether.schema.json', import.meta.url)))
})
