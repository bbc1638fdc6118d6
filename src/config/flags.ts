/**
 * Command-line flags as config overrides. Each flag names exactly one kebab-case
 * key of the YAML document; the loader applies the overrides before validation
 * and reports a bad value with `file` = the flag, so flags are checked exactly
 * like the file.
 *
 * Two flags merge with the file instead of replacing a key, so they are worked
 * out against the file's own document:
 *   --advertise-subnet   appended to the file's `subnets`
 *   --interfaces a,b     exactly these uplinks, keeping the file's settings for a and b
 *
 * `makeLoader(flags)` is what the daemon calls on every reload: the merging
 * flags are merged into the new file's lists, never replayed at the positions
 * an older file had.
 */
import type { ConfigOverride, LoadResult } from './index.js'
import type { Diagnostic } from './diagnostics.js'
import { loadConfigText } from './load.js'

/** The flags of `quicether start` (commander's camelCase names); absent means "as the file says". */
export interface ConfigFlags {
  name?: string
  role?: string
  bootstrap?: string[]
  connectTo?: string[]
  advertiseSubnet?: string[]
  interfaces?: string[]
  multipath?: string
  scheduler?: string
  target?: string
  acceptMultipath?: boolean
  advertiseBandwidth?: string
  forwardFor?: string[]
  exitNode?: string
  exitNodeRequired?: boolean
  bootstrapMode?: boolean
  publicIp?: string
  advertiseAsBootstrap?: boolean
  auditLog?: string
  require2fa?: boolean
  logLevel?: string
}

/** Flag → key, for the flags that simply set a key. Order is the help's order. */
export const FLAG_KEYS: ReadonlyArray<{ flag: string; option: keyof ConfigFlags; path: readonly string[]; number?: boolean }> = [
  { flag: '--name', option: 'name', path: ['node', 'name'] },
  { flag: '--role', option: 'role', path: ['node', 'role'] },
  { flag: '--bootstrap', option: 'bootstrap', path: ['discovery', 'bootstrap'] },
  { flag: '--connect-to', option: 'connectTo', path: ['discovery', 'connect-to'] },
  { flag: '--multipath', option: 'multipath', path: ['multipath', 'mode'] },
  { flag: '--scheduler', option: 'scheduler', path: ['multipath', 'scheduler'] },
  { flag: '--target', option: 'target', path: ['multipath', 'target'] },
  { flag: '--accept-multipath', option: 'acceptMultipath', path: ['multipath', 'accept'] },
  // A bare number is bits/s, as in the file.
  { flag: '--advertise-bandwidth', option: 'advertiseBandwidth', path: ['gateway', 'advertise-bandwidth'], number: true },
  { flag: '--forward-for', option: 'forwardFor', path: ['gateway', 'forward-for'] },
  { flag: '--exit-node', option: 'exitNode', path: ['exit-node'] },
  { flag: '--exit-node-required', option: 'exitNodeRequired', path: ['exit-node-required'] },
  { flag: '--bootstrap-mode', option: 'bootstrapMode', path: ['node', 'bootstrap-mode'] },
  { flag: '--public-ip', option: 'publicIp', path: ['discovery', 'public-address'] },
  { flag: '--advertise-as-bootstrap', option: 'advertiseAsBootstrap', path: ['discovery', 'advertise-as-bootstrap'] },
  { flag: '--audit-log', option: 'auditLog', path: ['audit', 'path'] },
  { flag: '--require-2fa', option: 'require2fa', path: ['auth', 'require-2fa'] },
  { flag: '--log-level', option: 'logLevel', path: ['logging', 'level'] },
]

const MERGING = new Set(['--advertise-subnet', '--interfaces'])

/** The overrides of the flags that simply set a key. */
function setOverrides(flags: ConfigFlags): ConfigOverride[] {
  const out: ConfigOverride[] = []
  for (const { flag, option, path, number } of FLAG_KEYS) {
    const v = flags[option]
    if (v === undefined) continue
    const value = number && typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v
    out.push({ path: [...path], value, source: flag })
  }
  return out
}

/** The overrides of the merging flags, given the document the file produced (`undefined`: none). */
function mergeOverrides(flags: ConfigFlags, raw: unknown): ConfigOverride[] {
  const doc = isRecord(raw) ? raw : {}
  const out: ConfigOverride[] = []
  const addSubnets = flags.advertiseSubnet ?? []
  if (addSubnets.length > 0) {
    const current = doc['subnets']
    if (Array.isArray(current)) {
      // One override per new entry, at the end: the file's own entries keep their positions.
      addSubnets.forEach((prefix, i) => out.push({ path: ['subnets', String(current.length + i)], value: prefix, source: '--advertise-subnet' }))
    } else {
      out.push({ path: ['subnets'], value: [...addSubnets], source: '--advertise-subnet' })
    }
  }
  if (flags.interfaces !== undefined) {
    const current = Array.isArray(doc['interfaces']) ? (doc['interfaces'] as unknown[]) : []
    const value = flags.interfaces.map((name) => current.find((u) => isRecord(u) && u['name'] === name) ?? { name })
    out.push({ path: ['interfaces'], value, source: '--interfaces' })
  }
  return out
}

/**
 * Every override `flags` make on the document `raw` (the file as parsed, before
 * any flag; `undefined` when there is none): the plain flags set their key,
 * `--advertise-subnet` appends to the file's subnets, `--interfaces` keeps the
 * file's settings for the uplinks it names. Pure; an empty list means no flag was given.
 */
export function applyOverrides(flags: ConfigFlags, raw: unknown): ConfigOverride[] {
  return [...setOverrides(flags), ...mergeOverrides(flags, raw)]
}

/** Loads one config text; what the daemon calls at start and on every reload. Never throws for bad content. */
export type ConfigLoader = (text: string, file: string) => LoadResult | Promise<LoadResult>

/**
 * A loader that applies `flags` to every text it is given, so flags keep winning
 * over the file across reloads. Synchronous in fact; typed as the daemon's seam.
 */
export function makeLoader(flags: ConfigFlags): (text: string, file: string) => LoadResult {
  const set = setOverrides(flags)
  const merging = flags.advertiseSubnet !== undefined || flags.interfaces !== undefined
  return (text, file) => {
    const first = loadConfigText(text, file, { overrides: set })
    if (!merging) return first
    // The merging flags need the file's own lists: a second load with them merged in.
    if (first.ok) return loadConfigText(text, file, { overrides: [...set, ...mergeOverrides(flags, first.raw)] })
    return withListFlagProblems(first, flags)
  }
}

/**
 * The file has errors of its own, so there is no document to merge into. Report those, and
 * check the list flags' values on their own so a bad one is not hidden behind them.
 */
function withListFlagProblems(first: LoadResult, flags: ConfigFlags): LoadResult {
  const alone = loadConfigText('node: { name: x }\nnetwork: { name: x }\n', '<flags>', { overrides: mergeOverrides(flags, undefined) })
  // Errors only: warnings about a stand-in document would be noise.
  const flagProblems = alone.diagnostics.filter((d: Diagnostic) => MERGING.has(d.file) && d.severity === 'error')
  return { ok: false, diagnostics: [...first.diagnostics, ...flagProblems] }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
