import t from 'tap'
import type { GlobalStats } from '../../src/engine/types.js'
import { buildStatus, summarizeApply } from '../../src/observe/status.js'
import { renderStatus } from '../../src/cli/control.js'
import type { NodeApplyResult } from '../../src/reconcile/node.js'

const KEY_B = Buffer.alloc(32, 2).toString('base64')
const KEY_C = Buffer.alloc(32, 3).toString('base64')

const kernelResult = (ok: boolean) =>
  ({
    ok, trigger: 'desired', plan: { actions: [{ text: '+ route 10.1.0.0/16 dev qe0 table 5280 proto quicether' }], summary: { add: 1, change: 0, del: 0 }, live: true },
    issues: [], applied: 1, failed: null, verify: 'ok', verifyDiff: [], rolledBack: false, rollbackFailures: [], rollbackError: null, error: null,
    startedAt: '2026-12-04T07:00:00.000Z', durationMs: 12.4,
  }) as unknown as NodeApplyResult['kernel']

t.test('every admitted peer is listed, connected or not; engine changes are part of the last apply', async (t) => {
  const last: NodeApplyResult = {
    ok: true,
    kernel: kernelResult(true),
    firewall: { actions: [{ op: 'add', text: '+ firewall mss clamp on qe0' }], ok: true, error: null },
    engine: { actions: [{ table: 'peer', op: 'add', text: '+ engine peer b' }], ok: true, version: 3, error: null, rolledBack: false },
  }
  const st = buildStatus({
    node: { name: 'a', key: 'KA', overlay: { ipv4: '100.88.0.1', ipv6: 'fd00::1' }, tun: 'qe0', tunMtu: 1400 },
    config: { file: '/etc/q.yaml', generation: 2, errors: [], warnings: [], pendingConfirm: null },
    lastApply: last,
    mesh: {
      admitted: [
        { key: KEY_B, name: 'b', state: 'up', since: 1000, lastError: null, remote: { address: '192.0.2.2', port: 7443 } },
        { key: KEY_C, name: 'c', state: 'connecting', since: 2000, lastError: 'dial 192.0.2.3:7443 failed: handshake-failed', remote: null },
      ],
      connected: [{ key: KEY_B, name: 'b', remote: { address: '192.0.2.2', port: 7443 }, since: 1000, hello: null }],
    },
    routes: { fib: [], learned: [], rejected: [] },
    engine: null,
    startedAt: 0,
    now: 5000,
  })
  t.same(st.peers.map((p) => [p.name, p.state, p.since]), [['b', 'up', '1970-01-01T00:00:01.000Z'], ['c', 'connecting', '1970-01-01T00:00:02.000Z']])
  t.same(st.lastApply?.plan, ['+ route 10.1.0.0/16 dev qe0 table 5280 proto quicether', '+ firewall mss clamp on qe0', '+ engine peer b'])
  t.equal(st.uptimeS, 5)
  const text = renderStatus(JSON.parse(JSON.stringify(st)) as Record<string, unknown>)
  t.match(text, /peers {4}1 up of 2/)
  t.match(text, /c +- +connecting since 1970-01-01T00:00:02.000Z {2}last error: dial 192\.0\.2\.3:7443 failed: handshake-failed/)
})

t.test('a failed engine step is the failure summarized, with its rollback', async (t) => {
  const r: NodeApplyResult = {
    ok: false,
    kernel: kernelResult(true),
    firewall: { actions: [], ok: true, error: null },
    engine: { actions: [], ok: false, version: 4, error: { code: 'QE_ENGINE_VERIFY', message: 'not applied', retryable: false }, rolledBack: true },
  }
  t.match(summarizeApply(r), { ok: false, failure: 'engine tables: not applied', rolledBack: true })
})

t.test("the policy slice: the engine's hits per packed rule summed per rule of the config, the default's last", async (t) => {
  const { compilePolicy } = await import('../../src/policy/policy.js')
  const { loadConfigText } = await import('../../src/config/index.js')
  const r = loadConfigText('node: { name: a }\nnetwork: { name: n }\npolicies:\n  default: deny\n  rules:\n    - { name: web, from: any, to: any, proto: tcp, ports: [80, 443], action: allow }\n    - { name: dns, from: any, to: any, proto: udp, ports: [53], action: deny }\n', 'p.yaml')
  if (!r.ok) throw new Error('config')
  const table = compilePolicy(r.config, [])
  const global = { policy: { passed: 9, flows: 2, drops: { rule: 4, default: 6, noFlow: 1, fragment: 0, malformed: 0, tableFull: 0 }, hits: [3, 2, 4, 6] } } as unknown as GlobalStats
  const st = buildStatus({
    node: null, config: { file: null, generation: 1, errors: [], warnings: [], pendingConfirm: null }, lastApply: null,
    mesh: { admitted: [], connected: [] }, routes: { fib: [], learned: [], rejected: [] },
    engine: { listenPort: 1, tablesVersion: 1, stats: { global, peers: [] } },
    policy: { table, origins: [0, 0, 1] }, startedAt: 0, now: 0,
  })
  t.match(st.policy, { enforced: true, default: 'deny', defaultHits: 6, drops: { rule: 4, default: 6, noFlow: 1 } })
  t.same(st.policy!.rules.map((x) => [x.number, x.name, x.action, x.hits]), [[1, 'web', 'allow', 5], [2, 'dns', 'deny', 4]])
})
