import t from 'tap'
import { biggestUplink, bondTopology, describeUplink, parseCongestion, parseCut, parseJitter, parseJitters, parseMode, parseSeed, parseTcpBuffer, parseUplink, parseUplinks, parseVary, rateSum, uplinkRoutes, withJitter } from '../../src/lab/bond-spec.js'
import { checkTopology } from '../../src/lab/topology.js'

t.test('an uplink: rate, one-way delay and loss, the same both ways', async (t) => {
  const u = parseUplink('50mbit,10ms,1%', 0)
  t.equal(u.name, 'uplink1')
  t.same(u.up, { rate: 50e6, delay: 10, jitter: 0, loss: 0.01 })
  t.same(u.down, u.up)
  t.same(parseUplink('100mbit', 3), { name: 'uplink4', up: { rate: 100e6, delay: 0, jitter: 0, loss: 0 }, down: { rate: 100e6, delay: 0, jitter: 0, loss: 0 } }, 'delay and loss are optional')
  t.same(parseUplink('25mbit,,2%', 0).up, { rate: 25e6, delay: 0, jitter: 0, loss: 0.02 }, 'an empty delay is none')
})

t.test('up/down pairs: a bare first number borrows the unit of the second', async (t) => {
  const u = parseUplink('50/10mbit,20ms', 0)
  t.equal(u.up.rate, 50e6)
  t.equal(u.down.rate, 10e6)
  t.equal(u.up.delay, 20)
  t.equal(u.down.delay, 20)
  t.same(parseUplink('50mbit/10mbit', 0).down.rate, 10e6)
  const d = parseUplink('dsl=25/5mbit,15/20ms,0.5/0%', 0)
  t.equal(d.name, 'dsl')
  t.same([d.up.delay, d.down.delay], [15, 20])
  t.same([d.up.loss, d.down.loss], [0.005, 0])
})

t.test('bad uplinks name the flag and the uplink', async (t) => {
  for (const bad of ['', 'fast', '50mbit,10ms,1%,9', '50/mbit', '/10mbit', '50mbit,10', '50mbit,10ms,100%', 'Bad Name=50mbit', '1kbit', '50/10/5mbit']) {
    t.throws(() => parseUplink(bad, 1), { code: 'QE_LAB_SPEC', message: /--uplink 2/ }, `'${bad}'`)
  }
  t.throws(() => parseUplinks([]), { code: 'QE_LAB_SPEC', message: /one --uplink per uplink/ })
  t.throws(() => parseUplinks(['a=10mbit', 'a=20mbit']), { code: 'QE_LAB_SPEC', message: /'a' is used twice/ })
  t.throws(() => parseUplinks(Array.from({ length: 17 }, () => '10mbit')), { code: 'QE_LAB_SPEC', message: /at most 16/ })
  t.equal(parseUplinks(['10mbit', '20mbit']).length, 2)
})

t.test('--cut N@T counts uplinks from 1 and must fall inside the transfer', async (t) => {
  t.same(parseCut('2@5', 3, 10), { index: 1, atS: 5 })
  t.same(parseCut(' 1 @ 4.5s ', 2, 10), { index: 0, atS: 4.5 })
  t.throws(() => parseCut('4@5', 3, 10), { code: 'QE_LAB_SPEC', message: /uplink 4 does not exist/ })
  t.throws(() => parseCut('0@5', 3, 10), { code: 'QE_LAB_SPEC', message: /uplink 0 does not exist/ })
  t.throws(() => parseCut('2@10', 3, 10), { code: 'QE_LAB_SPEC', message: /before the end/ })
  t.throws(() => parseCut('2@0', 3, 10), { code: 'QE_LAB_SPEC' })
  t.throws(() => parseCut('2', 3, 10), { code: 'QE_LAB_SPEC', message: /N@T/ })
})

t.test('modes and congestion controls', async (t) => {
  for (const m of ['aggregate', 'failover', 'redundant', 'weighted'] as const) t.equal(parseMode(m), m)
  t.throws(() => parseMode('round-robin'), { code: 'QE_LAB_SPEC', message: /--mode/ })
  t.equal(parseCongestion('cubic'), 'cubic')
  t.throws(() => parseCongestion('cubic; rm -rf'), { code: 'QE_LAB_SPEC' })
})

t.test('--tcp-buffer: binary sizes from 1 MiB to 1 GiB', async (t) => {
  t.equal(parseTcpBuffer('32M'), 32 * 1024 ** 2)
  t.equal(parseTcpBuffer('8MiB'), 8 * 1024 ** 2)
  t.equal(parseTcpBuffer('1g'), 1024 ** 3)
  t.equal(parseTcpBuffer('2048k'), 2 * 1024 ** 2)
  t.equal(parseTcpBuffer('1048576'), 1024 ** 2)
  t.throws(() => parseTcpBuffer('512k'), { code: 'QE_LAB_SPEC', message: /between 1M and 1G/ })
  t.throws(() => parseTcpBuffer('2G'), { code: 'QE_LAB_SPEC', message: /between 1M and 1G/ })
  t.throws(() => parseTcpBuffer('32 M; reboot'), { code: 'QE_LAB_SPEC', message: /not a size/ })
  t.throws(() => parseTcpBuffer('1.5M'), { code: 'QE_LAB_SPEC', message: /not a size/ })
})

t.test('the topology: a client with one routed link per uplink to the gateway', async (t) => {
  const uplinks = parseUplinks(['25/5mbit,15ms', '100mbit,40ms,1%'])
  const topo = bondTopology(uplinks)
  checkTopology(topo)
  t.same(topo.nodes.map((n) => [n.name, n.daemon]), [['client', true], ['gateway', true]])
  t.same(topo.links.map((l) => [l.name, l.a, l.b]), [['uplink1', 'client', 'gateway'], ['uplink2', 'client', 'gateway']])
  t.same(topo.links[0]!.aToB, { rate: 25e6, delay: 15, jitter: 0, loss: 0 }, 'up is client → gateway')
  t.same(topo.links[0]!.bToA, { rate: 5e6, delay: 15, jitter: 0, loss: 0 })
  t.same(topo.links[1]!.bToA.loss, 0.01)
  t.equal(rateSum(uplinks), 125e6)
  t.equal(biggestUplink(uplinks), 1)
  t.equal(biggestUplink(parseUplinks(['50mbit', '100mbit', '100mbit'])), 1, 'the first of equals')
  t.equal(describeUplink(uplinks[0]!), '25/5 Mbit/s, 15 ms')
  t.equal(describeUplink(uplinks[1]!), '100 Mbit/s, 40 ms, 1% loss')
})

t.test('uplink routes: a default route per uplink in the client, each router forwards to the gateway', async (t) => {
  const r = uplinkRoutes(3)
  t.same(r.client.ipv4, ['route add default via 10.251.0.2 metric 100', 'route add default via 10.251.1.2 metric 101', 'route add default via 10.251.2.2 metric 102'])
  t.same(r.client.ipv6[1], 'route add default via fdc5:1ab:1:1::2 metric 101')
  t.same(r.routers.map((x) => x.ipv4), [['route add default via 10.251.0.130'], ['route add default via 10.251.1.130'], ['route add default via 10.251.2.130']])
  t.same(r.routers[2]!.ipv6, ['route add default via fdc5:1ab:2:2::2'])
})

t.test('--jitter N@MS: both directions, or an up/down pair; a bare number is ms', async (t) => {
  t.same(parseJitter('2@10', 3), { index: 1, up: 10, down: 10 })
  t.same(parseJitter(' 1 @ 10ms ', 3), { index: 0, up: 10, down: 10 })
  t.same(parseJitter('3@10/5ms', 3), { index: 2, up: 10, down: 5 })
  t.same(parseJitter('3@10/5', 3), { index: 2, up: 10, down: 5 })
  t.same(parseJitter('1@500us', 1), { index: 0, up: 0.5, down: 0.5 })
  t.throws(() => parseJitter('4@10', 3), { code: 'QE_LAB_SPEC', message: /--jitter: uplink 4 does not exist/ })
  t.throws(() => parseJitter('0@10', 3), { code: 'QE_LAB_SPEC', message: /--jitter: uplink 0 does not exist/ })
  for (const bad of ['2', '@10', '2@', '2@fast', '2@10/', '2@20s', 'x@10']) t.throws(() => parseJitter(bad, 3), { code: 'QE_LAB_SPEC', message: /--jitter/ }, `'${bad}'`)
  t.throws(() => parseJitters(['2@10', '2@5'], 3), { code: 'QE_LAB_SPEC', message: /uplink 2 is given twice/ })
})

t.test('jitter goes into the uplinks\' directions and shows as ±', async (t) => {
  const uplinks = withJitter(parseUplinks(['40mbit,40ms', '10/5mbit,15/20ms', '20mbit']), parseJitters(['1@10', '2@5/2', '3@3'], 3))
  t.same(uplinks[0]!.up, { rate: 40e6, delay: 40, jitter: 10, loss: 0 })
  t.same(uplinks[0]!.down.jitter, 10)
  t.same([uplinks[1]!.up.jitter, uplinks[1]!.down.jitter], [5, 2])
  t.equal(describeUplink(uplinks[0]!), '40 Mbit/s, 40±10 ms')
  t.equal(describeUplink(uplinks[1]!), '10/5 Mbit/s, 15±5/20±2 ms')
  t.equal(describeUplink(uplinks[2]!), '20 Mbit/s, 0±3 ms', 'jitter without a delay')
  const topo = bondTopology(uplinks)
  checkTopology(topo)
  t.same([topo.links[1]!.aToB.jitter, topo.links[1]!.bToA.jitter], [5, 2], 'up is a → b')
  const plain = parseUplinks(['40mbit,40ms'])
  t.same(withJitter(plain, []), plain, 'no --jitter, no change')
})

t.test('--vary: repeatable and comma lists, counted from 1, each uplink once', async (t) => {
  t.same(parseVary(['2'], 3), [1])
  t.same(parseVary(['3,1', ' 2 '], 3), [0, 1, 2])
  t.same(parseVary([], 3), [])
  t.throws(() => parseVary(['4'], 3), { code: 'QE_LAB_SPEC', message: /--vary: uplink 4 does not exist/ })
  t.throws(() => parseVary(['1,1'], 3), { code: 'QE_LAB_SPEC', message: /--vary: uplink 1 is given twice/ })
  t.throws(() => parseVary(['1,'], 3), { code: 'QE_LAB_SPEC', message: /--vary: '' is not an uplink number/ })
  t.throws(() => parseVary(['two'], 3), { code: 'QE_LAB_SPEC', message: /--vary/ })
})

t.test('--seed: a whole number that fits 32 bits', async (t) => {
  t.equal(parseSeed('0'), 0)
  t.equal(parseSeed(' 4294967295 '), 2 ** 32 - 1)
  for (const bad of ['-1', '1.5', 'x', '', '4294967296']) t.throws(() => parseSeed(bad), { code: 'QE_LAB_SPEC', message: /--seed/ }, `'${bad}'`)
})
