import t from 'tap'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfigText } from '../../src/config/index.js'
import { Daemon, type DaemonComponents } from '../../src/daemon/daemon.js'
import { silentLogger } from '../../src/log.js'
import { generateIdentity, publicKeyBase64, saveIdentity } from '../../src/mesh/identity.js'
import { encodeMessage } from '../../src/mesh/messages.js'
import { controlRequest } from '../../src/observe/control-socket.js'
import { memoryFirewallPort } from '../../src/system/nftables.js'
import { FakeAdapter } from '../reconcile/fake-adapter.js'
import { FakeEngine } from './fake-engine.js'
import { createServer } from 'node:net'
import { rename, stat } from 'node:fs/promises'

const KEY_B = Buffer.alloc(32, 2).toString('base64')
const KEY_C = Buffer.alloc(32, 3).toString('base64')

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
async function until(check: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await sleep(5)
  }
}

type TestT = { teardown(fn: () => unknown): void }

async function setup(t: TestT, peers = `  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }`, extraText = '', prepare: (e: FakeEngine) => void = () => undefined, more: Partial<DaemonComponents> = {}) {
  // A short directory: a unix socket path is at most 107 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'qed-'))
  const extra = extraText.replaceAll('@DIR@', dir)
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const idPath = join(dir, 'identity.key')
  const id = generateIdentity()
  await saveIdentity(idPath, id)
  const text = (p: string) =>
    `node: { name: a, identity: ${idPath}, state-dir: ${dir} }\nnetwork: { name: n, overlay: { ipv4: 100.88.0.0/16, ipv6: "fd00:88::/48" } }\ncontrol: { socket: ${join(dir, 'c.sock')} }\ntun: { name: qe9, mtu: 1400 }\n` +
    `discovery: { connect-to: [ b ] }\npeers:\n${p}\n${extra}`
  const file = join(dir, 'node.yaml')
  await writeFile(file, text(peers))
  const load = (s: string, f: string) => loadConfigText(s, f)
  const first = load(text(peers), file)
  if (!first.ok) throw new Error(JSON.stringify(first.diagnostics))
  const kernel = new FakeAdapter()
  kernel.sysctls.set('net.ipv4.conf.qe9.promote_secondaries', '0')
  const engines: FakeEngine[] = []
  const daemon = new Daemon(
    { config: first.config, configPath: file, load, configText: text(peers) },
    { log: silentLogger, system: kernel, firewall: memoryFirewallPort(), createEngine: (init) => { const e = new FakeEngine(init, kernel); prepare(e); engines.push(e); return e }, ...more },
  )
  await daemon.start()
  t.teardown(() => daemon.stop())
  const socket = join(dir, 'c.sock')
  return { dir, daemon, kernel, engines, text, socket, selfKey: publicKeyBase64(id), file }
}

t.test('start: kernel and engine tables from one apply; every admitted peer is in status, connected or not', async (t) => {
  const { daemon, kernel, engines } = await setup(t)
  const engine = engines[0]!
  t.ok(engine.started)
  await until(() => engine.tables.applied !== null)
  t.same(engine.tables.applied?.allowedPeers, [KEY_B], 'the peer key reached the engine through the reconciler')
  t.ok([...kernel.routes.values()].some((r) => r.dst === '100.88.0.0/16' && r.dev === 'qe9'), 'the overlay route is in the kernel')
  // (At least once: a slow machine may see the backoff's next try already.)
  t.same([...new Set(engine.dials)], ['192.0.2.2:7443'], 'the mesh dials (a command, not a table)')
  const st = daemon.status()
  t.match(st.peers, [{ key: KEY_B, name: 'b', state: 'connecting', remote: null }])
  t.equal(st.engine?.tablesVersion, 1)
  t.equal(st.lastApply?.ok, true)
})

t.test('a peer\'s hello is a fact: its routes reach the engine FIB and the kernel; its going down withdraws them', async (t) => {
  const { daemon, kernel, engines } = await setup(t)
  const engine = engines[0]!
  engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'hello', v: 1, name: 'b', role: 'gateway', overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: ['10.20.0.0/16'] }) })
  await until(() => engine.tables.applied?.routes.some((r) => r.prefix === '10.20.0.0/16') === true)
  t.same(engine.tables.applied?.routes, [{ prefix: '10.20.0.0/16', peer: KEY_B }, { prefix: '100.88.0.2/32', peer: KEY_B }])
  await until(() => [...kernel.routes.values()].some((r) => r.dst === '10.20.0.0/16'))
  t.match(daemon.status().peers, [{ name: 'b', state: 'up', hello: { name: 'b' } }])
  engine.emit('peer-down', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client', reason: 'idle-timeout' })
  await until(() => engine.tables.applied?.routes.length === 0)
  await until(() => ![...kernel.routes.values()].some((r) => r.dst === '10.20.0.0/16'))
  t.match(daemon.status().peers, [{ name: 'b', state: 'connecting', lastError: 'tunnel went down: idle-timeout' }])
})

t.test('plan names the peer a new config adds (nothing applied); apply adds it to the engine', async (t) => {
  const { engines, text, socket, dir } = await setup(t)
  const engine = engines[0]!
  await until(() => engine.tables.applied !== null)
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }\n  - { name: carol, key: "${KEY_C}" }`))
  const plan = (await controlRequest(socket, 'plan', { file: next })) as { ok: boolean; actions: { text: string }[] }
  t.equal(plan.ok, true)
  t.match(plan.actions.map((a) => a.text), [/^\+ engine peer carol \(/])
  t.same(engine.tables.applied?.allowedPeers, [KEY_B], 'plan applied nothing')
})

t.test('an engine failure on reload leaves kernel, engine and config file as they were; status names the error', async (t) => {
  const { daemon, kernel, engines, text, dir, socket, file } = await setup(t)
  const engine = engines[0]!
  await until(() => engine.tables.applied !== null)
  const kernelBefore = kernel.dump()
  const tablesBefore = JSON.stringify(engine.tables.applied)
  const fileBefore = await readFile(file, 'utf8')
  engine.tables.refuseNext = new Error('injected: the engine refuses these tables')
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }\n  - { name: carol, key: "${KEY_C}" }`) + 'routes: [ { to: 10.77.0.0/16, via: carol } ]\n')
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean; plan: string[]; errors: { message: string }[] }
  t.equal(res.ok, false)
  t.match(res.plan, [/10\.77\.0\.0\/16/], 'the kernel route was planned (and applied, then rolled back)')
  t.match(res.errors[0]?.message, /rolled back: engine tables: injected/)
  t.same(JSON.stringify(engine.tables.applied), tablesBefore, 'engine: the same tables')
  t.same(kernel.dump(), kernelBefore, 'kernel: exactly as before')
  t.equal(await readFile(file, 'utf8'), fileBefore, 'the config file was not adopted')
  const st = daemon.status()
  t.equal(st.config.generation, 1, 'still the first generation')
  t.match(st.config.errors, [{ severity: 'error', message: /engine tables/ }])
  t.equal(st.lastApply?.ok, false)

  // The same change once the engine takes it: applied, and the file becomes the config.
  const ok = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean; plan: string[] }
  t.equal(ok.ok, true)
  t.match(ok.plan, [/10\.77\.0\.0\/16/, /engine peer carol/])
  t.same(engine.tables.applied?.allowedPeers, [KEY_B, KEY_C].sort())
  t.equal(daemon.status().config.generation, 2)
  t.equal(await readFile(file, 'utf8'), await readFile(next, 'utf8'))
})

t.test('a change of listen port builds a new engine, which gets every table again', async (t) => {
  const { daemon, engines, text, dir, socket } = await setup(t)
  await until(() => engines[0]!.tables.applied !== null)
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }`) + 'listen: { port: 7555 }\n')
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean; restartedTunnels: boolean }
  t.equal(res.ok, true)
  t.equal(res.restartedTunnels, true)
  t.equal(engines.length, 2)
  t.ok(engines[0]!.stopped, 'the old engine stopped')
  t.same(engines[1]!.tables.applied?.allowedPeers, [KEY_B], 'the new engine has its tables')
  t.same([...new Set(engines[1]!.dials)], ['192.0.2.2:7443'], 'a new mesh dials through the new engine (a slow machine may see the next try already)')
  t.match(daemon.status().peers, [{ name: 'b', state: 'connecting' }])
})

t.test('a clean stop removes every kernel object the node made', async (t) => {
  const { daemon, kernel, engines } = await setup(t)
  await until(() => engines[0]!.tables.applied !== null)
  t.ok(kernel.routes.size > 0)
  await daemon.stop()
  t.equal(kernel.routes.size, 0)
  t.equal(kernel.rules.size, 0)
  t.ok(engines[0]!.stopped)
})

t.test('keys this version does not act on are warnings of the running config: in status, and again after a reload', async (t) => {
  const { daemon, dir, socket, text } = await setup(t, undefined, 'interfaces: [{ name: eth9, bandwidth: { up: 5Mbps, down: 50Mbps } }]\n')
  t.match(daemon.status().config.warnings, [{ severity: 'warning', code: 'QE_NOT_IMPLEMENTED', path: /bandwidth\.down/ }])
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }`).replace('interfaces: [{ name: eth9, bandwidth: { up: 5Mbps, down: 50Mbps } }]\n', ''))
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean }
  t.equal(res.ok, true)
  t.same(daemon.status().config.warnings, [], 'gone with the key')
})

const helloFromB = () => encodeMessage({ type: 'hello', v: 1, name: 'b', role: 'gateway', overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: ['10.20.0.0/16'] })

t.test('a peer that connects the moment the first tables admit it (before the mesh starts) is not lost', async (t) => {
  const { daemon, engines } = await setup(t, undefined, '', (e) => {
    e.tables.onSet = (tables) => {
      if (tables.version !== 1) return
      e.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'server' })
      e.emit('control', { peer: KEY_B, data: helloFromB() })
    }
  })
  const engine = engines[0]!
  await until(() => engine.tables.applied?.routes.some((r) => r.prefix === '10.20.0.0/16') === true)
  t.match(daemon.status().peers, [{ name: 'b', state: 'up', hello: { name: 'b' } }])
  t.ok(engine.sent.some((m) => m.peer === KEY_B), 'our hello went out to it')
})

t.test('facts that arrive while a reload fails are applied to the generation that keeps running, not the rejected one', async (t) => {
  const { daemon, engines, text, dir, socket } = await setup(t)
  const engine = engines[0]!
  await until(() => engine.tables.applied !== null)
  engine.tables.refuseNext = new Error('injected: refused')
  // In the middle of the reload's apply (the set it refuses), a peer connects and says hello.
  engine.tables.onSet = () => {
    engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
    engine.emit('control', { peer: KEY_B, data: helloFromB() })
  }
  const refuse = engine.tables.setTables.bind(engine.tables)
  engine.tables.setTables = (tb) => {
    if (engine.tables.refuseNext) engine.tables.onSet?.(tb)
    refuse(tb)
  }
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }\n  - { name: carol, key: "${KEY_C}" }`))
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean }
  t.equal(res.ok, false)
  engine.tables.onSet = null
  await until(() => daemon.status().lastApply?.ok === true)
  t.same(engine.tables.applied?.allowedPeers, [KEY_B], 'the rejected peer carol was never admitted')
  const st = daemon.status()
  t.equal(st.config.generation, 1)
  t.equal(st.lastApply?.ok, true, 'the facts were applied with the running config')
  t.same(st.routes.fib.map((r) => r.prefix), ['10.20.0.0/16', '100.88.0.2/32'])
})

t.test('a rebuild whose new engine cannot start (port in use) brings the previous config back, and says why', async (t) => {
  const { daemon, engines, text, dir, socket } = await setup(t, undefined, '', (e) => {
    if (e.init.listen.port === 7555) e.failStart = new Error('listen 7555: address in use')
  })
  await until(() => engines[0]!.tables.applied !== null)
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }`) + 'listen: { port: 7555 }\n')
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean; restartedTunnels: boolean; errors: { message: string }[] }
  t.equal(res.ok, false)
  t.equal(res.restartedTunnels, true)
  t.match(res.errors[0]?.message, /cannot rebuild the tunnels: listen 7555: address in use; the previous config runs/)
  const back = engines.at(-1)!
  t.equal(back.init.listen.port, 7443, 'an engine of the previous config runs again')
  t.same(back.tables.applied?.allowedPeers, [KEY_B], 'with its tables')
  t.same([...new Set(back.dials)], ['192.0.2.2:7443'], 'and a mesh that dials')
  const st = daemon.status()
  t.equal(st.config.generation, 1)
  t.match(st.config.errors, [{ message: /address in use/ }])
  t.match(st.peers, [{ name: 'b', state: 'connecting' }])
})

/** A loopback port free now (bound and released). */
async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

t.test('metrics and the web UI listen where the config says, move on a reload, and close at stop', async (t) => {
  const [m1, m2, u1] = [await freePort(), await freePort(), await freePort()]
  const obs = (m: number) => `metrics: { listen: "127.0.0.1:${m}" }\nui: { listen: "127.0.0.1:${u1}" }\n`
  const { daemon, dir, file, text, engines } = await setup(t, undefined, obs(m1))
  engines[0]!.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  const scrape = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  let body = await scrape(m1)
  t.match(body, /^quicether_config_generation 1$/m, 'the running generation')
  t.match(body, /^quicether_apply_duration_seconds_count\{trigger="desired"\} [1-9]/m, 'the first apply was timed')
  t.match(body, /^quicether_peer_up\{peer="b"\} [01]$/m, 'the configured peer')
  t.equal((await fetch(`http://127.0.0.1:${m1}/other`)).status, 404)
  t.same(daemon.status().observe, { metrics: { listen: `127.0.0.1:${m1}`, error: null }, ui: { listen: `127.0.0.1:${u1}`, error: null } }, 'status says where they listen')

  const tokenFile = join(dir, 'ui.token')
  t.equal((await stat(tokenFile)).mode & 0o777, 0o600, 'the UI token is 0600')
  const token = (await readFile(tokenFile, 'utf8')).trim()
  t.equal((await fetch(`http://127.0.0.1:${u1}/api/view`)).status, 401, 'no token, no data')
  t.equal((await fetch(`http://127.0.0.1:${u1}/api/view`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } })).status, 401, 'a wrong token, no data')
  const view = (await (await fetch(`http://127.0.0.1:${u1}/api/view`, { headers: { authorization: `Bearer ${token}` } })).json()) as { node: { name: string }; peers: { name: string }[] }
  t.equal(view.node.name, 'a')
  t.same(view.peers.map((p) => p.name), ['b'])
  const page = await fetch(`http://127.0.0.1:${u1}/`)
  t.equal(page.status, 200, 'the page itself needs no token')
  t.notMatch(await page.text(), /192\.0\.2\.2|ui\.token/, 'and holds no data')
  t.equal((await fetch(`http://127.0.0.1:${u1}/api/view`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status, 405, 'read-only')

  // Rewritten atomically, so neither the watcher nor reloadNow reads half a file; either may apply it first.
  const rewrite = async (body: string) => {
    await writeFile(`${file}.tmp`, body)
    await rename(`${file}.tmp`, file)
    daemon.reloadNow()
  }
  const peers = `  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }`
  await rewrite(text(peers).replace(obs(m1), obs(m2)))
  await until(() => daemon.status().observe?.metrics?.listen === `127.0.0.1:${m2}`, 5000)
  body = await scrape(m2)
  t.match(body, /^quicether_config_generation [2-9]$/m, 'metrics moved to the new address, with the new generation')
  await t.rejects(scrape(m1), 'the old address no longer answers')
  t.equal((await fetch(`http://127.0.0.1:${u1}/api/view`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the UI did not move and kept its token')

  // An address that cannot be bound: said in status, and the node runs on.
  const taken = createServer()
  await new Promise<void>((r) => taken.listen(m1, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => taken.close(() => r())))
  await rewrite(text(peers)) // metrics back to m1, which is taken now
  await until(() => daemon.status().observe?.metrics?.listen === `127.0.0.1:${m1}`, 5000)
  t.match(daemon.status().observe?.metrics, { listen: `127.0.0.1:${m1}`, error: /the address is in use/ }, 'a listen that fails is reported')
  t.equal(daemon.status().config.errors.length, 0, 'and the config still applied')
  await daemon.stop()
  await t.rejects(scrape(m2), 'closed at stop')
  await t.rejects(fetch(`http://127.0.0.1:${u1}/`), 'closed at stop')
})

t.test('audit: start, control commands with the caller\'s uid, a peer coming up, an apply as config-applied, stop; the chain verifies', async (t) => {
  const { daemon, engines, socket, text, dir } = await setup(t, undefined, 'audit: { path: @DIR@/audit.log }\n')
  const engine = engines[0]!
  await controlRequest(socket, 'status')
  engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }\n  - { name: c, key: "${KEY_C}" }`))
  const res = (await controlRequest(socket, 'apply', { file: next })) as { ok: boolean; errors: unknown[] }
  t.ok(res.ok, JSON.stringify(res.errors))
  t.match(daemon.status().audit, { enabled: true, path: join(dir, 'audit.log'), failed: null })
  await daemon.stop()
  const rows = (await readFile(join(dir, 'audit.log'), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
  const types = rows.map((r) => r.type)
  t.equal(types[0], 'start')
  t.equal(types[types.length - 1], 'stop')
  t.match(rows.find((r) => r.type === 'cmd' && r.cmd === 'status'), { uid: process.getuid!(), pid: process.pid, ok: true }, 'the caller, from SO_PEERCRED (this very process)')
  t.match(rows.find((r) => r.type === 'peer-up'), { peer: /^b \(/, key: KEY_B, remote: '192.0.2.2:7443' })
  const applied = rows.find((r) => r.type === 'config-applied')
  t.match(applied, { source: 'apply', generation: 2, file: next })
  t.ok((applied?.changes as number) > 0 && Array.isArray(applied?.plan))
  t.ok(rows.findIndex((r) => r.type === 'config-applied') < rows.findIndex((r) => r.type === 'cmd' && r.cmd === 'apply'), 'the apply is recorded before the command that ran it')
  const { verifyAudit } = await import('../../src/audit/verify.js')
  const { readAuditKey } = await import('../../src/audit/key.js')
  t.match(await verifyAudit([join(dir, 'audit.log')], await readAuditKey(join(dir, 'audit.key'))), { ok: true, lines: rows.length })
})

t.test('audit: a log that cannot be written refuses apply, reload and file edits (QE_AUDIT_WRITE) and keeps the peers up', async (t) => {
  let broken = false
  const { open } = await import('node:fs/promises')
  const auditFile = async (p: string) => {
    const fh = await open(p, 'a', 0o600)
    const fail = () => Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })
    return {
      write: async (s: string) => {
        if (broken) throw fail()
        await fh.write(s)
      },
      sync: async () => {
        if (broken) throw fail()
        await fh.sync()
      },
      truncate: (n: number) => fh.truncate(n),
      close: () => fh.close(),
    }
  }
  const { daemon, engines, socket, text, dir, file } = await setup(t, undefined, 'audit: { path: @DIR@/audit.log }\n', undefined, { auditFile })
  const engine = engines[0]!
  engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  await until(() => daemon.status().peers.some((p) => p.key === KEY_B && p.state === 'up'))
  broken = true
  await controlRequest(socket, 'status') // its record fails: the log is failed now
  await until(() => daemon.status().audit?.failed != null)
  t.match(daemon.status().audit?.failed, /EIO/)
  const next = join(dir, 'next.yaml')
  await writeFile(next, text(`  - { name: b, key: "${KEY_B}", endpoints: ["192.0.2.2:7443"] }\n  - { name: c, key: "${KEY_C}" }`))
  await t.rejects(controlRequest(socket, 'apply', { file: next }), { code: 'QE_AUDIT_WRITE', message: /the audit log cannot be written: EIO.*changes are refused until it can/ })
  await t.rejects(controlRequest(socket, 'reload'), { code: 'QE_AUDIT_WRITE' })
  await t.rejects(controlRequest(socket, 'confirm'), { code: 'QE_AUDIT_WRITE' })
  // A file edit is not applied either; status says why.
  await writeFile(file, await readFile(next, 'utf8'))
  await until(() => daemon.status().config.errors.some((e) => e.code === 'QE_AUDIT_WRITE'), 5000)
  t.equal(daemon.status().config.generation, 1, 'the running config stays')
  t.same(engine.tables.applied?.allowedPeers, [KEY_B], 'c was not admitted')
  t.ok(daemon.status().peers.some((p) => p.key === KEY_B && p.state === 'up'), 'the tunnel keeps running')
})

t.test('auth.require-2fa: a client peer gets no route until it logs in with a TOTP code; a wrong or replayed code is refused', async (t) => {
  const { SecondFactorStore } = await import('../../src/auth/store.js')
  const { generate } = await import('../../src/auth/totp.js')
  const { decodeWireMessage } = await import('../../src/mesh/messages.js')
  const { daemon, dir, engines } = await setup(t, undefined, 'auth: { require-2fa: true, session: 1h }\n')
  const engine = engines[0]!
  const store = await SecondFactorStore.open({ stateDir: dir })
  const { secret } = await store.enrol('b', Date.now())
  const sentTo = (type: string) => engine.sent.filter((s) => s.peer === KEY_B).map((s) => decodeWireMessage(s.msg)).filter((r) => r.ok && r.msg.type === type).map((r) => (r as unknown as { msg: Record<string, unknown> }).msg)
  const clientHello = encodeMessage({ type: 'hello', v: 1, name: 'b', role: 'client', overlay: { ipv4: '100.88.0.2', ipv6: null }, subnets: [] })
  const routed = () => engine.tables.applied?.routes.some((r) => r.peer === KEY_B) === true

  engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  engine.emit('control', { peer: KEY_B, data: clientHello })
  await until(() => sentTo('login-needed').length === 1)
  t.match(sentTo('login-needed')[0], { reason: 'no-session', node: 'a' }, 'told to log in')
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(routed(), 'no route to or from the client without a session')
  t.match(daemon.status().auth, { required: true, sessions: [], gated: ['b'] })

  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'login', v: 1, code: generate(secret, Date.now() - 120_000) }) })
  await until(() => sentTo('login-result').length === 1)
  t.match(sentTo('login-result')[0], { ok: false, reason: 'wrong-code' }, 'a code two minutes old is refused')
  t.notOk(routed())

  const code = generate(secret, Date.now())
  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'login', v: 1, code }) })
  await until(() => sentTo('login-result').length === 2)
  t.match(sentTo('login-result')[1], { ok: true, expiresAt: Number }, 'the right code opens a session')
  await until(routed, 3000)
  t.pass('the client is routed once it holds a session')
  t.match(daemon.status().auth, { required: true, sessions: [{ peer: 'b' }], gated: [] })

  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'login', v: 1, code }) })
  await until(() => sentTo('login-result').length === 3)
  t.match(sentTo('login-result')[2], { ok: false, reason: 'replayed' }, 'the same code twice is refused')
})

t.test('a client told login-needed shows it in status; quicether login sends the code and returns the answer', async (t) => {
  const { daemon, engines, socket } = await setup(t)
  const engine = engines[0]!
  engine.emit('peer-up', { peer: KEY_B, remote: { address: '192.0.2.2', port: 7443 }, role: 'client' })
  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'login-needed', v: 1, reason: 'no-session', node: 'b' }) })
  await until(() => (daemon.status().auth?.loginNeeded.length ?? 0) === 1)
  t.match(daemon.status().auth?.loginNeeded, [{ node: 'b', reason: 'no-session' }])
  const answer = controlRequest(socket, 'login', { code: '123456' })
  const { decodeWireMessage } = await import('../../src/mesh/messages.js')
  await until(() => engine.sent.some((s) => { const r = decodeWireMessage(s.msg); return r.ok && r.msg.type === 'login' }))
  engine.emit('control', { peer: KEY_B, data: encodeMessage({ type: 'login-result', v: 1, ok: true, expiresAt: 1_900_000_000_000 }) })
  t.same(await answer, { peer: 'b', ok: true, expiresAt: 1_900_000_000_000 })
  t.same(daemon.status().auth?.loginNeeded, [], 'no longer needed')
})
