/**
 * What the forwarding engine gives NAT traversal (issue 14), as root, in two
 * namespaces of its own:
 * - raw datagrams ("\0QEP"…) go out of the tunnel socket and come up as
 *   'raw' events with their true source, at most 200/s (the rest counted);
 *   anything else stays garbage; sendRaw refuses what is not ours;
 * - a relayed connection (`connect(…, { relayed: true })`) says so on both
 *   sides, a direct one to the same peer replaces it, and a relayed one
 *   never replaces a direct one;
 * - a client that moves to a new address keeps its tunnel: the server
 *   follows it (QUIC path validation) and reports the new address;
 * - packets replayed from another address (an attacker on the path) do not
 *   move a tunnel there.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createLab, makeKeys, nsExec, peerConfig, pings, PeerProc, type Lab } from './fixtures/engine-lab.js'
import { nodeArgs } from './fixtures/node-script.js'

const PORT = 5100
const FORWARD = fileURLToPath(new URL('./fixtures/udp-forward.ts', import.meta.url))

/** A UDP forwarder in `ns` (a relay's port, as far as the engines can tell); resolves once it is bound. */
function forwarder(ns: string, listen: string, port: number, target: string, children: ChildProcess[], replay = false): Promise<{ back: number; replay: number }> {
  const p = spawn('ip', ['netns', 'exec', ns, process.execPath, ...nodeArgs(FORWARD), listen, String(port), target, String(PORT), ...(replay ? ['replay'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(p)
  return new Promise((resolve, reject) => {
    createInterface({ input: p.stdout as NodeJS.ReadableStream }).once('line', (l) => resolve(JSON.parse(l) as { back: number; replay: number }))
    p.once('exit', (code) => reject(new Error(`forwarder exited ${code}`)))
    setTimeout(() => reject(new Error('forwarder did not start within 10 s')), 10_000).unref()
  })
}
const PUNCH = '00514550' + '01' + 'ab'.repeat(16) + 'cd'.repeat(8)

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
} else {
  await run()
}

async function run(): Promise<void> {
  const peers: PeerProc[] = []
  const children: ChildProcess[] = []
  const L: Lab = createLab()
  t.teardown(async () => {
    for (const c of children) c.kill('SIGKILL')
    for (const p of peers) await p.kill9().catch(() => undefined)
    L.destroy()
  })
  const va = `${L.prefix}-va`
  const base = L.underB.slice(0, L.underB.lastIndexOf('.'))
  const kA = makeKeys()
  const kB = makeKeys()
  const a = new PeerProc(L.nsA, peerConfig(kA, kB, 1, { address: '0.0.0.0', port: PORT }))
  const b = new PeerProc(L.nsB, peerConfig(kB, kA, 2, { address: '0.0.0.0', port: PORT }))
  peers.push(a, b)
  await a.waitFor((e) => e.event === 'ready')
  await b.waitFor((e) => e.event === 'ready')

  await t.test('raw datagrams: out of the tunnel socket, up with their source, rate-limited', async (t) => {
    a.send({ cmd: 'raw', address: L.underB, port: PORT, hex: PUNCH })
    t.same((await a.waitFor((e) => e.event === 'raw-sent')).results, ['ok'], 'sendRaw takes a datagram of ours')
    const ev = await b.waitFor((e) => e.event === 'raw')
    t.equal(ev.hex, PUNCH, 'the bytes arrive unchanged')
    t.same(ev.remote, { address: L.underA, port: PORT }, 'from the tunnel socket (the port the NAT maps for the tunnel)')
    const from = a.events.length
    a.send({ cmd: 'raw', address: L.underB, port: PORT, hex: '00514551' + '00'.repeat(10) })
    t.same((await a.waitFor((e) => e.event === 'raw-sent', 5000, from)).results, ['QE_ENGINE_ARGUMENT'], 'sendRaw refuses a datagram that does not start "\\0QEP"')
    const from2 = a.events.length
    a.send({ cmd: 'raw', address: L.underB, port: PORT, hex: '00'.repeat(600) })
    t.same((await a.waitFor((e) => e.event === 'raw-sent', 5000, from2)).results, ['QE_ENGINE_ARGUMENT'], 'and one over 512 bytes')
    // A flood: 2000 at once. At most the burst (100) and 200/s come up; the rest are counted.
    a.send({ cmd: 'raw', address: L.underB, port: PORT, hex: PUNCH, count: 2000 })
    await a.waitFor((e) => e.event === 'raw-sent' && Array.isArray(e.results) && e.results.includes('ok'), 5000, from2 + 1)
    await new Promise((r) => setTimeout(r, 500))
    const g = (await b.stats()).global
    t.ok(g.rawDropped && g.rawDropped > 0, `a flood is cut to the rate (${g.rawDropped} dropped)`)
    t.ok((g.rawRx ?? 0) < 2001, `and not all handed up (${g.rawRx})`)
    t.ok(((await a.stats()).global.rawTx ?? 0) >= 1, 'sent ones are counted')
  })

  await t.test('a direct connection replaces a relayed one, never the reverse', async (t) => {
    // Relayed first: through a forwarder in A's namespace (a relay's port: the engines cannot tell).
    await forwarder(L.nsA, L.underA, 6000, L.underB, children)
    await forwarder(L.nsA, L.underA, 6001, L.underB, children)
    a.send({ cmd: 'connect', address: L.underA, port: 6000, relayed: true })
    await a.waitFor((e) => e.event === 'peer-up')
    await b.waitFor((e) => e.event === 'peer-up')
    const sa = (await a.stats()).peers.find((p) => p.peer === kB.pub)
    const sb = (await b.stats()).peers.find((p) => p.peer === kA.pub)
    t.equal(sa?.relayed, true, 'the dialler knows it is relayed')
    t.equal(sb?.relayed, true, 'so does the side that accepted it (from the first control bytes)')
    t.ok(pings(L.nsA, '10.77.0.2', { count: 2 }), 'traffic flows through it')

    // Direct, within the 3 s crossed-dial window of the relayed one: direct still wins.
    const fromA = a.events.length
    a.send({ cmd: 'connect', address: L.underB, port: PORT })
    await a.waitFor((e) => e.event === 'peer-up', 10_000, fromA)
    await new Promise((r) => setTimeout(r, 300))
    const sa2 = (await a.stats()).peers.find((p) => p.peer === kB.pub)
    const sb2 = (await b.stats()).peers.find((p) => p.peer === kA.pub)
    t.equal(sa2?.relayed, false, 'A moved to the direct connection')
    t.equal(sb2?.relayed, false, 'and so did B')
    t.equal((sa2?.remote as { address: string } | undefined)?.address, L.underB, 'the one to the direct address')
    t.ok(pings(L.nsA, '10.77.0.2', { count: 2 }), 'traffic flows')

    // A relayed dial now loses, though it is the newer one.
    const dupBefore = (await b.stats()).global.duplicates ?? 0
    a.send({ cmd: 'connect', address: L.underA, port: 6001, relayed: true })
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && ((await b.stats()).global.duplicates ?? 0) === dupBefore) await new Promise((r) => setTimeout(r, 100))
    const sa3 = (await a.stats()).peers.find((p) => p.peer === kB.pub)
    t.equal(sa3?.relayed, false, 'the direct connection stays')
    t.equal((sa3?.remote as { address: string } | undefined)?.address, L.underB, 'at its address')
    t.ok(((await b.stats()).global.duplicates ?? 0) > dupBefore, 'the relayed one was closed as a duplicate')
    t.ok(pings(L.nsA, '10.77.0.2', { count: 2 }), 'traffic still flows')
  })

  await t.test('a client that moves keeps its tunnel; the server follows it', async (t) => {
    // A is the client of the connection in use. Its address moves from .1 to .9 (a new DHCP lease).
    const fromMove = b.events.length
    const moved = `${base}.9`
    nsExec(L.nsA, ['ip', 'addr', 'del', `${L.underA}/24`, 'dev', va])
    nsExec(L.nsA, ['ip', 'addr', 'add', `${moved}/24`, 'dev', va])
    // The kernel now sends from the new address; traffic shows the server where A went.
    let ok = false
    for (let i = 0; i < 10 && !ok; i++) ok = pings(L.nsA, '10.77.0.2', { count: 1 })
    t.ok(ok, 'traffic flows after the move')
    const deadline = Date.now() + 5000
    let remote = ''
    while (Date.now() < deadline) {
      const p = (await b.stats()).peers.find((x) => x.peer === kA.pub)
      remote = (p?.remote as { address: string } | undefined)?.address ?? ''
      if (remote === moved) break
      pings(L.nsA, '10.77.0.2', { count: 1 })
    }
    t.equal(remote, moved, 'the server reports the new address')
    t.notOk(b.events.slice(fromMove).some((e) => e.event === 'peer-down'), 'the server never lost the peer')
    t.ok(pings(L.nsA, '10.77.0.2', { count: 3 }), 'and the tunnel carries on')
    // Back where it was, for what follows.
    nsExec(L.nsA, ['ip', 'addr', 'del', `${moved}/24`, 'dev', va])
    nsExec(L.nsA, ['ip', 'addr', 'add', `${L.underA}/24`, 'dev', va])
  })

  await t.test('packets replayed from another address do not move a tunnel', async (t) => {
    await a.stop()
    await b.stop()
    // Fresh engines: C reaches D only through a forwarder that replays every packet from another port.
    const kC = makeKeys()
    const kD = makeKeys()
    const c = new PeerProc(L.nsA, peerConfig(kC, kD, 1, { address: '0.0.0.0', port: PORT }))
    const d = new PeerProc(L.nsB, peerConfig(kD, kC, 2, { address: '0.0.0.0', port: PORT }))
    peers.push(c, d)
    await c.waitFor((e) => e.event === 'ready')
    await d.waitFor((e) => e.event === 'ready')
    const f = await forwarder(L.nsA, L.underA, 6002, L.underB, children, true)
    c.send({ cmd: 'connect', address: L.underA, port: 6002 })
    await d.waitFor((e) => e.event === 'peer-up')
    for (let i = 0; i < 5; i++) pings(L.nsA, '10.77.0.2', { count: 2 })
    const p = (await d.stats()).peers.find((x) => x.peer === kC.pub)
    t.equal((p?.remote as { port: number } | undefined)?.port, f.back, 'the tunnel stays at the address its packets first came from')
    t.not((p?.remote as { port: number } | undefined)?.port, f.replay, 'not the replayer\'s')
    t.ok(pings(L.nsA, '10.77.0.2', { count: 3 }), 'and carries traffic')
  })
}
