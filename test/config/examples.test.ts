import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfigFile } from '../../src/config/index.js'
import type { Config } from '../../src/config/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const examples = readdirSync(resolve(root, 'examples')).filter((f) => f.endsWith('.yaml')).sort()
const files = ['quicether.example.yaml', ...examples.map((f) => `examples/${f}`)]
const configs = new Map<string, Config>()

/**
 * A key this version does not act on is honest in an example when a comment says so:
 * on its own line, or in a comment line above it within the same block (walking up over
 * its siblings and their children, stopping at the parent key or a blank line).
 */
function notedAsInert(lines: readonly string[], line: number): boolean {
  const said = (s: string): boolean => /#.*not (acted on|enforced)/i.test(s)
  const own = lines[line - 1] ?? ''
  if (said(own)) return true
  const indent = (s: string): number => s.length - s.trimStart().length
  for (let i = line - 2; i >= 0; i--) {
    const l = lines[i]!
    if (l.trim() === '' || indent(l) < indent(own)) return false
    if (said(l)) return true
  }
  return false
}

for (const f of files) {
  t.test(f, async (t) => {
    const path = resolve(root, f)
    const r = await loadConfigFile(path)
    t.ok(r.ok, 'validates')
    t.same(r.diagnostics.filter((d) => d.code !== 'QE_NOT_IMPLEMENTED'), [], 'without a single warning but for keys not acted on yet')
    const lines = readFileSync(path, 'utf8').split('\n')
    for (const d of r.diagnostics.filter((x) => x.code === 'QE_NOT_IMPLEMENTED')) {
      t.ok(notedAsInert(lines, d.line), `${f}:${d.line}: ${d.path} carries a comment that it is not acted on yet`)
    }
    if (r.ok) configs.set(f, r.config)
    const first = readFileSync(path, 'utf8').split('\n')[0]!
    const m = /^# yaml-language-server: \$schema=(\S+)$/.exec(first)
    t.ok(m, 'the first line points editors at the schema')
    if (m) {
      const schema = resolve(dirname(path), m[1]!)
      t.equal(schema, resolve(root, 'schemas/quicether.schema.json'), 'at the right relative path')
      t.ok(existsSync(schema))
    }
  })
}

t.test('every persona of the product brief has its files', async (t) => {
  for (const persona of ['remote-dev', 'small-business', 'homelab', 'creator', 'rural', 'enterprise']) {
    t.ok(examples.some((f) => f.startsWith(`${persona}-`)), persona)
  }
  t.equal(examples.filter((f) => f.startsWith('small-business-')).length, 5, 'small business: main office, two home offices, two remote workers')
  t.equal(examples.filter((f) => f.startsWith('homelab-')).length, 5, 'homelab: home server, colo gateway, cloud bootstrap, laptop, a Pi that joined by invite')
})

t.test('the personas say what the brief says', async (t) => {
  const c = (name: string): Config => {
    const x = configs.get(`examples/${name}.yaml`)
    if (!x) throw new Error(`${name} did not load`)
    return x
  }
  t.same(c('remote-dev-laptop').routes.map((r) => r.to), ['10.0.0.0/16'])
  t.same(c('small-business-main-office').subnets.map((s) => s.prefix), ['192.168.1.0/24'])
  const home = c('homelab-home-server')
  t.equal(home.multipath.mode, 'aggregate')
  t.equal(home.interfaces.length, 2)
  t.equal(c('homelab-colo-gw').gateway.advertiseBandwidth, 1e9)
  t.same(c('homelab-colo-gw').gateway.forwardFor, [{ kind: 'peer', peer: 'home-server' }, { kind: 'peer', peer: 'laptop' }])
  t.match(c('homelab-colo-gw').gateway.ingress, [{ listen: { host: '0.0.0.0', port: 32400 }, to: { kind: 'peer', peer: 'home-server', port: 32400 }, proto: 'tcp' }], 'the colo is the public face of Plex')
  t.equal(c('rural-desktop').exit.node, 'cloud-gw', 'the rural desktop reaches the internet through the bond')
  t.ok(c('rural-cloud-gw').subnets.some((s) => s.exit && s.prefix === '0.0.0.0/0'), 'the cloud gateway is the exit')
  t.same(c('small-business-main-office').gateway.forwardFor.map((f) => (f.kind === 'peer' ? f.peer : f.cidr)), ['home-anna', 'home-ben'], 'the office is the homes\' hub')
  t.equal(c('homelab-cloud-boot').node.role, 'bootstrap')
  t.ok(c('homelab-cloud-boot').discovery.publicAddress)
  t.same(c('creator-laptop').interfaces.map((u) => u.name), ['wlan0', 'wwan0'])
  t.equal(c('creator-laptop').multipath.target, 'home-nas')
  t.equal(c('creator-home-nas').multipath.accept, true)
  const rural = c('rural-desktop')
  t.equal(rural.multipath.scheduler, 'weighted')
  t.same(rural.interfaces.map((u) => [u.bandwidth.down, u.bandwidth.up]), [[25e6, 5e6], [50e6, 10e6], [50e6, 20e6], [100e6, 20e6]])
  t.equal(rural.multipath.trafficClasses.find((tc) => tc.name === 'interactive')?.path, 'eth0', 'interactive traffic on DSL')
  const hq = c('enterprise-hq-gw')
  t.ok(hq.node.bootstrapMode && hq.audit.path !== null)
  t.same(hq.interfaces.map((u) => u.role), ['primary', 'backup'])
  t.equal(hq.multipath.mode, 'failover')
  t.equal(c('enterprise-factory-gw').interfaces.length, 3)
  t.equal(c('enterprise-factory-gw').multipath.mode, 'aggregate')
  t.equal(hq.auth.require2fa, true, 'hq-gw asks its client peers for a second factor')
  t.equal(hq.policies.default, 'deny')
  t.ok(hq.policies.rules.some((r) => r.from.kind === 'group'))
})

t.test('within a network, a node has the same key in every file that lists it', async (t) => {
  const keys = new Map<string, { key: string; file: string }>()
  for (const [file, c] of configs) {
    if (!file.startsWith('examples/')) continue
    for (const p of c.peers) {
      const id = `${c.network.name}/${p.name}`
      const seen = keys.get(id)
      if (seen) t.equal(p.key, seen.key, `${id} in ${file} and ${seen.file}`)
      else keys.set(id, { key: p.key, file })
    }
  }
  const all = [...keys.values()].map((k) => k.key)
  t.equal(new Set(all).size, all.length, 'different nodes have different keys')
})
