/**
 * Keys this version validates and documents but does not act on. A config that
 * sets one to anything but its default gets a warning with the stable code
 * QE_NOT_IMPLEMENTED at the key (so `validate --strict` fails on it, and the
 * daemon logs it at start and on every reload).
 *
 * This table is the one list: when a feature lands, delete its entries here
 * (and the "not acted on" words in the schema text, the starter and the examples).
 */
import type { Path } from './positions.js'
import type { Raw, RuleProblem } from './rules.js'

export interface InertKey {
  /** Dotted key; `[]` stands for every item of a list (`interfaces[].cost`). */
  readonly key: string
  /** True when the value asks for nothing this version lacks (absent is always so). */
  readonly isDefault: (value: unknown) => boolean
  /** What happens instead, for the message. */
  readonly instead: string
}

const absent = (): boolean => false

export const NOT_IMPLEMENTED: readonly InertKey[] = [
  { key: 'interfaces[].bandwidth.down', isDefault: absent, instead: 'what a peer sends over this uplink is paced by the peer\'s own measure' },
  {
    key: 'multipath.scheduler',
    // min-rtt (the default) and ecf name the aggregate scheduler (earliest expected delivery,
    // which waits for a faster path's queue when that is sooner: ECF); weighted is its own algorithm.
    isDefault: (v) => v === 'min-rtt' || v === 'ecf' || v === 'weighted',
    instead: 'round-robin runs the aggregate scheduler, as min-rtt and ecf do (one delivery delay for the bond, then earliest expected delivery); write min-rtt, ecf or weighted',
  },
]

/** One warning per inert key the document sets to a non-default value, in table order. */
export function checkNotImplemented(raw: Raw): RuleProblem[] {
  const out: RuleProblem[] = []
  for (const k of NOT_IMPLEMENTED) {
    for (const { path, value } of find(raw, k.key.split('.'))) {
      if (value === undefined || k.isDefault(value)) continue
      out.push({
        path,
        at: 'key',
        code: 'QE_NOT_IMPLEMENTED',
        severity: 'warning',
        message: `${k.key.replace('[]', `[${String(path[1])}]`)} is not acted on by this version (it is only validated): ${k.instead}`,
      })
    }
  }
  return out
}

/** Every (path, value) the dotted key names in `doc`; `name[]` expands over a list's items. */
function find(doc: unknown, segments: readonly string[], at: Path = []): Array<{ path: Path; value: unknown }> {
  if (segments.length === 0) return [{ path: at, value: doc }]
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return []
  const [head, ...rest] = segments as [string, ...string[]]
  if (head.endsWith('[]')) {
    const name = head.slice(0, -2)
    const items = (doc as Raw)[name]
    if (!Array.isArray(items)) return []
    return items.flatMap((item, i) => find(item, rest, [...at, name, i]))
  }
  return find((doc as Raw)[head], rest, [...at, head])
}
