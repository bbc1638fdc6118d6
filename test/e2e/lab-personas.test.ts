/**
 * The persona scenarios under examples/lab/ go up with `lab up` and do their
 * story: the rural desktop reaches "the internet" only through its exit over
 * the bond; two home offices reach each other through the office hub; a viewer
 * on the internet reaches the home server through the colo's public port; the
 * remote developer's laptop reaches a host on the office LAN. Each run is torn
 * down, also when a check fails. Needs root and the compiled tree.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { loadScenario } from '../../src/lab/scenario.js'
import { labUp, type UpResult } from '../../src/lab/up.js'
import { labDown } from '../../src/lab/teardown.js'
import { runIn, timeUntil } from '../../src/lab/exec.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

const scenario = (name: string) => fileURLToPath(new URL(`../../examples/lab/${name}.yaml`, import.meta.url))

/** Polls `ok` until it holds or `ms` pass. */
const until = async (ok: () => Promise<boolean>, ms: number): Promise<boolean> => (await timeUntil(ok, ms, 250)) !== null

const pings = (ns: string, dst: string) => async () => (await runIn(ns, 'ping', ['-n', '-c', '1', '-W', '1', dst], { allowFail: true })).code === 0

async function up(t: { teardown: (fn: () => Promise<void>) => void }, name: string): Promise<{ ns: (node: string) => string; up: UpResult }> {
  const r = await labUp(await loadScenario(scenario(name)), { daemons: true })
  t.teardown(() => labDown({ runId: r.runId }).then(() => undefined))
  return { ns: (node) => r.nodes.find((n) => n.name === node)!.netns, up: r }
}

t.test('rural-exit: the desktop reaches the internet only through its exit, over the bond', async (t) => {
  const { ns } = await up(t, 'rural-exit')
  t.ok(await until(pings(ns('desktop'), '10.251.4.2'), 20_000), 'desktop → internet host')
  const route = await runIn(ns('desktop'), 'ip', ['route', 'get', '10.251.4.2'])
  t.match(route.stdout, /dev qe0 table 5281/, 'through the exit table into the tunnel')
})

t.test('small-business-hub: two home offices reach each other through the office', async (t) => {
  const { ns } = await up(t, 'small-business-hub')
  t.ok(await until(pings(ns('home-anna'), '10.252.0.3'), 20_000), 'home-anna → home-ben (overlay), through main-office')
  t.ok(await until(pings(ns('home-ben'), '10.251.2.2'), 10_000), 'home-ben → the office file server (masqueraded LAN)')
})

t.test('homelab-ingress: a viewer on the internet reaches the home server through the colo\'s public port', async (t) => {
  const { ns } = await up(t, 'homelab-ingress')
  t.ok(await until(pings(ns('colo-gw'), '10.252.0.2'), 20_000), 'the tunnel is up')
  const server = spawn('ip', ['netns', 'exec', ns('home-server'), process.execPath, '-e', "require('net').createServer((c)=>c.end('plex here\\n')).listen(32400,'10.252.0.2')"], { stdio: 'ignore' })
  t.teardown(() => void server.kill())
  const got = async () => (await runIn(ns('viewer'), process.execPath, ['-e', "const c=require('net').connect(32400,'10.251.1.1');c.setEncoding('utf8');c.on('data',(d)=>process.stdout.write(d));c.on('error',()=>process.exit(1))"], { allowFail: true, timeoutMs: 5000 })).stdout.includes('plex here')
  t.ok(await until(got, 10_000), 'the viewer got the home server\'s answer from 10.251.1.1:32400')
})

t.test('remote-dev-office-lan: the laptop reaches a host on the office LAN', async (t) => {
  const { ns } = await up(t, 'remote-dev-office-lan')
  t.ok(await until(pings(ns('laptop'), '10.251.1.2'), 20_000), 'laptop → build box, through the office gateway')
})

t.test('enterprise: admins reach the HQ LAN anywhere, staff only its intranet port; the gateway counts the refusals', { timeout: 60_000 }, async (t) => {
  const { ns, up: r } = await up(t, 'enterprise')
  t.ok(await until(pings(ns('sales-laptop'), '10.251.2.2'), 20_000), 'ping is allowed for everyone')
  const server = spawn('ip', ['netns', 'exec', ns('hq-server'), process.execPath, '-e', "for (const p of [22, 443]) require('net').createServer((c)=>c.end('hq '+p+'\\n')).listen(p,'10.251.2.2')"], { stdio: 'ignore' })
  t.teardown(() => void server.kill())
  const get = (from: string, port: number) => async () => (await runIn(ns(from), process.execPath, ['-e', `const c=require('net').connect(${port},'10.251.2.2');c.setEncoding('utf8');c.on('data',(d)=>process.stdout.write(d));c.on('end',()=>process.exit(0));c.on('error',()=>process.exit(1));setTimeout(()=>process.exit(2),2000)`], { allowFail: true, timeoutMs: 5000 })).stdout.includes(`hq ${port}`)
  t.ok(await until(get('sales-laptop', 443), 10_000), 'staff reach the intranet port')
  t.ok(await until(get('admin-laptop', 22), 10_000), 'admins reach ssh')
  t.notOk(await get('sales-laptop', 22)(), 'staff do not reach ssh')
  const { controlRequest } = await import('../../src/observe/control-socket.js')
  const gwDir = r.nodes.find((n) => n.name === 'hq-gw')!.config!.replace(/quicether\.yaml$/, '')
  const st = (await controlRequest(`${gwDir}control.sock`, 'status')) as { policy: { drops: { default: number }; rules: { name: string; hits: number }[] } | null }
  t.ok(st.policy !== null, 'hq-gw enforces a policy')
  t.ok(st.policy!.rules.find((x) => x.name === 'staff intranet')!.hits >= 1, 'the intranet rule admitted a flow')
})
