/**
 * Builds and runs the C unit tests in native/test: the LPM trie against its
 * naive twin on random prefixes and addresses, the TUN offload helpers
 * (TSO split checksums against a plain RFC 1071 sum, GRO round trip), and
 * the bonded peer's reorder buffer against a naive model on scripted arrivals,
 * the bonding scheduler on simulated paths with a fake clock, packet
 * parsing on generated headers, the send queue ring against a naive deque,
 * control stream framing on random streams cut at random points, and a
 * bonded path's sent/ACK/loss bookkeeping against a model.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const dir = fileURLToPath(new URL('../../native/test', import.meta.url))

t.test('native unit tests pass', (t) => {
  const out = execFileSync('make', ['-s', '-C', dir, 'check'], { encoding: 'utf8' })
  const summaries = [...out.matchAll(/(\d+) passed, (\d+) failed/g)]
  t.equal(summaries.length, 10, `one summary per program in: ${out}`)
  for (const m of summaries) {
    t.ok(Number(m[1]) > 50, `ran its cases (${m[0]})`)
    t.equal(Number(m[2]), 0, 'no failures')
  }
  t.end()
})
