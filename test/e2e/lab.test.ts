/**
 * The lab, for real (root): topologies build and vanish without a trace
 * (also after a kill -9 and `lab down`), and the emulated links do what they
 * were asked: tbf rate, delay-line RTT, random loss, NAT.
 */
import t from 'tap'
import { whenRootWith } from './root-gate.js'
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Lab } from '../../src/lab/topology.js'
import { labDown, markedProcesses } from '../../src/lab/teardown.js'
import { IperfServer, iperfClient, median, ping } from '../../src/lab/traffic.js'
import { runIn } from '../../src/lab/exec.js'
import type { DirectionSpec, LinkSpec, TopologySpec } from '../../src/lab/types.js'
import { nodeArgs } from './fixtures/node-script.js'


const NONE: DirectionSpec = { rate: null, delay: 0, jitter: 0, loss: 0 }

function pair(link: Partial<LinkSpec>): TopologySpec {
  return {
    nodes: [
      { name: 'alpha', daemon: false, config: null },
      { name: 'beta', daemon: false, config: null },
    ],
    links: [{ name: 'l', a: 'alpha', b: 'beta', aToB: NONE, bToA: NONE, queue: null, nat: 'none', ...link }],
  }
}

async function withLab(t: { teardown: (fn: () => Promise<void>) => void }, spec: TopologySpec): Promise<Lab> {
  const lab = new Lab({ spec })
  t.teardown(() => lab.stop().then(() => undefined))
  await lab.start()
  return lab
}

/** Everything visible from the host that a run could leave behind, as sorted name lists. */
function snapshot(): { netns: string[]; links: string[]; tables: string[]; tmp: string[] } {
  const out = (cmd: string, args: string[]): string => spawnSync(cmd, args, { encoding: 'utf8' }).stdout
  return {
    netns: out('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean).sort(),
    // Other suites' test namespaces (qet-) come and go meanwhile; they are not ours to judge.
    links: out('ip', ['-o', 'link', 'show']).split('\n').map((l) => /^[0-9]+: ([^:@]+)/.exec(l)?.[1] ?? '').filter((n) => n && !n.startsWith('qet-')).sort(),
    tables: out('nft', ['list', 'tables']).split('\n').filter(Boolean).sort(),
    tmp: readdirSync(tmpdir()).filter((n) => n.startsWith('qel-')).sort(),
  }
}

function ofRun(s: ReturnType<typeof snapshot>, run: string): string[] {
  return [...s.netns, ...s.links, ...s.tables, ...s.tmp].filter((n) => n.includes(`qel-${run}`))
}

async function tests(): Promise<void> {
  t.test('a topology with every feature goes up and down leaving nothing behind', async (t) => {
    const before = snapshot()
    const dir = { rate: 20e6, delay: 2, jitter: 0, loss: 0.01 }
    const lab = new Lab({
      spec: {
        nodes: ['alpha', 'beta', 'gamma'].map((name) => ({ name, daemon: false, config: null })),
        links: [
          { name: 'emulated', a: 'alpha', b: 'beta', aToB: dir, bToA: dir, queue: null, nat: 'cone' },
          { name: 'plain', a: 'beta', b: 'gamma', aToB: NONE, bToA: NONE, queue: null, nat: 'none' },
        ],
      },
    })
    t.teardown(() => lab.stop().then(() => undefined))
    await lab.start()
    const during = snapshot()
    t.ok(ofRun(during, lab.runId).length >= 5, 'namespaces and the temp dir exist while up')
    t.ok((await markedProcesses(lab.runId)).length >= 1, 'the delay line runs, marked with the run id')
    const r = await ping(lab.node('alpha').netns, lab.link('emulated').addrB.ipv4, { count: 3, intervalMs: 20 })
    t.ok(r.received >= 1, 'the emulated link passes packets')
    await lab.stop()
    const after = snapshot()
    t.same(ofRun(after, lab.runId), [], 'no name of the run is left')
    t.same(after.links, before.links, "the host's interfaces are untouched")
    t.same(after.tables, before.tables, "the host's nft tables are untouched")
    t.same(await markedProcesses(lab.runId), [], 'no process of the run is left')
  })

  t.test('after kill -9 of the lab, lab down removes every leftover', async (t) => {
    const before = snapshot()
    const script = fileURLToPath(new URL('./lab-fixtures/crash-lab.ts', import.meta.url))
    const child = spawn(process.execPath, [...nodeArgs(script)], { stdio: ['ignore', 'pipe', 'inherit'] })
    const runId = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /^([0-9a-f]{4})\n/.exec(out)
        if (m?.[1]) resolve(m[1])
      })
      child.on('exit', (code) => reject(new Error(`the crash fixture exited early (${code})`)))
    })
    t.teardown(() => labDown({ runId }).then(() => undefined))
    child.kill('SIGKILL')
    await new Promise((r) => child.once('exit', r))
    t.ok(ofRun(snapshot(), runId).length >= 3, 'the killed lab left namespaces behind')
    t.ok((await markedProcesses(runId)).length >= 1, 'and its delay line is still running')
    const report = await labDown({ runId })
    t.ok(report.namespaces.length >= 3, `lab down removed ${report.namespaces.join(' ')}`)
    t.ok(report.processes.length >= 1, 'and stopped the orphaned delay line')
    const after = snapshot()
    t.same(ofRun(after, runId), [])
    t.same(after.links, before.links)
    t.same(after.tables, before.tables)
    t.same(await markedProcesses(runId), [])
    const again = await labDown({ runId })
    t.same([again.namespaces, again.processes, again.dirs], [[], [], []], 'a second lab down finds nothing')
  })

  t.test('tbf holds a 50 Mbit/s link: raw TCP reaches 90-105% of the rate', async (t) => {
    const rate = 50e6
    const lab = await withLab(t, pair({ aToB: { ...NONE, rate }, bToA: { ...NONE, rate } }))
    const b = lab.link(0).addrB.ipv4
    const server = new IperfServer({ netns: lab.node('beta').netns, bind: b, runId: lab.runId })
    await server.start()
    t.teardown(() => server.stop())
    // The ceiling is the shaping and holds on every attempt. The floor says the link can be filled;
    // one TCP flow beside the unit lane's CPU load missed it now and then (84.7% once in CI), so a
    // miss gets one more attempt: a misconfigured tbf (a burst or limit too small) misses both.
    const shares: number[] = []
    for (let attempt = 0; attempt < 2 && !shares.some((s) => s >= 0.9); attempt++) {
      const r = await iperfClient(lab.node('alpha').netns, b, { seconds: 3, omit: 1 })
      shares.push((r.mbit * 1e6) / rate)
    }
    const pct = shares.map((s) => `${(s * 100).toFixed(1)}%`).join(', then ')
    t.ok(shares.some((s) => s >= 0.9), `reached ${pct} of the rate (≥ 90% in one of two attempts)`)
    t.ok(shares.every((s) => s <= 1.05), `reached ${pct} of the rate (≤ 105% in every attempt)`)
  })

  t.test('the delay line gives the RTT it was asked for (±1 ms), IPv4 and IPv6', async (t) => {
    const lab = await withLab(t, pair({ aToB: { ...NONE, delay: 7 }, bToA: { ...NONE, delay: 3 } }))
    for (const addr of [lab.link(0).addrB.ipv4, lab.link(0).addrB.ipv6]) {
      const r = await ping(lab.node('alpha').netns, addr, { count: 30, intervalMs: 20 })
      t.equal(r.received, 30, `${addr}: every echo answered`)
      const rtt = median(r.rttsMs)
      t.ok(Math.abs(rtt - 10) <= 1, `${addr}: median RTT ${rtt} ms, asked 7 + 3 ms`)
    }
  })

  t.test('a loss rule drops roughly the asked share, in its direction only', async (t) => {
    const lab = await withLab(t, pair({ aToB: { ...NONE, loss: 0.2 } }))
    const n = 400
    const r = await ping(lab.node('alpha').netns, lab.link(0).addrB.ipv4, { count: n, intervalMs: 5 })
    // Echo requests go a→b (20% loss), replies b→a (none): about 80% come back.
    // Binomial sd at n=400 is 2%; ±8% is four of them.
    const share = r.received / r.sent
    t.equal(r.sent, n)
    t.ok(Math.abs(share - 0.8) <= 0.08, `${r.received}/${r.sent} answered (expected ~80%)`)
  })

  for (const [nat, delay] of [['cone', 0], ['cone', 2], ['symmetric', 2]] as const) {
    t.test(`NAT (${nat}${delay ? ', through the delay line' : ''}) rewrites the source; outside cannot reach in`, async (t) => {
      const d = { ...NONE, delay }
      const lab = await withLab(t, pair({ nat, aToB: d, bToA: d }))
      const link = lab.link(0)
      const seen = await sourceSeenBy(lab, link.addrB.ipv4)
      t.not(seen, link.addrA.ipv4, "beta does not see alpha's own address")
      t.equal(seen, link.addrA.ipv4.replace(/\.1$/, '.129'), "beta sees the router's outside address")
      // Even with a route to the inside (as an attacker on the outside would add), nothing unsolicited gets in.
      await runIn(lab.node('beta').netns, 'ip', ['route', 'add', `${link.addrA.ipv4.replace(/\.1$/, '.0')}/25`, 'via', seen])
      const back = await ping(lab.node('beta').netns, link.addrA.ipv4, { count: 3, intervalMs: 20 })
      t.equal(back.received, 0, 'beta cannot reach alpha behind the NAT')
    })
  }
}

/** Connects from alpha to a TCP server in beta and returns the source address beta saw. */
async function sourceSeenBy(lab: Lab, bAddr: string): Promise<string> {
  const serverJs = `const s=require('net').createServer(c=>{c.end(c.remoteAddress+'\\n');s.close()});s.listen(7999,'${bAddr}',()=>console.log('ready'))`
  const server = spawn('ip', ['netns', 'exec', lab.node('beta').netns, process.execPath, '-e', serverJs], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    server.stdout.once('data', () => resolve())
    server.once('exit', (c) => reject(new Error(`server exited ${c}`)))
  })
  const clientJs = `const c=require('net').connect(7999,'${bAddr}');let d='';c.on('data',x=>d+=x);c.on('end',()=>process.stdout.write(d))`
  const r = await runIn(lab.node('alpha').netns, process.execPath, ['-e', clientJs], { timeoutMs: 10_000 })
  server.kill()
  return r.stdout.trim()
}

await whenRootWith(['ip', 'tc', 'nft', 'iperf3', 'ping', 'make', 'cc'], tests)
