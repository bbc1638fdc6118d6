import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { renderUnit } from '../../src/cli/service.js'
import { run } from './run.js'

const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'qe-svc-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}
const unitIn = (root: string) => join(root, 'etc/systemd/system/quicether.service')

t.test('the shipped example is what `service unit` prints by default', async (t) => {
  const r = await run(['service', 'unit'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  t.equal(readFileSync(new URL('../../examples/systemd/quicether.service', import.meta.url), 'utf8'), r.stdout)
})

t.test('the unit: start, reload on SIGHUP, the sandbox', async (t) => {
  const u = renderUnit({ bin: '/opt/qe/bin/quicether', config: '/etc/quicether/node.yaml' })
  const keys = u.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('['))
  const has = (line: string) => t.ok(keys.includes(line), line)
  has('Type=simple')
  has('ExecStart=/opt/qe/bin/quicether start --config /etc/quicether/node.yaml')
  has('ExecReload=/bin/kill -HUP $MAINPID')
  has('Restart=on-failure')
  has('CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW')
  has('NoNewPrivileges=yes')
  has('ProtectSystem=strict')
  has('ReadWritePaths=/etc/quicether')
  has('DeviceAllow=/dev/net/tun rw')
  has('DevicePolicy=closed')
  has('RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX')
  has('StateDirectoryMode=0700')
  has('Environment=QUICETHER_LOG_FORMAT=journal')
  t.notOk(keys.some((l) => l.startsWith('MemoryDenyWriteExecute=')), 'no W^X: the JIT needs it')
  t.notOk(keys.some((l) => l.startsWith('ProtectKernelTunables=')), '/proc/sys/net stays writable')
  t.ok(renderUnit({ bin: '/usr/bin/quicether', config: '/etc/quicether.yaml' }).includes('\nReadWritePaths=/etc\n'), 'the rename needs the directory')
})

t.test('paths must be absolute and plain', async (t) => {
  for (const args of [['--bin', 'quicether'], ['--config', 'x.yaml'], ['--config', '/etc/q e.yaml'], ['--config', '/etc/%n.yaml']]) {
    const r = await run(['service', 'unit', ...args])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, /\(QE_USAGE\)/)
  }
})

t.test('install under --root: 0644, next steps, refuses other content unless --force', async (t) => {
  const root = tmp()
  const r = await run(['service', 'install', '--root', root])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^wrote .*etc\/systemd\/system\/quicether\.service$/m)
  t.match(r.stdout, /systemctl enable --now quicether/)
  t.notMatch(r.stdout, /reloaded/, '--root never reloads')
  t.equal(statSync(unitIn(root)).mode & 0o777, 0o644)
  t.equal(statSync(join(root, 'etc/systemd')).mode & 0o777, 0o755)
  t.equal(readFileSync(unitIn(root), 'utf8'), (await run(['service', 'unit'])).stdout)

  const again = await run(['service', 'install', '--root', root])
  t.equal(again.code, 0)
  t.match(again.stdout, /is up to date/)

  const other = await run(['service', 'install', '--root', root, '--config', '/etc/quicether/quicether.yaml'])
  t.equal(other.code, 1)
  t.match(other.stderr, /exists with other content.*--force.*\(QE_UNIT_EXISTS\)/)
  t.match(readFileSync(unitIn(root), 'utf8'), /^ExecStart=.* --config \/etc\/quicether\.yaml$/m, 'left alone')

  const forced = await run(['service', 'install', '--root', root, '--config', '/etc/quicether/quicether.yaml', '--force'])
  t.equal(forced.code, 0)
  t.match(readFileSync(unitIn(root), 'utf8'), /^ExecStart=.* --config \/etc\/quicether\/quicether\.yaml$/m)
})

t.test('install: an unwritable root is a clear error', async (t) => {
  const root = tmp()
  writeFileSync(join(root, 'etc'), 'a file, not a directory')
  const r = await run(['service', 'install', '--root', root])
  t.equal(r.code, 1)
  t.match(r.stderr, /^quicether: cannot write .* \(QE_UNIT_WRITE\)$/m)
})

const analyze = spawnSync('systemd-analyze', ['--version']).status === 0
t.test('systemd-analyze verify accepts the unit', { skip: analyze ? false : 'systemd-analyze is not installed' }, async (t) => {
  const root = tmp()
  // verify checks that ExecStart's binary exists: point it at this node.
  const r = await run(['service', 'install', '--root', root, '--bin', process.execPath])
  t.equal(r.code, 0, r.stderr)
  const res = spawnSync('systemd-analyze', ['verify', unitIn(root)], { encoding: 'utf8' })
  t.equal(res.status, 0, res.stderr)
  t.equal(res.stderr.trim(), '', 'no warnings')
})
