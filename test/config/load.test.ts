import { mkdtempSync, writeFileSync, truncateSync, chmodSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ConfigReadError } from '../../src/errors.js'
import { loadConfigFile, loadConfigText } from '../../src/config/index.js'

const BASE = 'node: { name: n1 }\nnetwork: { name: net }\n'
const dir = mkdtempSync(join(tmpdir(), 'qe-config-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('files that cannot be read throw ConfigReadError', async (t) => {
  await t.rejects(loadConfigFile(join(dir, 'missing.yaml')), { name: 'ConfigReadError', code: 'QE_CONFIG_READ', message: /no such file/ })
  await t.rejects(loadConfigFile(dir), { code: 'QE_CONFIG_READ', message: /is a directory/ })
  const err = await loadConfigFile(join(dir, 'missing.yaml')).catch((e: unknown) => e)
  t.ok(err instanceof ConfigReadError)
})

t.test('no permission', { skip: process.getuid?.() === 0 ? 'root reads every file' : false }, async (t) => {
  const f = join(dir, 'secret.yaml')
  writeFileSync(f, BASE)
  chmodSync(f, 0o000)
  await t.rejects(loadConfigFile(f), { code: 'QE_CONFIG_READ', message: /permission denied/ })
})

t.test('a 10 MB file is refused from its size, without reading it', async (t) => {
  const f = join(dir, 'big.yaml')
  writeFileSync(f, '')
  truncateSync(f, 10 * 1024 * 1024) // sparse: reading it would be slow, stat is not
  const r = await loadConfigFile(f)
  t.equal(r.ok, false)
  t.match(r.diagnostics, [{ code: 'too-large', file: f, line: 1, col: 1, message: /10 MiB/ }])
})

t.test('an endless device is refused after the size limit', async (t) => {
  const r = await loadConfigFile('/dev/zero')
  t.match(r.diagnostics, [{ code: 'too-large' }])
})

t.test('binary and non-UTF-8 files', async (t) => {
  const f = join(dir, 'bin.yaml')
  writeFileSync(f, Buffer.from([0x6e, 0x6f, 0x64, 0x65, 0x3a, 0xff, 0xfe, 0x00, 0x01]))
  const r = await loadConfigFile(f)
  t.match(r.diagnostics, [{ code: 'not-text' }])
  const g = join(dir, 'latin1.yaml')
  writeFileSync(g, Buffer.from('node: { name: caf\xe9 }\n', 'latin1'))
  t.match((await loadConfigFile(g)).diagnostics, [{ code: 'not-text', message: /UTF-8/ }])
})

t.test('a good file loads', async (t) => {
  const f = join(dir, 'ok.yaml')
  writeFileSync(f, BASE)
  const r = await loadConfigFile(f)
  t.ok(r.ok)
  if (r.ok) t.equal(r.config.node.name, 'n1')
})

t.test('overrides replace keys before validation', async (t) => {
  const value = ['10.9.0.0/16']
  const r = loadConfigText(BASE + 'multipath: { mode: failover }\n', 'f.yaml', {
    overrides: [
      { path: ['multipath', 'mode'], value: 'aggregate', source: '--multipath' },
      { path: ['node', 'role'], value: 'gateway', source: '--role' },
      { path: ['subnets'], value, source: '--advertise-subnet' },
      { path: ['audit', 'path'], value: '/var/log/qe-audit.jsonl', source: '--audit-log' },
    ],
  })
  t.ok(r.ok, JSON.stringify(r.diagnostics))
  if (!r.ok) return
  t.equal(r.config.multipath.mode, 'aggregate')
  t.equal(r.config.node.role, 'gateway')
  t.same(r.config.subnets, [{ prefix: '10.9.0.0/16', exit: false, masquerade: false, priority: 100 }])
  t.equal(r.config.audit.path, '/var/log/qe-audit.jsonl', 'a missing section is created')
  t.same((r.raw as { subnets: unknown }).subnets, ['10.9.0.0/16'], 'raw shows the document after overrides')
  value.push('mutated')
  t.same((r.raw as { subnets: unknown }).subnets, ['10.9.0.0/16'], 'the override value is copied')
})

t.test('a bad flag value is reported against the flag, at line 0', async (t) => {
  const r = loadConfigText(BASE, 'f.yaml', {
    overrides: [
      { path: ['multipath', 'mode'], value: 'aggregat', source: '--multipath' },
      { path: ['subnets', '0'], value: '10.0.0.5/16', source: '--advertise-subnet' },
    ],
  })
  t.equal(r.ok, false)
  t.match(r.diagnostics, [
    { file: '--advertise-subnet', line: 0, col: 0, path: 'subnets[0]', code: 'host-bits-set', message: /did you mean 10\.0\.0\.0\/16/ },
    { file: '--multipath', line: 0, col: 0, path: 'multipath.mode', code: 'bad-value', message: /did you mean 'aggregate'/ },
  ])
})

t.test('an override into a list indexes it; the file keeps its own positions', async (t) => {
  const text = BASE + 'subnets:\n  - 10.1.0.0/16\n  - 10.2.0.5/16\n'
  const r = loadConfigText(text, 'f.yaml', { overrides: [{ path: ['subnets', '2'], value: '10.3.0.0/16', source: '--advertise-subnet' }] })
  t.match(r.diagnostics, [{ file: 'f.yaml', line: 5, col: 5, code: 'host-bits-set' }])
  t.equal(r.diagnostics.length, 1)
})

t.test('every problem of a file comes at once, sorted by position', async (t) => {
  const text = 'node:\n  name: N1\n  role: boss\nnetwork: {}\nsubnets: [10.0.0.1/8]\n'
  const r = loadConfigText(text, 'f.yaml')
  t.equal(r.ok, false)
  t.same(r.diagnostics.map((d) => `${d.line}:${d.col} ${d.code}`), ['2:9 bad-value', '3:9 bad-value', '4:1 missing-key', '5:11 host-bits-set'])
})

t.test('warnings do not fail a load', async (t) => {
  const r = loadConfigText(BASE + 'discovery: { dht: true }\nmetrics: { listen: 127.0.0.1:9586 }\n', 'f.yaml')
  t.notOk(r.ok, 'the DHT without a CA is an error')
  t.match(r.diagnostics, [
    { severity: 'error', code: 'discovery-without-ca', line: 3, col: 19 },
  ])
  const ok = loadConfigText("node: { name: n1 }\nnetwork: { name: net, ca: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' }\ndiscovery: { dht: true }\nmultipath: { scheduler: round-robin }\n", 'f.yaml')
  t.ok(ok.ok)
  t.match(ok.diagnostics, [
    { severity: 'warning', code: 'dht-without-bootstrap', line: 3, col: 19 },
    { severity: 'warning', code: 'QE_NOT_IMPLEMENTED', line: 4, col: 14 },
  ])
})
