import t from 'tap'
import { L2_OVERHEAD_FACTOR, LOSS_SCALE, lossTable, tbfArgs, tbfParams } from '../../src/lab/shaping.js'
import { natTable } from '../../src/lab/nat.js'

t.test('tbf: rate raised for the Ethernet header, burst ~2 ms within bounds, queue ≥ 25 ms or the RTT', async (t) => {
  const p = tbfParams(100e6, 20, null)
  t.equal(p.rateBps, Math.round(100e6 * L2_OVERHEAD_FACTOR))
  t.equal(p.burstBytes, 25_000)
  t.equal(p.limitBytes, 25_000 * 12.5 + 25_000, '25 ms at 12.5 kB/ms plus the burst')
  const slow = tbfParams(1e6, 0, null)
  t.equal(slow.burstBytes, 16 * 1024, 'at least 16 KiB')
  const longRtt = tbfParams(100e6, 80, null)
  t.equal(longRtt.limitBytes, 80 * 12_500 + 25_000, 'one RTT of queue')
  const explicit = tbfParams(100e6, 80, 10)
  t.equal(explicit.limitBytes, 10 * 12_500 + 25_000)
  t.equal(tbfParams(10e9, 0, null).burstBytes, 512 * 1024, 'at most 512 KiB')
  t.same(tbfArgs('eth9', p).slice(0, 8), ['qdisc', 'replace', 'dev', 'eth9', 'root', 'tbf', 'rate', `${p.rateBps}bit`])
  t.same(tbfArgs('eth9', p, 'change'), ['qdisc', 'change', ...tbfArgs('eth9', p).slice(2)], 'a rate change keeps the qdisc and its queue')
})

t.test('loss rules per direction, keyed on the incoming interface', async (t) => {
  const none = { rate: null, delay: 0, jitter: 0, loss: 0 }
  t.equal(lossTable('qel-x-loss0', 'ra', 'rb', none, none), null)
  const text = lossTable('qel-x-loss0', 'ra', 'rb', { ...none, loss: 0.01 }, none)!
  t.match(text, /table inet qel-x-loss0/)
  t.match(text, new RegExp(`iifname "ra" numgen random mod ${LOSS_SCALE} < 10000 counter drop`))
  t.notMatch(text, /"rb"/)
  const both = lossTable('t', 'ra', 'rb', { ...none, loss: 0.5 }, { ...none, loss: 0.000001 })!
  t.match(both, /"ra" numgen random mod 1000000 < 500000/)
  t.match(both, /"rb" numgen random mod 1000000 < 1 /)
})

t.test('NAT: masquerade on the outside, symmetric uses random ports, unsolicited inbound dropped', async (t) => {
  const ifs = { inside: 'ra', outside: 'rb', delayFromInside: null, delayFromOutside: null }
  t.equal(natTable('t', 'none', ifs), null)
  const cone = natTable('t', 'cone', ifs)!
  t.match(cone, /oifname "rb" masquerade\n/)
  t.match(cone, /hook input[^}]*iifname "rb" ct state new counter drop/s)
  t.match(cone, /hook forward[^}]*iifname "rb" ct state new counter drop/s)
  t.notMatch(cone, /notrack/, 'no delay line: conntrack sees each packet once anyway')
  t.match(natTable('t', 'symmetric', ifs)!, /masquerade random/)
})

t.test('NAT with a delay line: the inside passes are untracked, so NAT applies on the outside pass', async (t) => {
  const both = natTable('t', 'cone', { inside: 'ra', outside: 'rb', delayFromInside: 'da', delayFromOutside: 'db' })!
  t.match(both, /iifname \{ "ra", "db" \} notrack/)
  const upOnly = natTable('t', 'cone', { inside: 'ra', outside: 'rb', delayFromInside: 'da', delayFromOutside: null })!
  t.match(upOnly, /iifname \{ "ra" \} notrack/)
  const downOnly = natTable('t', 'cone', { inside: 'ra', outside: 'rb', delayFromInside: null, delayFromOutside: 'db' })!
  t.match(downOnly, /iifname \{ "db" \} notrack/)
})
