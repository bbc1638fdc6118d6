import t from 'tap'
import { linkAddressing } from '../../src/lab/link.js'
import { linkIfname } from '../../src/lab/names.js'
import { mptcpCommands } from '../../src/lab/mptcp.js'

const links = (n: number) => Array.from({ length: n }, (_, i) => ({ ifB: linkIfname('abcd', i, 'b'), addrB: linkAddressing(i, true).b }))

t.test('MPTCP set-up: limits on both sides, the gateway announces its address on every other link', async (t) => {
  const c = mptcpCommands(links(3))
  t.same(c.client, [
    ['ip', 'mptcp', 'endpoint', 'flush'],
    ['sysctl', '-q', '-w', 'net.mptcp.enabled=1'],
    ['ip', 'mptcp', 'limits', 'set', 'subflow', '2', 'add_addr_accepted', '2'],
  ])
  t.same(c.gateway.slice(3), [
    ['ip', 'mptcp', 'endpoint', 'add', '10.251.1.130', 'dev', 'qel-abcd-l1b', 'signal'],
    ['ip', 'mptcp', 'endpoint', 'add', '10.251.2.130', 'dev', 'qel-abcd-l2b', 'signal'],
  ])
  t.same(c.gateway.slice(0, 3), c.client, 'the same limits on the gateway')
  t.notOk(c.client.some((x) => x.includes('subflow') && x.includes('endpoint')), 'no client endpoints: they would dial the first address over links with no route to it')
})

t.test("MPTCP needs two uplinks and stays within the kernel's subflow limit", async (t) => {
  t.throws(() => mptcpCommands(links(1)), { code: 'QE_LAB_SPEC' })
  t.equal(mptcpCommands(links(9)).gateway.length, 3 + 8)
  t.throws(() => mptcpCommands(links(10)), { code: 'QE_LAB_SPEC', message: /at most 9/ })
})
