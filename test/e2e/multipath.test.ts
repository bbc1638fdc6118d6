/**
 * Multipath bonding end to end, as root: a client namespace and a gateway
 * namespace joined by TWO veth pairs (two uplinks, separate subnets, each
 * shaped to 50 Mbit/s with tbf both ways). The gateway has one address
 * (on its loopback) reachable over both links; the client bonds to it with
 * one path per uplink. Checks: both paths carry traffic (per-path counters),
 * an uplink taken down mid-transfer loses nothing (the TCP transfer inside
 * completes with a matching SHA-256, the dead path's unacknowledged packets
 * re-sent), `failover` carries nothing on the backup while the primary is
 * healthy, uplinks removed/added at runtime leave/join, an uplink whose
 * device appears later (a dongle plugged in) joins and leaves with the
 * device, and a path survives its uplink's address changing. Everything
 * carries the qet-<rand> prefix and is removed in teardown.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createBondLab } from './fixtures/engine-bond-lab.js'
import { makeKeys, nsExec, peerConfig, pings, PeerProc } from './fixtures/engine-lab.js'
import { nodeArgs } from './fixtures/node-script.js'

const TCP_FIXTURE = fileURLToPath(new URL('./fixtures/engine-tcp.ts', import.meta.url))
const PORT = 5000

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
} else {
  await run()
}

function jsonProc(ns: string, args: string[], children: ChildProcess[]): (pred: (o: Record<string, unknown>) => boolean, ms?: number) => Promise<Record<string, unknown>> {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs(args[0] as string), ...args.slice(1)], { stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(proc)
  const lines: Array<Record<string, unknown>> = []
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()))
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>)
    } catch {
      // not ours
    }
  })
  return async (pred, ms = 30_000) => {
    const deadline = Date.now() + ms
    for (;;) {
      const hit = lines.find(pred)
      if (hit) return hit
      if (proc.exitCode !== null) throw new Error(`helper exited ${proc.exitCode}: ${stderr.slice(-1000)}`)
      if (Date.now() > deadline) throw new Error(`helper timed out; stderr: ${stderr.slice(-1000)}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

interface PathRow {
  uplink: string
  alive: boolean
  packetsOut: number
  packetsIn: number
  bytesOut: number
  rttMs: number
  rttMinMs: number
  bytesInFlight: number
  queued: number
  dropped: number
  queueOutMs?: number
  queueBackMs?: number
}

async function pathsOf(p: PeerProc, key: string): Promise<PathRow[]> {
  const st = await p.stats()
  const peer = st.peers.find((x) => x.peer === key)
  return (peer?.paths as PathRow[] | undefined) ?? []
}

async function run(): Promise<void> {
  const children: ChildProcess[] = []
  const peers: PeerProc[] = []
  const L = createBondLab(50)
  t.teardown(async () => {
    for (const p of peers) await p.kill9().catch(() => undefined)
    for (const c of children) c.kill('SIGKILL')
    L.destroy()
  })
  const kC = makeKeys()
  const kG = makeKeys()
  const start = (ns: string, cfg: Record<string, unknown>): PeerProc => {
    const p = new PeerProc(ns, cfg)
    peers.push(p)
    return p
  }
  const G = start(L.nsG, peerConfig(kG, kC, 2, { address: '0.0.0.0', port: PORT }))
  await G.waitFor((e) => e.event === 'ready', 20_000)
  const uplinks = [{ name: L.up[0] }, { name: L.up[1] }]
  let C = start(
    L.nsC,
    peerConfig(kC, kG, 1, { address: '0.0.0.0', port: 0 }, { uplinks, bond: 'aggregate', connect: { address: L.gw, port: PORT } }),
  )

  await t.test('two uplinks: one peer, two paths, both carry traffic', async (t) => {
    await C.waitFor((e) => e.event === 'peer-up', 20_000)
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === L.up[0], 10_000)
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === L.up[1], 10_000)
    await G.waitFor((e) => e.event === 'path-up' && e.index === 1, 10_000)
    t.equal(G.events.filter((e) => e.event === 'peer-up').length, 1, 'the gateway sees one peer, not a duplicate')
    t.equal(G.events.filter((e) => e.event === 'peer-down').length, 0, 'and replaced nothing')
    t.ok(pings(L.nsC, '10.77.0.2', { count: 3 }), 'overlay ping through the bond')
    const recv = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7000'], children)
    await recv((o) => o.listening === true)
    const send = jsonProc(L.nsC, [TCP_FIXTURE, 'send', '10.77.0.2', '7000', '20'], children)
    const sent = await send((o) => typeof o.sha256 === 'string', 60_000)
    const got = await recv((o) => typeof o.sha256 === 'string', 60_000)
    t.equal(got.sha256, sent.sha256, 'checksums match')
    const paths = await pathsOf(C, kG.pub)
    t.equal(paths.length, 2, 'two paths in the peer stats')
    for (const p of paths) t.ok(p.packetsOut > 500, `path ${p.uplink} sent ${p.packetsOut} packets`)
    for (const p of paths) {
      t.ok(p.rttMinMs > 0 && p.rttMinMs <= p.rttMs, `path ${p.uplink}: lowest RTT ${p.rttMinMs} ms, smoothed ${p.rttMs} ms`)
      t.ok([p.bytesInFlight, p.queued, p.dropped].every((x) => Number.isInteger(x) && x >= 0), `path ${p.uplink}: in flight ${p.bytesInFlight} B, queued ${p.queued}, dropped ${p.dropped}`)
    }
    const gpaths = await pathsOf(G, kC.pub)
    t.equal(gpaths.length, 2, 'the gateway has both paths too')
    for (const p of gpaths) t.ok(p.packetsIn > 500, `gateway received ${p.packetsIn} on path ${p.uplink || '(accepted)'}`)
  })

  await t.test("each direction's queue: during a transfer both ends report, on every path, the queue out (the peer's echo of our stamps) and back", async (t) => {
    const recv = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7003'], children)
    await recv((o) => o.listening === true)
    const send = jsonProc(L.nsC, [TCP_FIXTURE, 'send', '10.77.0.2', '7003', '40'], children)
    await recv((o) => o.receiving === true)
    const measured = (rows: PathRow[]): boolean =>
      rows.length === 2 && rows.every((r) => [r.queueOutMs, r.queueBackMs].every((x) => typeof x === 'number' && Number.isFinite(x) && x >= 0))
    let client: PathRow[] = []
    let gateway: PathRow[] = []
    for (let i = 0; i < 100 && !(measured(client) && measured(gateway)); i++) {
      if (!measured(client)) client = await pathsOf(C, kG.pub)
      if (!measured(gateway)) gateway = await pathsOf(G, kC.pub)
      await new Promise((r) => setTimeout(r, 50))
    }
    const show = (rows: PathRow[]): string => rows.map((r) => `${r.uplink || '(accepted)'} out ${r.queueOutMs} back ${r.queueBackMs}`).join(', ')
    t.ok(measured(client), `the sender's paths: ${show(client)}`)
    t.ok(measured(gateway), `the receiver's paths (its stamps ride the NOPs it sends only to echo): ${show(gateway)}`)
    const sent = await send((o) => typeof o.sha256 === 'string', 60_000)
    const got = await recv((o) => typeof o.sha256 === 'string', 60_000)
    t.equal(got.sha256, sent.sha256, 'the transfer completed intact')
  })

  await t.test('traffic classes: matching packets go outside the sequence, both ways; others do not', async (t) => {
    type Bond = { classedOut: number; classedIn: number; acksOut: number }
    const bondOf = async (p: PeerProc, key: string): Promise<Bond> => {
      const st = await p.stats()
      return (st.peers.find((x) => x.peer === key)?.bond as Bond | undefined) ?? { classedOut: 0, classedIn: 0, acksOut: 0 }
    }
    const classes = [{ maxPacketSize: 200 }, { dscp: [46] }]
    C.send({ cmd: 'classes', classes })
    G.send({ cmd: 'classes', classes })
    await new Promise((r) => setTimeout(r, 200))
    const c0 = await bondOf(C, kG.pub)
    const g0 = await bondOf(G, kC.pub)
    t.ok(pings(L.nsC, '10.77.0.2', { count: 5 }), 'small pings answered')
    const c1 = await bondOf(C, kG.pub)
    const g1 = await bondOf(G, kC.pub)
    t.ok(c1.classedOut - c0.classedOut >= 5, `the client sent its small pings in the class (${c1.classedOut - c0.classedOut})`)
    t.ok(g1.classedIn - g0.classedIn >= 5, `the gateway received them outside the sequence (${g1.classedIn - g0.classedIn})`)
    t.ok(g1.classedOut - g0.classedOut >= 5, `and answered in its own class (${g1.classedOut - g0.classedOut})`)
    t.ok(pings(L.nsC, '10.77.0.2', { count: 5, size: 1000 }), 'big pings answered')
    const c2 = await bondOf(C, kG.pub)
    t.ok(c2.classedOut - c1.classedOut < 5, `big pings matched no class (${c2.classedOut - c1.classedOut} classed)`)
    nsExec(L.nsC, ['ping', '-n', '-q', '-c', '5', '-i', '0.2', '-W', '1', '-s', '1000', '-Q', '184', '10.77.0.2'], { timeoutMs: 20_000 })
    const c3 = await bondOf(C, kG.pub)
    t.ok(c3.classedOut - c2.classedOut >= 5, `big pings marked EF matched the DSCP class (${c3.classedOut - c2.classedOut})`)
    // A bulk TCP flow's short segments (here 60 bytes after every 4,000;
    // in the lab, the tail of a super-packet cut to MSS) fit the
    // small-packet class, but going ahead of the full segments before them
    // is reordering to TCP: they stay in the flow's sequence. So does its
    // SYN: a TCP connection is in the sequence from its first packet, both
    // ways (its data takes the bond's delay from the handshake on, which
    // HyStart needs to see). The receiver's pure ACKs go outside the
    // sequence, but not in the class: they are not held behind the bond's
    // other packets (an upload's, beside a download).
    const recv = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7002'], children)
    await recv((o) => o.listening === true)
    const g3 = await bondOf(G, kC.pub)
    const send = jsonProc(L.nsC, [TCP_FIXTURE, 'pieces', '10.77.0.2', '7002', '500'], children)
    const sent = await send((o) => typeof o.sha256 === 'string', 60_000)
    const got = await recv((o) => typeof o.sha256 === 'string', 60_000)
    t.equal(got.sha256, sent.sha256, 'a bulk transfer under the small-packet class arrives intact')
    const c4 = await bondOf(C, kG.pub)
    const g4 = await bondOf(G, kC.pub)
    t.ok(c4.classedOut - c3.classedOut <= 5, `its short segments stayed in the sequence (${c4.classedOut - c3.classedOut} classed)`)
    t.ok(g4.classedOut - g3.classedOut <= 5, `its ACKs did not take the gateway's class (${g4.classedOut - g3.classedOut} classed)`)
    t.ok(g4.acksOut - g3.acksOut >= 20, `they went outside the gateway's sequence (${g4.acksOut - g3.acksOut} ACKs)`)
    t.ok(c4.classedIn - c3.classedIn >= g4.acksOut - g3.acksOut, `and the client took them outside its sequence (${c4.classedIn - c3.classedIn} packets)`)
    t.ok(got.bytes === 500 * 4060, `all of it (${got.bytes} bytes)`)
    // A connection that carries nothing is small packets only, yet none
    // takes the class: its SYN opens it in the sequence, and its FINs
    // follow there (in their place after the data); its pure ACKs go
    // outside the sequence.
    const sequenced = async (p: PeerProc, key: string): Promise<number> =>
      (await pathsOf(p, key)).reduce((n, x) => n + x.packetsOut, 0) - (await bondOf(p, key)).classedOut
    const recv2 = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7003'], children)
    await recv2((o) => o.listening === true)
    const [cs0, gs0, cc0, gc0] = [await sequenced(C, kG.pub), await sequenced(G, kC.pub), (await bondOf(C, kG.pub)).classedOut, (await bondOf(G, kC.pub)).classedOut]
    const [ca0, ga0] = [(await bondOf(C, kG.pub)).acksOut, (await bondOf(G, kC.pub)).acksOut]
    const empty = jsonProc(L.nsC, [TCP_FIXTURE, 'send', '10.77.0.2', '7003', '0'], children)
    await empty((o) => typeof o.sha256 === 'string', 20_000)
    await recv2((o) => typeof o.sha256 === 'string', 20_000)
    await new Promise((r) => setTimeout(r, 300))
    const [cs1, gs1, cc1, gc1] = [await sequenced(C, kG.pub), await sequenced(G, kC.pub), (await bondOf(C, kG.pub)).classedOut, (await bondOf(G, kC.pub)).classedOut]
    const [ca1, ga1] = [(await bondOf(C, kG.pub)).acksOut, (await bondOf(G, kC.pub)).acksOut]
    t.ok(cs1 - cs0 - (ca1 - ca0) >= 2 && gs1 - gs0 - (ga1 - ga0) >= 2, `an empty connection's SYNs and FINs went in the sequence (client ${cs1 - cs0 - (ca1 - ca0)} packets, gateway ${gs1 - gs0 - (ga1 - ga0)})`)
    t.ok(ca1 - ca0 >= 1, `its pure ACKs outside it (client ${ca1 - ca0}, gateway ${ga1 - ga0})`)
    t.ok(cc1 - cc0 === 0 && gc1 - gc0 === 0, `none of it in the class (client ${cc1 - cc0}, gateway ${gc1 - gc0})`)
    C.send({ cmd: 'classes', classes: [] })
    G.send({ cmd: 'classes', classes: [] })
    await new Promise((r) => setTimeout(r, 200))
    const c5 = await bondOf(C, kG.pub)
    t.ok(pings(L.nsC, '10.77.0.2', { count: 3 }), 'pings answered with no classes')
    t.equal((await bondOf(C, kG.pub)).classedOut, c5.classedOut, 'no classes: nothing classed')
  })

  await t.test('an uplink taken down mid-transfer: the transfer completes intact', async (t) => {
    const recv = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7001'], children)
    await recv((o) => o.listening === true)
    const from = C.events.length
    const send = jsonProc(L.nsC, [TCP_FIXTURE, 'send', '10.77.0.2', '7001', '40'], children)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    nsExec(L.nsC, ['ip', 'link', 'set', L.up[1], 'down'])
    const sent = await send((o) => typeof o.sha256 === 'string', 60_000)
    const got = await recv((o) => typeof o.sha256 === 'string', 60_000)
    t.equal(got.bytes, sent.bytes, 'every byte arrived')
    t.equal(got.sha256, sent.sha256, 'checksums match')
    t.ok(
      C.events.slice(from).some((e) => e.event === 'path-down' && e.uplink === L.up[1]),
      'the dead path was reported down',
    )
    t.notOk(
      C.events.slice(from).some((e) => e.event === 'peer-down'),
      'the peer stayed up',
    )
    const st = await C.stats()
    const bond = st.peers.find((x) => x.peer === kG.pub)?.bond as { resent: number } | undefined
    t.ok(bond && bond.resent > 0, `unacknowledged packets of the dead path were re-sent on the other (${bond?.resent})`)
    nsExec(L.nsC, ['ip', 'link', 'set', L.up[1], 'up'])
  })

  await t.test('failover: nothing on the backup while the primary is healthy', async (t) => {
    await C.stop()
    await G.waitFor((e) => e.event === 'peer-down', 10_000)
    const from = G.events.length
    C = start(
      L.nsC,
      peerConfig(kC, kG, 1, { address: '0.0.0.0', port: 0 }, {
        uplinks: [{ name: L.up[0], role: 'primary' }, { name: L.up[1], role: 'backup' }],
        bond: 'failover',
        connect: { address: L.gw, port: PORT },
      }),
    )
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === L.up[0], 20_000)
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === L.up[1], 20_000)
    await G.waitFor((e) => e.event === 'path-up' && e.index === 1, 10_000, from)
    const recv = jsonProc(L.nsG, [TCP_FIXTURE, 'recv', '10.77.0.2', '7002'], children)
    await recv((o) => o.listening === true)
    const send = jsonProc(L.nsC, [TCP_FIXTURE, 'send', '10.77.0.2', '7002', '5'], children)
    const sent = await send((o) => typeof o.sha256 === 'string', 60_000)
    const got = await recv((o) => typeof o.sha256 === 'string', 60_000)
    t.equal(got.sha256, sent.sha256, 'checksums match')
    const paths = await pathsOf(C, kG.pub)
    const primary = paths.find((p) => p.uplink === L.up[0])
    const backup = paths.find((p) => p.uplink === L.up[1])
    t.ok(primary && primary.packetsOut > 1000, 'the primary carried the transfer')
    t.equal(backup?.packetsOut, 0, 'the backup carried nothing (client → gateway)')
    const gpaths = await pathsOf(G, kC.pub)
    t.equal(gpaths.find((p) => p.packetsIn === 0 && p.packetsOut === 0) !== undefined, true, 'nor gateway → client')
  })

  await t.test('uplinks change live: a removed one leaves, an added one joins', async (t) => {
    let from = C.events.length
    C.send({ cmd: 'uplinks', uplinks: [{ name: L.up[0] }] })
    await C.waitFor((e) => e.event === 'path-down' && e.uplink === L.up[1], 10_000, from)
    t.equal((await pathsOf(C, kG.pub)).length, 1, 'one path left')
    t.ok(pings(L.nsC, '10.77.0.2', { count: 2 }), 'the peer still answers')
    from = C.events.length
    C.send({ cmd: 'uplinks', uplinks: [{ name: L.up[0] }, { name: L.up[1] }] })
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === L.up[1], 10_000, from)
    t.equal((await pathsOf(C, kG.pub)).length, 2, 'two paths again')
    t.notOk(C.events.slice(from).some((e) => e.event === 'peer-down'), 'the peer never went down')
  })

  await t.test('an uplink whose device appears at runtime joins; when the device vanishes it leaves', async (t) => {
    const third = L.up[0].replace(/1$/, '3')
    let from = C.events.length
    C.send({ cmd: 'uplinks', uplinks: [{ name: L.up[0] }, { name: L.up[1] }, { name: third }] })
    await new Promise((r) => setTimeout(r, 1000))
    t.equal((await pathsOf(C, kG.pub)).length, 2, 'a named uplink with no device yet carries no path')
    const t0 = Date.now()
    L.addUplink(3)
    await C.waitFor((e) => e.event === 'path-up' && e.uplink === third, 10_000, from)
    const joinedMs = Date.now() - t0
    const rows = await pathsOf(C, kG.pub)
    t.equal(rows.length, 3, `the plugged-in uplink has a path (${joinedMs} ms after its device appeared)`)
    t.ok(rows.find((r) => r.uplink === third)?.alive, 'and it is alive')
    from = C.events.length
    nsExec(L.nsC, ['ip', 'link', 'del', third])
    await C.waitFor((e) => e.event === 'path-down' && e.uplink === third, 10_000, from)
    t.same((await pathsOf(C, kG.pub)).map((r) => r.uplink).sort(), [L.up[0], L.up[1]].sort(), 'its path left with the device')
    t.ok(pings(L.nsC, '10.77.0.2', { count: 2 }), 'the peer still answers')
    t.notOk(C.events.slice(from).some((e) => e.event === 'peer-down'), 'the peer never went down')
  })

  await t.test("an uplink's address changes: its path is alive again", async (t) => {
    const from = C.events.length
    const t0 = Date.now()
    L.readdress(2, 9)
    // Past the dead-path time and the recycle time: whatever happened (QUIC
    // migration, or the path closed and dialled again) must have settled.
    let alive = 0
    let settledMs = -1
    while (Date.now() - t0 < 15_000 && alive < 3) {
      await new Promise((r) => setTimeout(r, 300))
      const row = (await pathsOf(C, kG.pub)).find((r) => r.uplink === L.up[1])
      alive = row?.alive && Date.now() - t0 > 1000 ? alive + 1 : 0
      if (alive === 1) settledMs = Date.now() - t0
    }
    t.equal(alive, 3, `the path on the re-addressed uplink is alive (settled ${settledMs} ms after the change)`)
    t.ok(pings(L.nsC, '10.77.0.2', { count: 2 }), 'the peer still answers')
    t.notOk(C.events.slice(from).some((e) => e.event === 'peer-down'), 'the peer never went down')
  })

  await t.test('a bonded endpoint forgotten (it left the config): its paths close and stay closed', async (t) => {
    let from = C.events.length
    C.send({ cmd: 'forget', address: L.gw, port: PORT })
    await C.waitFor((e) => e.event === 'path-down' && e.uplink === L.up[0], 10_000, from)
    await C.waitFor((e) => e.event === 'path-down' && e.uplink === L.up[1], 10_000, from)
    // Several redial periods: a forgotten endpoint is not dialled again.
    await new Promise((r) => setTimeout(r, 3000))
    t.equal((await pathsOf(C, kG.pub)).length, 0, 'no path left')
    t.notOk(C.events.slice(from).some((e) => e.event === 'path-up'), 'none dialled again in 3 s')
    from = C.events.length
    C.send({ cmd: 'connect', address: L.gw, port: PORT, bond: 'failover' })
    await C.waitFor((e) => e.event === 'path-up', 10_000, from)
    t.ok(pings(L.nsC, '10.77.0.2', { count: 2 }), 'given again, it is dialled and answers')
  })
}
