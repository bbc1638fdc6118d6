/**
 * The NAT world for real (root): each NAT type measures as it promises
 * with the RFC 4787/5780 UDP probe, hosts reach pub only through their
 * NATs, a roaming client keeps reaching its server from a new address, and
 * nothing of a run is left afterwards.
 */
import t from 'tap'
import { whenRootWith } from './root-gate.js'
import type { ChildProcess } from 'node:child_process'
import { spawnIn, stopChild } from '../../src/lab/exec.js'
import { listLabNetns } from '../../src/lab/netns.js'
import { NAT_BEHAVIOUR, NAT_TYPES } from '../../src/lab/nat-types.js'
import { buildNatWorld, buildRoamWorld, probeNat } from '../../src/lab/nat-world.js'
import { ping } from '../../src/lab/traffic.js'

type Teardownable = { teardown: () => Promise<void>; runId: string }

/** Registers the world's teardown with the test first, so a failing assertion still cleans up. */
function owned<W extends Teardownable>(t: { teardown: (fn: () => Promise<void>) => void }, w: W): W {
  t.teardown(() => w.teardown())
  return w
}

async function gone(t: { same: (a: unknown, b: unknown, msg: string) => unknown }, w: Teardownable): Promise<void> {
  await w.teardown()
  t.same(await listLabNetns(w.runId), [], `no namespace of run ${w.runId} is left`)
}

const ECHO_JS = `const u=require('node:dgram').createSocket('udp4');u.on('message',(m,r)=>u.send(r.address+':'+r.port,r.port,r.address));u.bind(+process.argv[2],process.argv[1],()=>console.log('ready'))`
/** One datagram to ip:port (again every 100 ms), prints the echo (the source the server saw). */
const ASK_JS = `const u=require('node:dgram').createSocket('udp4');const go=()=>u.send('hi',+process.argv[2],process.argv[1]);u.on('message',(m)=>{console.log(m.toString());process.exit(0)});u.bind(0,()=>{go();setInterval(go,100)});setTimeout(()=>process.exit(1),3000)`

async function echoServer(ns: string, runId: string, ip: string, port: number): Promise<ChildProcess> {
  const child = spawnIn(ns, process.execPath, ['-e', ECHO_JS, ip, String(port)], { runId })
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve())
    child.once('exit', (code) => reject(new Error(`echo server exited ${code}`)))
  })
  return child
}

async function tests(): Promise<void> {
  // One world per type, built and probed side by side (each run has its own names).
  t.test('every NAT type measures as it promises', async (t) => {
    t.jobs = 3
    for (const type of NAT_TYPES) {
      t.test(`${type}: the probe measures ${NAT_BEHAVIOUR[type].mapping} mapping, ${NAT_BEHAVIOUR[type].filtering} filtering; host a reaches pub`, async (t) => {
        const w = owned(t, await buildNatWorld({ a: type, b: 'port-restricted' }))
        t.same(await probeNat(w, 'a'), NAT_BEHAVIOUR[type])
        const p = await ping(w.ns.a, w.addr.pub1, { count: 2, intervalMs: 20 })
        t.equal(p.received, 2, `a pings pub at ${w.addr.pub1}`)
        const r = await w.exec('a', 'ip', ['-4', 'route', 'show', 'default'])
        t.match(r.stdout, /^default via (192\.168\.1\.1|203\.0\.113\.129) /, "a's one way out is its ISP router")
        if (type !== 'public') {
          const udp = await w.exec('ispA', 'sysctl', ['-n', 'net.netfilter.nf_conntrack_udp_timeout'])
          t.ok(Number(udp.stdout) >= 60, `an idle UDP mapping lives ${udp.stdout.trim()} s (≥ 60 s)`)
        }
        await gone(t, w)
      })
    }
  })

  t.test('through two full cones, b reaches a at its public address; with rate and delay on each leg', async (t) => {
    const w = owned(t, await buildNatWorld({ a: 'full-cone', b: 'full-cone', rate: '20mbit', delayMs: 5 }))
    t.same(await probeNat(w, 'b'), NAT_BEHAVIOUR['full-cone'], 'the probe works through the delay line')
    const server = await echoServer(w.ns.a, w.runId, w.addr.a, 4500)
    try {
      const r = await w.exec('b', process.execPath, ['-e', ASK_JS, w.addr.ispA, '4500'], { timeoutMs: 5000 })
      t.equal(r.stdout.trim().split(':')[0], w.addr.ispB, "a sees b's router's public address, not b's own")
    } finally {
      await stopChild(server, 200)
    }
    const p = await ping(w.ns.a, w.addr.pub1, { count: 3, intervalMs: 20 })
    t.equal(p.received, 3)
    t.ok(Math.min(...p.rttsMs) >= 9, `RTT a → pub ${Math.min(...p.rttsMs)} ms over a leg of 5 ms each way`)
    const tc = await w.exec('ispA', 'tc', ['qdisc', 'show'])
    t.match(tc.stdout, /tbf/, "a's router shapes its leg")
    await gone(t, w)
  })

  t.test('roam: a UDP echo works over wifi, then over lte after moveTo, and the server sees the new address', async (t) => {
    const w = owned(t, await buildRoamWorld({ rate: '50mbit' }))
    t.equal(w.current, 'wifi')
    await t.rejects(buildNatWorld({ a: 'public', b: 'public', run: w.runId }), { code: 'QE_LAB_SPEC' }, "a run id in use is refused (a failed build must not tear down another run's)")
    const server = await echoServer(w.ns.server, w.runId, w.addr.server, 4600)
    try {
      const before = await w.exec('client', process.execPath, ['-e', ASK_JS, w.addr.server, '4600'], { timeoutMs: 5000 })
      t.equal(before.stdout.trim().split(':')[0], w.uplinks.wifi.public, 'over wifi the server sees the wifi router')
      const lteAddr = await w.exec('client', 'ip', ['-4', 'addr', 'show', 'dev', w.uplinks.lte.ifname])
      t.notMatch(lteAddr.stdout, w.uplinks.lte.addr, 'lte has no address before the move')

      const moved = await w.moveTo('lte')
      t.equal(w.current, 'lte')
      t.ok(moved.downAt <= moved.upAt, 'wifi went down before lte came up')
      const wifi = await w.exec('client', 'ip', ['-4', '-o', 'addr', 'show', 'dev', w.uplinks.wifi.ifname])
      t.equal(wifi.stdout.trim(), '', 'wifi has no address after the move')
      const link = await w.exec('client', 'ip', ['-o', 'link', 'show', 'dev', w.uplinks.wifi.ifname])
      t.notMatch(link.stdout, /[<,]UP[,>]/, 'wifi is down')

      const after = await w.exec('client', process.execPath, ['-e', ASK_JS, w.addr.server, '4600'], { timeoutMs: 5000 })
      const seen = after.stdout.trim().split(':')[0]
      t.equal(seen, w.uplinks.lte.public, 'over lte the server sees the lte router')
      t.not(seen, before.stdout.trim().split(':')[0], 'a different source address after the move')
    } finally {
      await stopChild(server, 200)
    }
    await gone(t, w)
  })
}

await whenRootWith(['ip', 'tc', 'nft', 'ping', 'make', 'cc'], tests)
