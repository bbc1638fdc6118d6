/**
 * The bonding lab, for real (root, short): raw links carry their rate in
 * parallel, kernel MPTCP over two links uses a subflow on each, a cut shows
 * in the throughput series at the time it was made, and a QuicEther bonded
 * run reports a verdict that matches what the links carried. Each run
 * leaves nothing behind.
 */
import t from 'tap'
import { whenRootWith } from './root-gate.js'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { BondLab, runRaw } from '../../src/lab/bond.js'
import { parseUplinks } from '../../src/lab/bond-spec.js'
import { meanMbit } from '../../src/lab/bond-series.js'
import { listLabNetns } from '../../src/lab/netns.js'
import { markedProcesses } from '../../src/lab/teardown.js'
import { pingOnce } from '../../src/lab/traffic.js'
import { readIfCounters } from '../../src/lab/bond-counters.js'
import { runIn } from '../../src/lab/exec.js'

const root = fileURLToPath(new URL('../../', import.meta.url))

async function leftovers(runId: string): Promise<string[]> {
  return [...(await listLabNetns(runId)), ...(await markedProcesses(runId)).map(String), ...(existsSync(`/tmp/qel-${runId}`) ? [`/tmp/qel-${runId}`] : [])]
}

async function tests(): Promise<void> {
  t.test('--raw: two links in parallel, each reaches 90% of its rate', async (t) => {
    // One TCP flow per link beside the unit lane's CPU load missed 90% now and then (0.845 once in
    // CI): a run that misses gets one more (a fresh lab); a link emulated wrong misses both.
    const filled = (r: Awaited<ReturnType<typeof runRaw>>[number]): boolean => r.links.every((l) => l.ratio !== null && l.ratio >= 0.9)
    const runs: Awaited<ReturnType<typeof runRaw>> = []
    for (let attempt = 0; attempt < 2 && !runs.some(filled); attempt++) {
      const [r] = await runRaw({ uplinks: parseUplinks(['20mbit,2ms', '30mbit,5ms']), streams: 1, seconds: 4, congestion: 'cubic' })
      if (!r) throw new Error('no raw result')
      runs.push(r)
      t.same(await leftovers(r.run_id), [], `attempt ${attempt + 1}: nothing of the run is left`)
    }
    const seen = runs.map((r) => r.links.map((l) => `uplink ${l.uplink}: ${l.mbit} Mbit/s of ${l.rate_mbit} (${l.ratio})`).join('; ')).join(' | then ')
    t.ok(runs.some(filled), `each link reached 90% of its rate in one of two runs: ${seen}`)
  })

  t.test('every uplink reaches the gateway; kernel MPTCP: a subflow on each link; a cut shows in the series and the link comes back', async (t) => {
    const bl = new BondLab({ uplinks: parseUplinks(['30mbit,2ms', '30mbit,4ms']), congestion: 'cubic' })
    t.teardown(() => bl.stop())
    await bl.start()
    // Like a multi-homed host: a socket bound to either uplink reaches the gateway's first address over that uplink.
    const client = bl.lab.node('client').netns
    for (const l of bl.lab.links) {
      const before = (await readIfCounters(client)).get(l.ifA)!.txPackets
      const r = await runIn(client, 'ping', ['-n', '-c', '3', '-i', '0.05', '-W', '1', '-I', l.ifA, bl.lab.link(0).addrB.ipv4], { allowFail: true })
      const sent = (await readIfCounters(client)).get(l.ifA)!.txPackets - before
      t.equal(r.code, 0, `bound to ${l.ifA}: the gateway's first address answers`)
      t.ok(sent >= 3, `and the echoes left through ${l.ifA} (${sent} packets)`)
    }
    const m = await bl.mptcp({ streams: 1, seconds: 3, cut: null })
    t.equal(m.transfer.error, null)
    t.ok(m.joined >= m.connections && m.connections >= 1, `${m.joined} subflow(s) joined to ${m.connections} connection(s)`)
    t.same(m.carrying, [0, 1], `both links carried the transfer (${m.txBytes.join(' and ')} bytes)`)

    const c = await bl.mptcp({ streams: 1, seconds: 5, cut: { index: 1, atS: 2 } })
    t.equal(c.transfer.cutApplied, true)
    const at = c.transfer.cutMs
    t.ok(at !== null && at >= 1800 && at <= 3000, `the cut is placed on the series' clock at ${at} ms (asked: 2000)`)
    const before = meanMbit(c.transfer.points, 1000, at ?? 2000)
    const after = meanMbit(c.transfer.points, (at ?? 2000) + 1000, 5000)
    t.ok(after < 0.75 * before, `throughput fell from ${before.toFixed(1)} to ${after.toFixed(1)} Mbit/s with one of two equal links cut`)
    t.ok(after > 0, 'and the surviving link carries on')
    t.ok(await pingOnce(bl.lab.node('client').netns, bl.lab.link(1).addrB.ipv4), 'the cut link is restored afterwards')
  })

  t.test('--tcp-buffer: both ends get the limit in their own namespaces, the host keeps its own', async (t) => {
    const host = readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8')
    const bl = new BondLab({ uplinks: parseUplinks(['30mbit,2ms']), congestion: 'cubic', tcpBuffer: 32 * 1024 ** 2 })
    t.teardown(() => bl.stop())
    await bl.start()
    for (const node of ['client', 'gateway']) {
      const ns = bl.lab.node(node).netns
      const r = await runIn(ns, 'sysctl', ['-n', 'net.ipv4.tcp_wmem', 'net.ipv4.tcp_rmem'])
      t.same(r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).at(-1)), [String(32 * 1024 ** 2), String(32 * 1024 ** 2)], `${node}: tcp_wmem and tcp_rmem max`)
    }
    t.equal(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8'), host, "the host's tcp_wmem is untouched")
  })

  t.test('QuicEther bonded: the verdict matches what the links carried', { skip: existsSync(`${root}dist/cli/main.js`) ? false : 'needs the compiled tree (npm run build)' }, async (t) => {
    const bl = new BondLab({ uplinks: parseUplinks(['30mbit,2ms', '30mbit,4ms']), congestion: 'cubic' })
    t.teardown(() => bl.stop())
    await bl.start()
    const [r] = await bl.bonded({ mode: 'aggregate', streams: 1, seconds: 3, cut: null, interactive: false })
    if (!r) throw new Error('no bonded run')
    t.equal(r.transfer.error, null, 'the transfer through the tunnel ran')
    t.ok(r.transfer.points.length > 0, 'and the receiver reported it')
    t.equal(r.resets, 0)
    const carried = r.links.filter((l) => l.txBytes > 0.05 * r.links.reduce((s, x) => s + x.txBytes, 0)).length
    if (r.verdict.bonded) t.ok(carried >= 2 || (r.daemonPaths ?? 0) >= 2, r.verdict.why)
    else t.ok(carried <= 1 && (r.daemonPaths ?? 0) < 2, r.verdict.why)
    const e = await bl.stop()
    t.ok(e !== null && e.lines === 2 && e.packets > 0, `the teardown reports both links' delay lines (${JSON.stringify(e)})`)
    t.equal(e?.scheduler, 'other', 'which ran as normal processes')
    t.ok(e !== null && e.within_200us > 0 && e.within_200us <= 1 && e.late_max_ms >= e.late_p99_ms, 'with their accuracy')
  })

  t.test('both directions at once: the upload runs at the uplinks\' up rates, the download at their down rates, each bonded', { skip: existsSync(`${root}dist/cli/main.js`) ? false : 'needs the compiled tree (npm run build)' }, async (t) => {
    const bl = new BondLab({ uplinks: parseUplinks(['8/30mbit,2ms', '8/30mbit,4ms']), congestion: 'cubic' })
    t.teardown(() => bl.stop())
    await bl.start()
    const runs = await bl.bonded({ mode: 'aggregate', streams: 2, seconds: 4, cut: null, interactive: false, direction: 'both' })
    t.same(runs.map((r) => r.direction), ['up', 'down'], 'one run per direction, upload first')
    const [up, down] = runs
    if (!up || !down) throw new Error('missing a direction')
    for (const r of runs) {
      t.equal(r.transfer.error, null, `the ${r.direction}load ran`)
      const total = r.links.reduce((s, l) => s + l.txBytes, 0)
      t.ok(r.links.every((l) => l.txBytes > 0.1 * total), `${r.direction}: both links carried it (${r.links.map((l) => l.txBytes).join(', ')} bytes)`)
    }
    const mbit = (r: typeof up): number => meanMbit(r.transfer.points, 1000, 4000)
    // The download's ACKs go outside the bond's sequence: in it, each waited at the gateway for the
    // upload's packets numbered before it (queued behind the uplinks, lost, repaired), the download's
    // round trip grew by that, and it carried 30-37 Mbit/s of the 60, 2.5-3.2 times the upload's 12
    // (52-53 with them outside, 4.3 times). A ratio of two figures of one run: the machine's load
    // slows both.
    t.ok(mbit(down) > 3.5 * mbit(up), `the download (${mbit(down).toFixed(1)} Mbit/s) runs at the down rates (60 Mbit/s), over 3.5 times the upload (${mbit(up).toFixed(1)}, of 16 up)`)
    t.ok(mbit(up) < 17, `the upload stays within the 16 Mbit/s of up rates (${mbit(up).toFixed(1)})`)
    t.ok(up.cpu !== null && up.cpu.seconds > 0 && up.cpu === down.cpu, 'the daemons\' CPU is measured once for the run')
  })
}

await whenRootWith(['ip', 'tc', 'nft', 'iperf3', 'ping', 'make', 'cc', 'mptcpize'], tests)
