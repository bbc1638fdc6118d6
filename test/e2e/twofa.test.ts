/**
 * The second factor with real tunnels: gw requires it (auth.require-2fa,
 * switched on by a config edit); the laptop's traffic stops at once (its
 * tunnel stays up), its status says a login is needed, and `login` with a
 * TOTP code through its own daemon's control socket lets traffic through
 * again. Needs root and the compiled tree; the lab is torn down even when
 * a check fails.
 */
import t from 'tap'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import YAML from 'yaml'
import { Lab } from '../../src/lab/topology.js'
import { startDaemons, type LabDaemon } from '../../src/lab/daemon.js'
import { overlayAddresses } from '../../src/lab/nodeconfig.js'
import { DEFAULT_NETWORK } from '../../src/lab/scenario.js'
import { runIn, timeUntil } from '../../src/lab/exec.js'
import { controlRequest } from '../../src/observe/control-socket.js'
import { SecondFactorStore } from '../../src/auth/store.js'
import { generate } from '../../src/auth/totp.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const NO_EFFECT = { rate: null, delay: 0, jitter: 0, loss: 0 }

t.test('a client without a session is cut off; a TOTP login lets it through', async (t) => {
  const lab = new Lab({ spec: { nodes: [{ name: 'laptop', daemon: true, config: null }, { name: 'gw', daemon: true, config: { node: { role: 'gateway' } } }], links: [{ name: 'l', a: 'laptop', b: 'gw', aToB: NO_EFFECT, bToA: NO_EFFECT, queue: null, nat: 'none' }] } })
  const daemons: LabDaemon[] = []
  t.teardown(async () => {
    for (const d of daemons) await d.stop().catch(() => undefined)
    await lab.stop()
  })
  await lab.start()
  daemons.push(...(await startDaemons({ lab, network: DEFAULT_NETWORK, detached: false })).values())
  const gw = daemons.find((d) => d.init.node === 'gw')!
  const gwAddr = overlayAddresses(lab.spec, DEFAULT_NETWORK).get('gw')!.ipv4
  const pings = async () => (await runIn(lab.node('laptop').netns, 'ping', ['-n', '-c', '1', '-W', '1', gwAddr], { allowFail: true })).code === 0
  t.ok(await pings(), 'before: the laptop reaches gw')

  const { secret } = await (await SecondFactorStore.open({ stateDir: join(lab.dir, 'gw') })).enrol('laptop', Date.now())
  const doc = YAML.parse(await readFile(gw.init.configPath, 'utf8')) as Record<string, unknown>
  doc.auth = { 'require-2fa': true, session: '1h' }
  await writeFile(`${gw.init.configPath}.tmp`, YAML.stringify(doc))
  await rename(`${gw.init.configPath}.tmp`, gw.init.configPath)
  const laptopSock = join(lab.dir, 'laptop', 'control.sock')
  const needed = await timeUntil(async () => ((await controlRequest(laptopSock, 'status')) as { auth: { loginNeeded: unknown[] } | null }).auth?.loginNeeded.length === 1, 10_000, 100)
  t.ok(needed !== null, "the laptop's status says a login is needed")
  t.ok(await timeUntil(async () => !(await pings()), 5000, 100) !== null, 'its traffic no longer reaches gw')
  const gwStatus = (await controlRequest(join(lab.dir, 'gw', 'control.sock'), 'status')) as { peers: { name: string; state: string }[]; auth: { gated: string[] } }
  if (!t.match(gwStatus, { peers: [{ name: 'laptop', state: 'up' }], auth: { gated: ['laptop'] } }, 'the tunnel stays up, gated')) t.comment(`gw's log:\n${gw.logTail(30).join('\n')}`)

  const wrong = (await controlRequest(laptopSock, 'login', { code: generate(secret, Date.now() - 300_000) })) as { ok: boolean; reason?: string }
  t.match(wrong, { peer: 'gw', ok: false, reason: 'wrong-code' })
  const ok = (await controlRequest(laptopSock, 'login', { code: generate(secret, Date.now()) })) as { ok: boolean; expiresAt?: number }
  t.match(ok, { peer: 'gw', ok: true, expiresAt: Number })
  t.ok(await timeUntil(pings, 5000, 100) !== null, 'after the login the laptop reaches gw again')
})
