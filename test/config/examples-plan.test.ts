/**
 * Every example plans cleanly: what `validate` accepts, the planner accepts too
 * (src/state, pure: no kernel). The runtime inputs are what a daemon would
 * supply: overlay addresses derived from a key, the TUN the engine created.
 */
import { readdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfigFile } from '../../src/config/index.js'
import { deriveOverlayAddresses } from '../../src/mesh/identity.js'
import { desiredFromConfig, validate } from '../../src/state/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const files = ['quicether.example.yaml', ...readdirSync(resolve(root, 'examples')).filter((f) => f.endsWith('.yaml')).sort().map((f) => `examples/${f}`)]
const KEY = Buffer.alloc(32, 7)

for (const f of files) {
  t.test(`${f} plans`, async (t) => {
    const r = await loadConfigFile(resolve(root, f))
    t.ok(r.ok, 'validates')
    if (!r.ok) return
    const c = r.config
    const derived = deriveOverlayAddresses(KEY, c.network.overlay.ipv4, c.network.overlay.ipv6)
    const desired = desiredFromConfig(c, {
      overlayAddresses: { ipv4: c.network.address.ipv4 ?? derived.ipv4, ipv6: c.network.address.ipv6 ?? derived.ipv6 },
      learnedRoutes: [],
      tunMtu: 1420,
    })
    const actual = { links: [{ name: c.tun.name, mtu: 1420, up: true }], addresses: [], routes: [], rules: [], sysctls: {}, foreignRoutes: [] }
    t.same(validate(desired, actual).filter((i) => i.severity === 'error'), [], 'the planner finds no error')
  })
}

t.test('the planner and the config rules agree on a default route through the mesh: an exit, in its own table', async (t) => {
  const { loadConfigText } = await import('../../src/config/index.js')
  const text = `node: { name: a }\nnetwork: { name: n }\npeers: [{ name: gw, key: "${Buffer.alloc(32, 1).toString('base64')}" }]\nroutes: [{ to: 0.0.0.0/0, via: gw }]\n`
  const r = loadConfigText(text, 'f.yaml')
  t.ok(r.ok, 'validate takes it')
  if (!r.ok) return
  const actual = { links: [{ name: 'qe0', mtu: 1420, up: true }], addresses: [], routes: [], rules: [], sysctls: {}, foreignRoutes: [] }
  for (const mode of ['tunnel', 'block', 'off'] as const) {
    const d = desiredFromConfig(r.config, { overlayAddresses: { ipv4: '100.88.0.9', ipv6: null }, learnedRoutes: [], tunMtu: 1420, exit: { ipv4: mode, ipv6: 'off' } })
    t.same(validate(d, actual), [], `${mode}: the planner takes it`)
    t.notOk(d.routes.some((x) => x.dst === '0.0.0.0/0' && x.table === 5280), `${mode}: never in the table every packet looks up`)
  }
  // The safety net still holds for a default route in the catch-all table.
  const d = desiredFromConfig(r.config, { overlayAddresses: { ipv4: '100.88.0.9', ipv6: null }, learnedRoutes: [{ prefix: '0.0.0.0/0', peer: 'x' }], tunMtu: 1420 })
  t.match(validate(d, actual), [{ code: 'QE_DEFAULT_ROUTE', severity: 'error' }], 'a default route in table 5280 is refused')
})
