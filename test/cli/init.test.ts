import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import ipaddr from 'ipaddr.js'
import { loadConfigText } from '../../src/config/index.js'
import { nameFromHostname } from '../../src/cli/init.js'
import { generateIdentity, loadIdentity, publicKeyBase64, saveIdentity } from '../../src/mesh/identity.js'
import { lines, run } from './run.js'

function paths(dir: string): { config: string; state: string; key: string } {
  return { config: join(dir, 'etc', 'quicether.yaml'), state: join(dir, 'state'), key: join(dir, 'state', 'identity.key') }
}

t.test('a fresh directory: key 0600 in a 0700 dir, a config that validates, what to do next', async (t) => {
  const p = paths(t.testdir({}))
  const r = await run(['init', '--name', 'laptop', '--config', p.config, '--state-dir', p.state])
  t.equal(r.code, 0, r.stderr)
  t.equal(statSync(p.key).mode & 0o777, 0o600)
  t.equal(statSync(p.state).mode & 0o777, 0o700)
  const id = await loadIdentity(p.key)
  const text = readFileSync(p.config, 'utf8')
  t.match(text.split('\n')[0], /^# yaml-language-server: \$schema=\S+quicether\.schema\.json$/)
  const schemaPath = text.split('\n')[0]?.replace(/^.*\$schema=/, '') ?? ''
  t.ok(statSync(schemaPath).isFile(), 'the $schema reference points at the packaged schema')
  const loaded = loadConfigText(text, p.config)
  t.ok(loaded.ok, 'the starter config validates')
  t.same(loaded.diagnostics, [], 'without warnings')
  if (loaded.ok) {
    t.equal(loaded.config.node.name, 'laptop')
    t.equal(loaded.config.node.role, 'client')
    t.equal(loaded.config.node.identity, p.key, 'points at the key it created')
  }
  t.match(text, /^\s+#/m, 'it is commented')
  // What it did, the public key, and the next command.
  t.match(r.stdout, `created identity ${p.key}`)
  t.match(r.stdout, `wrote ${p.config}`)
  t.match(r.stdout, `public key:        ${publicKeyBase64(id)}`)
  t.match(r.stdout, `quicether start --config ${p.config}`)
  const addrs = /overlay addresses: (\S+), (\S+)/.exec(r.stdout)
  t.ok(addrs, 'prints the derived overlay addresses')
  if (addrs && loaded.ok) {
    t.ok(ipaddr.parse(addrs[1] ?? '').match(ipaddr.parseCIDR(loaded.config.network.overlay.ipv4)))
    t.ok(ipaddr.parse(addrs[2] ?? '').match(ipaddr.parseCIDR(loaded.config.network.overlay.ipv6)))
  }
})

t.test('refuses to overwrite a config without --force; --force does, keeping the key', async (t) => {
  const p = paths(t.testdir({}))
  t.equal((await run(['init', '--name', 'one', '--config', p.config, '--state-dir', p.state])).code, 0)
  const key = readFileSync(p.key, 'utf8')
  const first = readFileSync(p.config, 'utf8')
  const again = await run(['init', '--name', 'two', '--config', p.config, '--state-dir', p.state])
  t.equal(again.code, 1)
  t.equal(again.stdout, '')
  t.equal(lines(again.stderr).length, 1)
  t.match(again.stderr, /already exists.*--force.*\(QE_CONFIG_EXISTS\)/)
  t.equal(readFileSync(p.config, 'utf8'), first, 'config untouched')
  const forced = await run(['init', '--name', 'two', '--config', p.config, '--state-dir', p.state, '--force'])
  t.equal(forced.code, 0, forced.stderr)
  t.match(readFileSync(p.config, 'utf8'), /name: two/)
  t.equal(readFileSync(p.key, 'utf8'), key, 'the identity is never replaced')
  t.match(forced.stdout, `using the existing identity ${p.key}`)
})

t.test('reuses an existing key', async (t) => {
  const p = paths(t.testdir({}))
  const id = generateIdentity()
  await saveIdentity(p.key, id)
  const r = await run(['init', '--name', 'kept', '--config', p.config, '--state-dir', p.state])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, `public key:        ${publicKeyBase64(id)}`)
  t.equal(readFileSync(p.key, 'utf8'), id.privateKeyPem)
})

t.test('a corrupt existing key is an error, not silently replaced', async (t) => {
  const p = paths(t.testdir({ state: { 'identity.key': 'not a key\n' } }))
  const r = await run(['init', '--name', 'x', '--config', p.config, '--state-dir', p.state])
  t.equal(r.code, 1)
  t.match(r.stderr, /^quicether: .*identity\.key.*\(QE_IDENTITY_INVALID\)\n$/)
  t.equal(readFileSync(p.key, 'utf8'), 'not a key\n')
  t.throws(() => statSync(p.config), 'no config written')
})

t.test('roles, --bootstrap-mode and --enterprise produce configs that validate with what was asked', async (t) => {
  const dir = t.testdir({})
  for (const role of ['client', 'gateway', 'bootstrap'] as const) {
    for (const enterprise of [false, true]) {
      const config = join(dir, `${role}-${enterprise}.yaml`)
      const args = ['init', '--name', `n-${role}`, '--role', role, '--config', config, '--state-dir', join(dir, 'state'), '--bootstrap-mode']
      const r = await run(enterprise ? [...args, '--enterprise'] : args)
      t.equal(r.code, 0, `${role} enterprise=${enterprise}: ${r.stderr}`)
      const loaded = loadConfigText(readFileSync(config, 'utf8'), config)
      t.ok(loaded.ok, `${role} enterprise=${enterprise} validates`)
      t.same(loaded.diagnostics.filter((d) => d.severity === 'error'), [])
      if (!loaded.ok) continue
      const c = loaded.config
      t.equal(c.node.role, role)
      t.equal(c.node.bootstrapMode, true)
      if (enterprise) {
        t.equal(c.policies.default, 'deny')
        t.ok(c.policies.rules.length > 0, 'has rules')
        t.ok(Object.keys(c.policies.groups).length > 0, 'has groups')
        t.type(c.audit.path, 'string')
        t.equal(c.auth.require2fa, true)
      } else {
        t.equal(c.audit.path, null)
        t.equal(c.auth.require2fa, false)
      }
    }
  }
})

t.test('YAML-looking names are quoted, so they stay strings', async (t) => {
  const p = paths(t.testdir({}))
  const r = await run(['init', '--name', '123', '--network', 'true', '--config', p.config, '--state-dir', p.state])
  t.equal(r.code, 0, r.stderr)
  const doc = parse(readFileSync(p.config, 'utf8')) as { node: { name: unknown }; network: { name: unknown } }
  t.equal(doc.node.name, '123')
  t.equal(doc.network.name, 'true')
})

t.test('bad names are usage errors, and nothing is written', async (t) => {
  const p = paths(t.testdir({}))
  for (const args of [['--name', 'My Laptop'], ['--name', '-x'], ['--network', 'Home_Net']]) {
    const r = await run(['init', ...args, '--config', p.config, '--state-dir', p.state])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, /not a valid .*name.*\(QE_USAGE\)/)
  }
  t.throws(() => statSync(p.state), 'no state dir created')
  t.throws(() => statSync(p.config), 'no config created')
})

t.test('a directory where the config should go is an error', async (t) => {
  const dir = t.testdir({ 'cfg.yaml': {} })
  const r = await run(['init', '--name', 'x', '--config', join(dir, 'cfg.yaml'), '--state-dir', join(dir, 'state')])
  t.equal(r.code, 1)
  t.match(r.stderr, /not a regular file.*\(QE_CONFIG_WRITE\)/)
})

t.test('the default name comes from the hostname', async (t) => {
  t.equal(nameFromHostname('Dev-Laptop.local'), 'dev-laptop')
  t.equal(nameFromHostname('my_box'), 'my-box')
  t.equal(nameFromHostname('---'), 'node')
  t.equal(nameFromHostname('a'.repeat(80)).length, 63)
})
