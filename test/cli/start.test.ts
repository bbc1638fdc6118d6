import t from 'tap'
import { join } from 'node:path'
import { parse } from 'yaml'
import { applyOverrides, FLAG_KEYS, loadConfigText } from '../../src/config/index.js'
import { importOptional } from '../../src/cli/optional-module.js'
import { lines, positionOf, run } from './run.js'

const KEY_A = 'uoOoqwZeOD30ygCxFPgfshKq8st8qg8jTGnLDKcI58w='
const KEY_B = 'AAAAqwZeOD30ygCxFPgfshKq8st8qg8jTGnLDKcI58w='

const BASE = `node:
  name: base
  role: gateway
network:
  name: home
peers:
  - name: office-gw
    key: ${KEY_A}
  - name: nas
    key: ${KEY_B}
interfaces:
  - name: eth0
    weight: 3
    bandwidth: { up: 10Mbps, down: 100Mbps }
  - name: wlan0
    weight: 2
subnets:
  - 192.168.1.0/24
multipath:
  mode: failover
  scheduler: min-rtt
logging:
  level: warn
`

type Doc = Record<string, Record<string, unknown>> & { interfaces: Array<Record<string, unknown>>; subnets: unknown[] }

async function printConfig(t: Tap, args: string[], base = BASE): Promise<{ code: number; doc: Doc; stderr: string; stdout: string }> {
  const dir = t.testdir({ 'base.yaml': base })
  const r = await run(['start', '--config', join(dir, 'base.yaml'), '--print-config', ...args])
  return { code: r.code, doc: (r.code === 0 ? parse(r.stdout) : {}) as Doc, stderr: r.stderr, stdout: r.stdout }
}
type Tap = { testdir: (f: Record<string, string>) => string }

t.test('--print-config with no flags prints the file as loaded, and it loads back equal', async (t) => {
  const r = await printConfig(t, [])
  t.equal(r.code, 0)
  t.equal(r.doc.node?.['name'], 'base')
  t.equal(r.doc.multipath?.['mode'], 'failover')
  const again = loadConfigText(r.stdout, 'printed.yaml')
  const orig = loadConfigText(BASE, 'base.yaml')
  t.ok(again.ok && orig.ok)
  if (again.ok && orig.ok) t.same(again.config, orig.config, 'the printed config is the effective config')
})

t.test('every start flag lands at its config path', async (t) => {
  const r = await printConfig(t, [
    '--name', 'laptop',
    '--role', 'bootstrap',
    '--bootstrap', 'a.example.com:7443,b.example.com:7443', '--bootstrap', '198.51.100.1:7443',
    '--connect-to', 'office-gw', '--connect-to', '198.51.100.7:7443',
    '--advertise-subnet', '10.1.0.0/16', '--advertise-subnet', '10.2.0.0/16,10.3.0.0/16',
    '--interfaces', 'wwan0,eth0',
    '--multipath', 'aggregate',
    '--scheduler', 'weighted',
    '--target', 'nas',
    '--accept-multipath',
    '--advertise-bandwidth', '1Gbps',
    '--forward-for', 'nas,10.9.0.0/16',
    '--bootstrap-mode',
    '--public-ip', '203.0.113.10',
    '--advertise-as-bootstrap',
    '--audit-log', '/var/log/qe/audit.log',
    '--require-2fa',
    '--log-level', 'debug',
  ])
  t.equal(r.code, 0, r.stderr)
  const d = r.doc
  t.equal(d.node?.['name'], 'laptop')
  t.equal(d.node?.['role'], 'bootstrap')
  t.equal(d.node?.['bootstrap-mode'], true)
  t.same(d.discovery?.['bootstrap'], ['a.example.com:7443', 'b.example.com:7443', '198.51.100.1:7443'])
  t.same(d.discovery?.['connect-to'], ['office-gw', '198.51.100.7:7443'])
  t.equal(d.discovery?.['public-address'], '203.0.113.10')
  t.equal(d.discovery?.['advertise-as-bootstrap'], true)
  t.same(d.subnets, ['192.168.1.0/24', '10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16'], 'appended to the file\'s subnets')
  t.same(d.interfaces.map((u) => u['name']), ['wwan0', 'eth0'], 'exactly the listed uplinks, in order')
  t.match(d.interfaces[1], { name: 'eth0', weight: 3, bandwidth: { up: '10Mbps', down: '100Mbps' } }, 'eth0 keeps its file settings')
  t.equal(d.interfaces[0]?.['weight'], 1, 'wwan0 gets the defaults')
  t.equal(d.multipath?.['mode'], 'aggregate')
  t.equal(d.multipath?.['scheduler'], 'weighted')
  t.equal(d.multipath?.['target'], 'nas')
  t.equal(d.multipath?.['accept'], true)
  t.equal(d.gateway?.['advertise-bandwidth'], '1Gbps')
  t.same(d.gateway?.['forward-for'], ['nas', '10.9.0.0/16'])
  t.equal(d.audit?.['path'], '/var/log/qe/audit.log')
  t.equal(d.auth?.['require-2fa'], true)
  t.equal(d.logging?.['level'], 'debug')
})

t.test('the flag table covers every flag of the product brief, each once', async (t) => {
  const brief = ['--name', '--role', '--bootstrap', '--connect-to', '--multipath', '--scheduler', '--target', '--accept-multipath',
    '--advertise-bandwidth', '--forward-for', '--bootstrap-mode', '--public-ip', '--advertise-as-bootstrap', '--audit-log', '--require-2fa']
  const flags = FLAG_KEYS.map((f) => f.flag)
  for (const f of brief) t.ok(flags.includes(f), `${f} maps onto the config`)
  t.equal(new Set(flags).size, flags.length)
  const help = await run(['start', '--help'])
  for (const f of [...brief, '--config', '--advertise-subnet', '--interfaces', '--print-config', '--log-level']) t.match(help.stdout, new RegExp(`^ {2}(-\\w, )?${f}\\b`, 'm'), `${f} is in --help`)
})

t.test('a bare number for --advertise-bandwidth is bits/s, as in the file', async (t) => {
  t.same(applyOverrides({ advertiseBandwidth: '2500000' }, undefined), [{ path: ['gateway', 'advertise-bandwidth'], value: 2500000, source: '--advertise-bandwidth' }])
  const r = await printConfig(t, ['--advertise-bandwidth', '2500000'])
  t.equal(r.code, 0)
  t.equal(r.doc.gateway?.['advertise-bandwidth'], '2.5Mbps')
})

t.test('flags override the file, and absent flags leave it alone', async (t) => {
  const r = await printConfig(t, ['--scheduler', 'round-robin'])
  t.equal(r.code, 0)
  t.equal(r.doc.multipath?.['scheduler'], 'round-robin')
  t.equal(r.doc.multipath?.['mode'], 'failover', 'from the file')
  t.equal(r.doc.multipath?.['accept'], false, 'boolean flags not given do not reset the file')
  t.same(r.doc.subnets, ['192.168.1.0/24'])
  t.same(r.doc.interfaces.map((u) => u['name']), ['eth0', 'wlan0'])
})

t.test('a bad flag value is reported like a config error, against the flag', async (t) => {
  const cases: Array<[string[], string, string]> = [
    [['--multipath', 'fast'], '--multipath', 'multipath.mode'],
    [['--role', 'wizard'], '--role', 'node.role'],
    [['--scheduler', 'fastest'], '--scheduler', 'multipath.scheduler'],
    [['--public-ip', 'not-an-ip'], '--public-ip', 'discovery.public-address'],
    [['--advertise-bandwidth', 'fast'], '--advertise-bandwidth', 'gateway.advertise-bandwidth'],
    [['--advertise-subnet', '10.0.0.5/16'], '--advertise-subnet', 'subnets[1]'],
    [['--interfaces', 'eth0,not an interface!'], '--interfaces', 'interfaces[1].name'],
    [['--bootstrap', 'bad host:port:x'], '--bootstrap', 'discovery.bootstrap[0]'],
    [['--name', 'Not_A_Name'], '--name', 'node.name'],
    [['--target', 'nobody'], '--target', 'multipath.target'],
    [['--log-level', 'loud'], '--log-level', 'logging.level'],
  ]
  for (const [args, flag, path] of cases) {
    const r = await printConfig(t, args)
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`)
    t.equal(r.stdout, '', 'no config printed')
    const errs = lines(r.stderr).filter((l) => l.includes(': error: '))
    t.equal(errs.length, 1, `${args.join(' ')}: one error`)
    t.match(errs[0], `${flag}: error: `)
    t.match(errs[0], new RegExp(` \\(at ${path.replace(/[.[\]]/g, '\\$&')}\\)$`))
    t.match(lines(r.stderr).at(-1), /^quicether: .* is not valid: 1 error.*\(QE_CONFIG_INVALID\)$/)
  }
})

t.test('file errors and flag errors are reported together', async (t) => {
  const broken = BASE.replace('mode: failover', 'mode: sideways')
  const r = await printConfig(t, ['--advertise-subnet', '10.0.0.5/16', '--log-level', 'loud'], broken)
  t.equal(r.code, 1)
  const at = positionOf(broken, 'sideways')
  t.match(r.stderr, new RegExp(`base\\.yaml:${at.line}:${at.col}: error: .*\\(at multipath\\.mode\\)`))
  t.match(r.stderr, /^--advertise-subnet: error: .*host bits/m)
  t.match(r.stderr, /^--log-level: error: /m)
})

t.test('warnings are printed to stderr and do not stop --print-config', async (t) => {
  const r = await printConfig(t, ['--multipath', 'aggregate', '--scheduler', 'weighted', '--interfaces', 'wlan0'])
  t.equal(r.code, 0)
  t.match(r.stderr, /^--multipath: warning: .*needs two or more uplinks/m)
  t.equal(r.doc.multipath?.['mode'], 'aggregate')
})

t.test('a missing config is a read error that says how to make one', async (t) => {
  const missing = join(t.testdir({}), 'absent.yaml')
  const r = await run(['start', '--config', missing, '--print-config', '--name', 'solo'])
  t.equal(r.code, 2)
  t.equal(lines(r.stderr).length, 1)
  t.match(r.stderr, /no such file.*quicether init.*\(QE_CONFIG_READ\)\n$/)
})

t.test('without flags, the summary names just the file', async (t) => {
  const r = await printConfig(t, [], BASE.replace('mode: failover', 'mode: sideways'))
  t.equal(r.code, 1)
  // The one warning is eth0's bandwidth, which this version does not act on.
  t.match(lines(r.stderr).at(-1), /^quicether: \S+base\.yaml is not valid: 1 error, 1 warning \(QE_CONFIG_INVALID\)$/)
})

t.test('the daemon seam: an absent module is undefined, a present one loads', async (t) => {
  t.equal(await importOptional(new URL('./no-such-module.js', import.meta.url)), undefined)
  // A plain JavaScript module, so that it is found as named whether this file runs on tsx or compiled.
  const mod = await importOptional<{ validate: unknown }>(new URL('../../schemas/quicether.validator.generated.js', import.meta.url))
  t.type(mod?.validate, 'function')
})
