import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfigText, renderConfigYaml } from '../../src/config/index.js'

const root = new URL('../../', import.meta.url)
const files = ['quicether.example.yaml', ...readdirSync(new URL('examples/', root)).filter((f) => f.endsWith('.yaml')).map((f) => `examples/${f}`)]

for (const f of files) {
  t.test(`${f}: the effective config round-trips through the loader`, async (t) => {
    const first = loadConfigText(readFileSync(new URL(f, root), 'utf8'), f)
    t.ok(first.ok)
    if (!first.ok) return
    const yaml = renderConfigYaml(first.config)
    const again = loadConfigText(yaml, 'rendered.yaml')
    // The rendered YAML writes every default out, so it may name more keys that are not acted on (policies.default).
    const inert = (ds: typeof first.diagnostics): string[] => ds.filter((d) => d.code === 'QE_NOT_IMPLEMENTED').map((d) => d.path)
    t.same(again.diagnostics.filter((d) => d.code !== 'QE_NOT_IMPLEMENTED'), [], 'the rendered YAML loads with no other diagnostic')
    t.same(inert(first.diagnostics).filter((p) => !inert(again.diagnostics).includes(p)), [], 'and warns about every key the file sets that is not acted on')
    if (!again.ok) return
    t.same(again.config, first.config, 'and gives the same config')
    t.equal(renderConfigYaml(again.config), yaml, 'rendering is stable')
    // Keys stay kebab-case.
    const keys: string[] = []
    const collect = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(collect)
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { keys.push(k); collect(x) }
    }
    collect(parse(yaml))
    t.same(keys.filter((k) => /[A-Z_]/.test(k) && !k.startsWith('group')), [], 'no camelCase keys')
  })
}
