/**
 * NAT on a link's router, with side a inside and side b outside.
 *
 *   cone       masquerade (Linux keeps the source port when it can) and a
 *              drop of unsolicited inbound traffic: a port-restricted cone.
 *   symmetric  `masquerade random`: a new source port per destination.
 *
 * With a delay line a packet crosses the router twice (veth → TUN, TUN →
 * veth). NAT rules are consulted only for a connection's first packet, so
 * conntrack must see each packet once: the pass on the inside (entering from
 * a's veth, or re-entering from b's delay TUN) is left untracked, and NAT
 * happens on the outside pass.
 */
import type { NatKind } from './types.js'

export interface NatInterfaces {
  /** Router veth facing the inside node (a). */
  readonly inside: string
  /** Router veth facing the outside node (b). */
  readonly outside: string
  /** Delay TUN for packets from a (absent when a→b has no delay). */
  readonly delayFromInside: string | null
  /** Delay TUN for packets from b (absent when b→a has no delay). */
  readonly delayFromOutside: string | null
}

/** The nftables table for `kind`, or null for 'none'. */
export function natTable(table: string, kind: NatKind, ifs: NatInterfaces): string | null {
  if (kind === 'none') return null
  const untracked = [ifs.delayFromInside ? ifs.inside : null, ifs.delayFromOutside].filter((x): x is string => x !== null)
  const lines = [`table inet ${table} {`]
  if (untracked.length > 0) {
    lines.push(
      `  chain raw {`,
      `    type filter hook prerouting priority raw; policy accept;`,
      `    iifname { ${untracked.map((i) => `"${i}"`).join(', ')} } notrack`,
      `  }`,
    )
  }
  lines.push(
    `  chain postrouting {`,
    `    type nat hook postrouting priority srcnat; policy accept;`,
    `    oifname "${ifs.outside}" masquerade${kind === 'symmetric' ? ' random' : ''}`,
    `  }`,
    // Only replies (and related ICMP) come in from outside; nothing unsolicited.
    `  chain input {`,
    `    type filter hook input priority filter; policy accept;`,
    `    iifname "${ifs.outside}" ct state new counter drop`,
    `  }`,
    `  chain forward {`,
    `    type filter hook forward priority filter; policy accept;`,
    `    iifname "${ifs.outside}" ct state new counter drop`,
    `  }`,
    `}`,
    '',
  )
  return lines.join('\n')
}
