/**
 * The `observe` step: read our slice of the kernel back. One dump per kind;
 * only marked objects are kept (routes of our protocol, rules in our priority
 * range, `qe` links and their addresses, link-local ones aside), plus the
 * routes of other owners that sit on an identity we want (for `validate`).
 */
import type { SystemAdapter } from '../system/types.js'
import type { ActualState, KernelState } from '../state/types.js'
import { isOwnedLinkName, isOwnedRouteProtocol, RULE_PRIORITY_MAX, RULE_PRIORITY_MIN } from '../state/marks.js'
import { isLinkLocal } from '../net/ip.js'
import { normalizeActual, normalizeState } from '../state/normalize.js'
import { routeKey } from '../state/keys.js'
import { SysctlError } from '../system/errors.js'

function isMissing(err: unknown): boolean {
  return err instanceof SysctlError && err.errno === 'ENOENT'
}

/**
 * `managedLinks`: links this reconciler manages beyond those `desired` names
 * (cleanup's desired state names none, but must still clear their addresses).
 */
export async function observe(system: SystemAdapter, desiredIn: KernelState | null, managedLinks: Iterable<string> = []): Promise<ActualState> {
  const desired = desiredIn === null ? null : normalizeState(desiredIn)
  const wantedLinks = new Set([...(desired?.links.map((l) => l.name) ?? []), ...managedLinks])
  const wantedRouteKeys = new Set(desired?.routes.map(routeKey) ?? [])
  const sysctlKeys = Object.keys(desired?.sysctls ?? {})

  const [links, addresses, routes, rules, sysctlValues] = await Promise.all([
    system.listLinks(),
    system.listAddresses(),
    system.listRoutes(),
    system.listRules({ priorityMin: RULE_PRIORITY_MIN, priorityMax: RULE_PRIORITY_MAX }),
    // A per-interface key of a link that does not exist (yet) reads as absent; `validate` reports the link.
    Promise.all(sysctlKeys.map((k) => system.readSysctl(k).catch((err: unknown) => (isMissing(err) ? null : Promise.reject(err))))),
  ])

  // Only the links the desired state names (our TUN) or that we managed are ours: another
  // `qe…` interface on this machine (a second daemon's TUN) belongs to someone else. Our TUN
  // does not outlive the engine, so a crashed run leaves no link behind to adopt.
  const ownLinks = links.filter((l) => isOwnedLinkName(l.name) && wantedLinks.has(l.name))
  const ownLinkNames = new Set(ownLinks.map((l) => l.name))
  const sysctls: Record<string, string> = {}
  sysctlKeys.forEach((k, i) => {
    const v = sysctlValues[i]
    if (v !== null && v !== undefined) sysctls[k] = v
  })

  return normalizeActual({
    links: ownLinks.map((l) => ({ name: l.name, mtu: l.mtu, up: l.up })),
    addresses: addresses.filter((a) => ownLinkNames.has(a.dev) && isOwnedLinkName(a.dev) && !isLinkLocal(a.address)),
    routes: routes.filter((r) => isOwnedRouteProtocol(r.protocol)),
    rules,
    sysctls,
    foreignRoutes: routes.filter((r) => !isOwnedRouteProtocol(r.protocol) && wantedRouteKeys.has(routeKey(r))),
  })
}
