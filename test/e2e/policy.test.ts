/**
 * Policy in the data path, end to end: real daemons in namespaces enforce a
 * policy with groups on a gateway with a LAN and on every client. 33 flows
 * (TCP, UDP, ICMP; IPv4 and IPv6; replies) decide as the policy's evaluator
 * says; a reload stops a flow it now denies at once and leaves an allowed
 * one untouched; the engines count the denied packets. Needs root and the
 * compiled tree; the lab is torn down even when a check fails.
 */
import t from 'tap'
import { runPolicyLab } from '../../src/lab/policy.js'

if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}

t.test('every flow decides as the policy says; a reload denies at once and keeps what it allows', async (t) => {
  const r = await runPolicyLab({ rules: 20 })
  t.ok(r.flows >= 30, `${r.flows} flows`)
  t.same(r.mismatches, [], 'no flow decided otherwise than the policy says')
  t.ok(r.results.some((f) => f.got === 'deny') && r.results.some((f) => f.got === 'allow'), 'both outcomes were tried')
  t.ok(r.denied_counted >= r.denied_flows, `the engines counted the denied packets (${r.denied_counted} for ${r.denied_flows} denied flows)`)
  t.equal(r.reload_dropped_allowed, 0, 'an allowed stream did not miss a beat across the reload')
  t.equal(r.reload_denied_stopped, true, 'the stream the new policy denies stopped')
})
