/**
 * Kernel MPTCP over the bonding lab's links: the technology OpenMPTCProuter
 * bonds with, measured on exactly the links QuicEther bonds.
 *
 * Set-up, inside the lab's two namespaces only:
 *   both     net.mptcp.enabled=1; `ip mptcp limits set subflow N add_addr_accepted N`
 *            (N = uplinks - 1)
 *   gateway  `ip mptcp endpoint add <its address on link i> dev <its ifname> signal`
 *            for every link but the first: it announces each of its addresses,
 *            and the client opens one subflow to each, which routing sends
 *            over that link (the gateway's address on a link is reached
 *            through that link only)
 * The client gets no `subflow` endpoints: those would dial the gateway's
 * first address, which has no route through any other link (the attempts
 * fail with EHOSTUNREACH and only add noise to the counters).
 *
 * The transfer runs iperf3 under `mptcpize run` (Debian package
 * `mptcpize`), the server listening on every address of the gateway.
 * Resets here are connection failures iperf3 saw; subflows that die with a
 * cut link are expected and counted apart.
 */
import { existsSync } from 'node:fs'
import { LabPrerequisiteError, LabSpecError } from './errors.js'
import { runIn } from './exec.js'
import type { LinkHandle } from './types.js'

/** The kernel's limit on extra subflows and accepted addresses (MPTCP_PM_ADDR_MAX). */
export const MPTCP_MAX_EXTRA = 8

export interface MptcpCommands {
  /** Argument lists for `ip netns exec <ns> …` in the client and the gateway. */
  readonly client: readonly (readonly string[])[]
  readonly gateway: readonly (readonly string[])[]
}

/** The set-up commands for links a = client, b = gateway (pure). */
export function mptcpCommands(links: readonly Pick<LinkHandle, 'ifB' | 'addrB'>[]): MptcpCommands {
  const extra = links.length - 1
  if (extra < 1) throw new LabSpecError('MPTCP needs two or more uplinks')
  if (extra > MPTCP_MAX_EXTRA) throw new LabSpecError(`MPTCP bonds at most ${MPTCP_MAX_EXTRA + 1} uplinks (the kernel's subflow limit), got ${links.length}`)
  const common = [
    ['sysctl', '-q', '-w', 'net.mptcp.enabled=1'],
    ['ip', 'mptcp', 'limits', 'set', 'subflow', String(extra), 'add_addr_accepted', String(extra)],
  ]
  const signal = links.slice(1).map((l) => ['ip', 'mptcp', 'endpoint', 'add', l.addrB.ipv4, 'dev', l.ifB, 'signal'])
  return { client: [['ip', 'mptcp', 'endpoint', 'flush'], ...common], gateway: [['ip', 'mptcp', 'endpoint', 'flush'], ...common, ...signal] }
}

/** Throws LabPrerequisiteError unless `mptcpize` is installed. */
export function requireMptcpize(): void {
  if (!['/usr/bin/mptcpize', '/usr/local/bin/mptcpize', '/bin/mptcpize'].some((p) => existsSync(p))) {
    throw new LabPrerequisiteError("kernel MPTCP runs iperf3 under 'mptcpize', which is not installed: apt-get install mptcpize (scripts/setup.sh installs it)")
  }
}

/** Enables MPTCP in the client's and the gateway's namespaces for links a = client, b = gateway. */
export async function setupMptcp(clientNs: string, gatewayNs: string, links: readonly Pick<LinkHandle, 'ifB' | 'addrB'>[]): Promise<void> {
  requireMptcpize()
  const cmds = mptcpCommands(links)
  for (const [ns, list] of [[clientNs, cmds.client], [gatewayNs, cmds.gateway]] as const) {
    for (const c of list) await runIn(ns, c[0]!, c.slice(1))
  }
}

/** Counters of the client's MPTCP stack that say how the connection used its subflows. */
export const MPTCP_COUNTERS = {
  /** MPTCP connections the client opened (each iperf3 test opens its control and data connections). */
  capable: 'MPTcpExt.MPCapableSYNACKRX',
  /** Subflows joined to them. */
  joined: 'MPTcpExt.MPJoinSynAckRx',
} as const
