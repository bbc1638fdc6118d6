/**
 * "Did you mean …?" for unknown keys and enum values.
 *
 * Tried in order: the same key in kebab-case (`stateDir`, `state_dir` → `state-dir`);
 * a common alias (`advertise-subnets` → `subnets`); a close spelling (edit distance);
 * the key being valid somewhere else (`scheduler` at the top → `multipath.scheduler`).
 */

/** Words people reach for, mapped to the key we use. Checked against the keys allowed at that level. */
const ALIASES: Record<string, string[]> = {
  subnets: ['advertise-subnets', 'advertised-subnets', 'advertise-subnet', 'advertise', 'networks', 'lans', 'lan-subnets', 'subnet', 'prefixes'],
  interfaces: ['uplinks', 'uplink', 'links', 'wans', 'wan', 'interface', 'nics'],
  peers: ['peer', 'nodes', 'members'],
  policies: ['policy', 'acl', 'acls', 'firewall', 'rules'],
  logging: ['log', 'logs', 'log-level'],
  audit: ['audit-log', 'auditing'],
  name: ['hostname', 'node-name', 'id', 'network-name'],
  key: ['public-key', 'pubkey', 'publickey', 'pub-key', 'public'],
  endpoints: ['endpoint', 'address', 'addresses', 'addr', 'host', 'hosts'],
  bootstrap: ['bootstrap-nodes', 'bootstraps', 'bootstrap-peers', 'dht-bootstrap', 'seeds'],
  'connect-to': ['connect', 'static-peers', 'connect-peers', 'dial'],
  'public-address': ['public-ip', 'public-addr', 'external-ip', 'external-address'],
  'require-2fa': ['2fa', 'mfa', 'require-mfa', 'two-factor', 'require2fa'],
  accept: ['accept-multipath', 'allow-multipath'],
  'forward-for': ['forward', 'forwards', 'forward-to'],
  'advertise-bandwidth': ['advertise-bw', 'bandwidth', 'advertised-bandwidth'],
  relay: ['relay-mode', 'enable-relay'],
  exit: ['exit-node', 'is-exit'],
  to: ['cidr', 'destination', 'dest', 'dst', 'prefix', 'network'],
  via: ['gateway', 'next-hop', 'nexthop', 'peer'],
  from: ['src', 'source'],
  proto: ['protocol'],
  ports: ['port'],
  port: ['listen-port'],
  'state-dir': ['state-directory', 'data-dir', 'datadir', 'statedir'],
  identity: ['identity-key', 'key-file', 'private-key', 'keyfile'],
  'traffic-classes': ['classes', 'traffic-class'],
  'max-delay': ['delay', 'timeout'],
  'max-bytes': ['size', 'buffer'],
  'bootstrap-mode': ['bootstrap-node', 'is-bootstrap'],
  'advertise-as-bootstrap': ['advertise-bootstrap'],
  overlay: ['range', 'cidr', 'overlay-range', 'pool'],
  default: ['default-action', 'default-policy'],
  action: ['verdict', 'policy', 'target'],
}

const ALIAS_TO_KEY = new Map<string, string[]>()
for (const [key, aliases] of Object.entries(ALIASES)) {
  for (const a of aliases) ALIAS_TO_KEY.set(a, [...(ALIAS_TO_KEY.get(a) ?? []), key])
}

/** `stateDir`, `state_dir`, `State Dir` → `state-dir`. */
export function toKebab(s: string): string {
  return s
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/[_\s]+/g, '-')
    .toLowerCase()
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0
  const m = a.length
  const n = b.length
  let prev2: number[] = []
  let prev: number[] = Array.from({ length: n + 1 }, (_, j) => j)
  for (let i = 1; i <= m; i++) {
    const cur: number[] = [i]
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, prev2[j - 2]! + 1)
      cur.push(v)
    }
    prev2 = prev
    prev = cur
  }
  return prev[n]!
}

/** The closest candidate within a distance that scales with the word's length, or undefined. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(word.length / 3)))
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestD) {
      best = c
      bestD = d
    }
  }
  return bestD <= limit ? best : undefined
}

/**
 * A hint for an unknown key (`' (did you mean 'subnets'?)'`-ready text without the parentheses),
 * or undefined. `elsewhere` maps every key of the schema to the dotted paths of the objects that allow it.
 */
export function suggestKey(unknown: string, allowed: readonly string[], elsewhere?: ReadonlyMap<string, readonly string[]>): string | undefined {
  const kebab = toKebab(unknown)
  if (kebab !== unknown && allowed.includes(kebab)) return `did you mean '${kebab}'? (keys are kebab-case)`
  for (const word of new Set([unknown, kebab])) {
    const target = ALIAS_TO_KEY.get(word)?.find((k) => allowed.includes(k))
    if (target) return `did you mean '${target}'?`
  }
  const near = closest(kebab, allowed)
  if (near) return `did you mean '${near}'?`
  // A misspelt alias (`advertize-subnets`).
  const nearAlias = closest(kebab, [...ALIAS_TO_KEY.keys()])
  const aliasTarget = nearAlias ? ALIAS_TO_KEY.get(nearAlias)?.find((k) => allowed.includes(k)) : undefined
  if (aliasTarget) return `did you mean '${aliasTarget}'?`
  if (elsewhere) {
    for (const word of [kebab, ...(ALIAS_TO_KEY.get(kebab) ?? [])]) {
      const places = elsewhere.get(word)
      if (places && places.length > 0 && places.length <= 3) {
        const full = places.map((p) => (p === '' ? word : `${p}.${word}`))
        return `did you mean ${full.map((f) => `'${f}'`).join(' or ')}?`
      }
    }
  }
  return undefined
}
