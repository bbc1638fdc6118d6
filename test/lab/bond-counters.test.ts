import t from 'tap'
import { counterDelta, ifDelta, parseLinkStats, parseProcNet, readingBeforeEnd, resetReadingMs, tcpFailureDetail, tcpFailures } from '../../src/lab/bond-counters.js'

t.test('interface counters from ip -j -s link', async (t) => {
  const json = JSON.stringify([
    { ifindex: 1, ifname: 'lo', stats64: { rx: { bytes: 10, packets: 1 }, tx: { bytes: 10, packets: 1 } } },
    { ifindex: 2, ifname: 'qel-abcd-l0a', stats64: { rx: { bytes: 500, packets: 5 }, tx: { bytes: 90000, packets: 60 } } },
    { ifindex: 3, ifname: 'noStats' },
  ])
  const m = parseLinkStats(json)
  t.same(m.get('qel-abcd-l0a'), { rxBytes: 500, txBytes: 90000, rxPackets: 5, txPackets: 60 })
  t.same(m.get('noStats'), { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 })
  const later = parseLinkStats(JSON.stringify([{ ifname: 'qel-abcd-l0a', stats64: { rx: { bytes: 600, packets: 6 }, tx: { bytes: 190000, packets: 130 } } }]))
  t.same(ifDelta(m, later, 'qel-abcd-l0a'), { rxBytes: 100, txBytes: 100000, rxPackets: 1, txPackets: 70 })
  t.same(ifDelta(m, later, 'gone'), { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 })
  t.throws(() => parseLinkStats('Device not found'), { code: 'QE_LAB_COMMAND' })
})

const snmp = (estabResets: number, attemptFails: number, abortOnTimeout: number, joins: number) =>
  [
    'Ip: Forwarding DefaultTTL',
    'Ip: 1 64',
    'Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab',
    `Tcp: 1 200 120000 -1 8 0 ${attemptFails} ${estabResets} 2`,
    'TcpExt: SyncookiesSent TCPAbortOnData TCPAbortOnTimeout',
    `TcpExt: 0 3 ${abortOnTimeout}`,
    'MPTcpExt: MPCapableSYNACKRX MPJoinSynAckRx',
    `MPTcpExt: 2 ${joins}`,
    '',
  ].join('\n')

t.test('/proc/net/snmp and netstat: Group.Name → value', async (t) => {
  const m = parseProcNet(snmp(1, 2, 3, 4))
  t.equal(m.get('Tcp.EstabResets'), 1)
  t.equal(m.get('Tcp.MaxConn'), -1)
  t.equal(m.get('TcpExt.TCPAbortOnTimeout'), 3)
  t.equal(m.get('MPTcpExt.MPJoinSynAckRx'), 4)
  t.equal(m.get('Ip.DefaultTTL'), 64)
  t.equal(m.size, 16)
})

t.test('TCP failures: resets of established connections, failed attempts, timeouts', async (t) => {
  const a = parseProcNet(snmp(1, 2, 3, 0))
  t.equal(tcpFailures(a, parseProcNet(snmp(1, 2, 3, 5))), 0, 'subflows joining are no failure')
  t.equal(tcpFailures(a, parseProcNet(snmp(2, 2, 3, 0))), 1)
  t.equal(tcpFailures(a, parseProcNet(snmp(3, 3, 4, 0))), 4)
  t.equal(counterDelta(a, parseProcNet(snmp(1, 2, 3, 5)), 'MPTcpExt.MPJoinSynAckRx'), 5)
  t.equal(counterDelta(a, a, 'Nope.Missing'), 0)
  t.equal(resetReadingMs(10), 9500, 'read half a second before iperf3 ends its own connections with resets')
  t.equal(readingBeforeEnd(10_000, [10_500, 12_000]), true, 'a reading begun before the first end is used')
  t.equal(readingBeforeEnd(10_450, [10_500, 12_000]), false, 'within 100 ms of an end it may hold the closing resets')
  t.equal(readingBeforeEnd(11_000, [10_500]), false, 'a reading that ran late is not used')
  t.equal(readingBeforeEnd(0, []), false, 'no transfer, no reading to trust')
  t.same(tcpFailureDetail([{ node: 'client', before: a, after: parseProcNet(snmp(3, 3, 4, 0)) }, { node: 'gateway', before: a, after: a }]), { 'client Tcp.EstabResets': 2, 'client Tcp.AttemptFails': 1, 'client TcpExt.TCPAbortOnTimeout': 1 }, 'which counters moved, on which end; none that did not')
})
