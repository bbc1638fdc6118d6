/**
 * `policies.tests`: flows with the decision the policy must make, checked at
 * every load (`quicether validate`, and a config edit on a running node) the
 * way Tailscale's ACL tests are. A failing test is a config error, so a
 * policy change that breaks what it promised is never applied.
 *
 * Offline, a member's overlay addresses are what the config says or derives
 * from its key (as the daemon does for a pinned peer); members known only by
 * a certificate are not in the file and cannot be named here.
 */
import type { Config } from '../config/index.js'
import { deriveOverlayAddresses } from '../mesh/identity.js'
import { compilePolicy, evaluate, parseTarget, type PolicyMember, type PolicyTable } from './policy.js'
import { parseCidr } from '../net/ip.js'

export interface PolicyTestProblem {
  readonly path: readonly (string | number)[]
  readonly code: 'policy-test-failed' | 'policy-test-unresolved'
  readonly message: string
}

/** The members a config names, with the addresses it says or derives (offline). */
export function configMembers(config: Config, selfAddresses?: { ipv4: string | null; ipv6: string | null }): PolicyMember[] {
  const { ipv4, ipv6 } = config.network.overlay
  const self = selfAddresses ?? config.network.address
  const out: PolicyMember[] = [{ name: config.node.name, addresses: [self.ipv4, self.ipv6].filter((a): a is string => a !== null), groups: [] }]
  for (const p of config.peers) {
    let addresses: string[]
    try {
      const d = deriveOverlayAddresses(Buffer.from(p.key, 'base64'), ipv4, ipv6)
      addresses = [d.ipv4, d.ipv6]
    } catch {
      addresses = []
    }
    out.push({ name: p.name, addresses, groups: p.groups })
  }
  return out
}

export function checkPolicyTests(config: Config, members: readonly PolicyMember[] = configMembers(config)): PolicyTestProblem[] {
  const tests = config.policies.tests
  if (tests.length === 0) return []
  // Tests judge the rules as written, enforced or not.
  const table: PolicyTable = compilePolicy({ policies: { ...config.policies, enforced: true } }, members)
  const out: PolicyTestProblem[] = []
  tests.forEach((t, i) => {
    const path = ['policies', 'tests', i]
    const to = parseTarget(t.to)
    if ('error' in to) {
      out.push({ path: [...path, 'to'], code: 'policy-test-unresolved', message: to.error })
      return
    }
    const family = parseCidr(to.addr).family
    let src: string
    let member: string | undefined
    if (t.from.startsWith('peer:')) {
      const name = t.from.slice(5)
      const m = members.find((x) => x.name === name)
      const a = m?.addresses.find((x) => parseCidr(x).family === family)
      if (!m) {
        out.push({ path: [...path, 'from'], code: 'policy-test-unresolved', message: `no member '${name}' in this config` })
        return
      }
      if (!a) {
        out.push({ path: [...path, 'from'], code: 'policy-test-unresolved', message: `no IPv${family} overlay address is known for '${name}' here${name === config.node.name ? ' (set network.address, or test from a peer)' : ''}` })
        return
      }
      src = a
      member = name
    } else {
      try {
        src = parseCidr(t.from).network
      } catch {
        out.push({ path: [...path, 'from'], code: 'policy-test-unresolved', message: `'${t.from}' is not peer:NAME or an IP address` })
        return
      }
      if (parseCidr(src).family !== family) {
        out.push({ path: [...path, 'from'], code: 'policy-test-unresolved', message: `'${t.from}' and '${t.to}' are of different address families` })
        return
      }
    }
    const v = evaluate(table, { src, dst: to.addr, proto: to.proto, dport: to.port, ...(member !== undefined ? { member } : {}) })
    if (v.action !== t.expect) {
      const why = v.rule ? `rule ${v.rule.index + 1} ('${v.rule.name}': ${v.rule.text})` : `the default (${table.default})`
      out.push({ path: [...path, 'expect'], code: 'policy-test-failed', message: `policy test failed: ${t.from} → ${t.to} is ${v.action === 'allow' ? 'allowed' : 'denied'} by ${why}, the test expects ${t.expect}` })
    }
  })
  return out
}
