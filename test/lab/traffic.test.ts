import t from 'tap'
import { readFileSync } from 'node:fs'
import { median, parseIperf3Json, parsePing, percentile } from '../../src/lab/traffic.js'

const fixture = (name: string): string => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8')

t.test('iperf3 JSON: receiver goodput, bytes, sender retransmits, streams', async (t) => {
  const r = parseIperf3Json(fixture('iperf3-tcp.json'))
  t.equal(r.mbit, 962.0334174)
  t.equal(r.bytes, 1207484416)
  t.equal(r.retransmits, 37)
  t.equal(r.streams, 4)
  t.equal(r.seconds, 10.0411)
})

t.test('iperf3 errors and non-JSON output become LabCommandError', async (t) => {
  t.throws(() => parseIperf3Json('{"error": "unable to connect to server: Connection refused"}'), { code: 'QE_LAB_COMMAND', message: /Connection refused/ })
  t.throws(() => parseIperf3Json('iperf3: error - unable to connect'), { code: 'QE_LAB_COMMAND', message: /did not print JSON/ })
  t.throws(() => parseIperf3Json('{"start": {}}'), { code: 'QE_LAB_COMMAND', message: /sum_received/ })
})

t.test('ping: every reply time in order, sent and received from the summary', async (t) => {
  const p = parsePing(fixture('ping.txt'))
  t.same(p.rttsMs, [20.3, 20.1, 25.0, 0.045])
  t.equal(p.sent, 5)
  t.equal(p.received, 4)
})

t.test('ping -D: each reply with its arrival time; without -D, none', async (t) => {
  const text = 'PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n[1796549518.944656] 64 bytes from 10.0.0.1: icmp_seq=1 ttl=64 time=20.3 ms\n[1796549518.964100] 64 bytes from 10.0.0.1: icmp_seq=2 ttl=64 time=0.045 ms\n\n--- 10.0.0.1 ping statistics ---\n2 packets transmitted, 2 received, 0% packet loss, time 20ms\n'
  const p = parsePing(text)
  t.same(p.rttsMs, [20.3, 0.045])
  t.equal(p.replies.length, 2)
  t.ok(Math.abs(p.replies[0]!.atMs - 1796549518944.656) < 0.01, 'seconds with microseconds, as ms')
  t.equal(p.replies[1]!.rttMs, 0.045)
  t.same(parsePing(fixture('ping.txt')).replies, [], 'no timestamps printed, none made up')
})

t.test('ping with no reply at all', async (t) => {
  const p = parsePing('PING 10.0.0.1 (10.0.0.1) 56(84) bytes of data.\n\n--- 10.0.0.1 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n')
  t.same(p.rttsMs, [])
  t.equal(p.sent, 3)
  t.equal(p.received, 0)
})

t.test('percentiles by nearest rank, median of odd and even counts', async (t) => {
  const v = [5, 1, 4, 2, 3, 6, 7, 8, 9, 10]
  t.equal(percentile(v, 0.5), 5)
  t.equal(percentile(v, 0.99), 10)
  t.equal(percentile(v, 0), 1)
  t.equal(percentile([42], 0.99), 42)
  t.ok(Number.isNaN(percentile([], 0.5)))
  t.equal(median([3, 1, 2]), 2)
  t.equal(median([4, 1, 3, 2]), 2.5)
  t.same(v, [5, 1, 4, 2, 3, 6, 7, 8, 9, 10], 'input is not reordered')
})
