/**
 * NAT traversal end to end (issue 14), as root: real daemons behind emulated
 * NATs (src/lab/nat-world.ts), each scenario in namespaces of its own that
 * it removes, also on failure:
 * - punching: two port-restricted cones get a direct path;
 * - relaying: a port-restricted cone and a symmetric NAT go through the
 *   public member's relay, and TCP flows through it;
 * - the move to direct: a relayed pair whose direct path opens mid-transfer
 *   moves to it, and the TCP flow inside is not reset;
 * - roaming: a client whose address moves from one uplink to the other
 *   mid-transfer keeps its flow (no reset), and it keeps moving data.
 * Figures (connect times, the gap) are the lab's and the README's, not
 * asserted here: the machines are shared.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { runNatPair, runNatSwitch, runRoam } from '../../src/lab/nat-lab.js'

const missing = ['iperf3', 'nft', 'ip', 'ping'].filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0)

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root')
} else if (missing.length > 0) {
  t.plan(0, `needs ${missing.join(', ')}`)
} else {
  t.test('punching: two port-restricted cones get a direct path', async (t) => {
    const r = await runNatPair({ a: 'port-restricted', b: 'port-restricted', seconds: 10, rateMbit: 20 })
    t.equal(r.connected, true, 'connected')
    t.equal(r.path, 'direct', 'directly, through both NATs')
    t.ok((r.mbit ?? 0) > 0, `TCP flows (${r.mbit} Mbit/s)`)
  })

  t.test('relaying: a cone and a symmetric NAT go through the relay', async (t) => {
    const r = await runNatPair({ a: 'port-restricted', b: 'symmetric', seconds: 10, rateMbit: 20 })
    t.equal(r.connected, true, 'connected')
    t.equal(r.path, 'relay', 'through the relay (no direct path exists between these two)')
    t.ok((r.mbit ?? 0) > 0, `TCP flows through it (${r.mbit} Mbit/s)`)
  })

  t.test('the move to direct: a relayed pair whose direct path opens moves to it, its TCP flow intact', async (t) => {
    const r = await runNatSwitch({ seconds: 9, rateMbit: 20 })
    t.equal(r.path_before, 'relay', 'relayed while the direct path is blocked')
    t.equal(r.path_after, 'direct', 'direct once it opens')
    // The pair's first try after the block went is the move: it comes while the transfer runs. A lab that fell behind
    // unblocked after that try; the move then waits for the next one (10 s later), past the transfer's end.
    if (r.unblocked_before_first_try) t.ok(r.switched_in_transfer, `the move came mid-transfer (${r.switch_ms} ms after the block went)`)
    else t.comment(`the lab unblocked after the pair's first try; the move came ${r.switch_ms} ms later`)
    t.equal(r.resets, 0, 'no TCP reset')
    t.equal(r.transfer_ok, true, 'the transfer finished')
  })

  t.test('roaming: the client moves from wifi to lte mid-transfer, its TCP flow intact', async (t) => {
    const r = await runRoam({ seconds: 8, rateMbit: 50 })
    t.equal(r.resets, 0, 'no TCP reset')
    t.ok(r.gap_ms !== null, 'the transfer reported its intervals')
    t.ok((r.mbit_after ?? 0) > 0, `data keeps flowing on the new uplink (${r.mbit_after} Mbit/s)`)
  })
}
