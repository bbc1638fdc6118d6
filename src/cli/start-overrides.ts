/**
 * `quicether start` flags → config overrides. Each flag names exactly one
 * kebab-case key of the YAML document; the loader applies the overrides
 * before validation and reports a bad value with `file` = the flag.
 *
 * Two flags merge with the file instead of replacing a key, so they need the
 * file's own list first:
 *   --advertise-subnet   appended to the file's `subnets`
 *   --interfaces a,b     exactly these uplinks, keeping the file's settings for a and b
 * For those, the config is loaded once with the plain overrides to read the
 * document, then again with the merged lists.
 */
import { loadConfigFile, loadConfigText, type ConfigOverride, type Diagnostic, type LoadResult } from '../config/index.js'

/** The parsed flags of `quicether start` (commander's camelCase names). */
export interface StartFlags {
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
  bootstrapMode?: boolean
  publicIp?: string
  advertiseAsBootstrap?: boolean
  auditLog?: string
  require2fa?: boolean
  logLevel?: string
}


/** Flag → key, for the flags that simply set a key. Order is the help's order. */
export const FLAG_KEYS: ReadonlyArray<{ flag: string; option: keyof StartFlags; path: string[]; number?: boolean }> = [
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
  { flag: '--bootstrap-mode', option: 'bootstrapMode', path: ['node', 'bootstrap-mode'] },
  { flag: '--public-ip', option: 'publicIp', path: ['discovery', 'public-address'] },
  { flag: '--advertise-as-bootstrap', option: 'advertiseAsBootstrap', path: ['discovery', 'advertise-as-bootstrap'] },
  { flag: '--audit-log', option: 'auditLog', path: ['audit', 'path'] },
  { flag: '--require-2fa', option: 'require2fa', path: ['auth', 'require-2fa'] },
  { flag: '--log-level', option: 'logLevel', path: ['logging', 'level'] },
]

export interface PlannedOverrides {
  /** Overrides that set a key outright. */
  set: ConfigOverride[]
  /** `--advertise-subnet` values, appended to the file's subnets. */
  addSubnets: string[]
  /** `--interfaces` names: the uplink list becomes exactly these. */
  interfaces: string[] | null
}

export function buildOverrides(flags: StartFlags): PlannedOverrides {
  const set: ConfigOverride[] = []
  for (const { flag, option, path, number } of FLAG_KEYS) {
    const v = flags[option]
    if (v === undefined) continue
    const value = number && typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v
    set.push({ path: [...path], value, source: flag })
  }
  return { set, addSubnets: flags.advertiseSubnet ?? [], interfaces: flags.interfaces ?? null }
}

/** A load result plus the overrides it was made with (the daemon re-applies them on reload). */
export type StartLoad = LoadResult & { overrides: ConfigOverride[] }

/**
 * Loads `file` with the planned overrides. Never throws for bad content;
 * `ConfigReadError` when the file cannot be read.
 */
export async function loadWithOverrides(file: string, plan: PlannedOverrides): Promise<StartLoad> {
  const first = await loadConfigFile(file, { overrides: plan.set })
  return finishLoad(first, plan, (overrides) => loadConfigFile(file, { overrides }))
}

/**
 * The same for a config text: what the daemon runs on every reload, so the
 * merging flags are merged into the new file's lists, not replayed at the
 * positions the first file had.
 */
export function loadTextWithOverrides(text: string, file: string, plan: PlannedOverrides): Promise<StartLoad> {
  const first = loadConfigText(text, file, { overrides: plan.set })
  return finishLoad(first, plan, async (overrides) => loadConfigText(text, file, { overrides }))
}

async function finishLoad(first: LoadResult, plan: PlannedOverrides, again: (o: ConfigOverride[]) => Promise<LoadResult>): Promise<StartLoad> {
  if (plan.addSubnets.length === 0 && plan.interfaces === null) return { ...first, overrides: plan.set }
  if (first.ok) {
    const overrides = [...plan.set, ...mergedListOverrides(plan, first.raw)]
    return { ...(await again(overrides)), overrides }
  }
  return listFlagProblems(first, plan)
}

/**
 * The file has errors of its own, so there is no document to merge into. Report those, and
 * check the list flags' values on their own so a bad one is not hidden behind them.
 */
function listFlagProblems(first: LoadResult, plan: PlannedOverrides): StartLoad {
  const listOverrides = mergedListOverrides(plan, undefined)
  const listOnly = loadConfigText('node: { name: x }\nnetwork: { name: x }\n', '<flags>', { overrides: listOverrides })
  const sources = new Set(['--advertise-subnet', '--interfaces'])
  // Errors only: warnings about a stand-in document would be noise.
  const flagProblems = listOnly.diagnostics.filter((d: Diagnostic) => sources.has(d.file) && d.severity === 'error')
  return { ok: false, diagnostics: [...first.diagnostics, ...flagProblems], overrides: [...plan.set, ...listOverrides] }
}

/** The overrides for the merging flags, given the document the file (plus plain flags) produced. */
export function mergedListOverrides(plan: PlannedOverrides, raw: unknown): ConfigOverride[] {
  const doc = isRecord(raw) ? raw : {}
  const out: ConfigOverride[] = []
  if (plan.addSubnets.length > 0) {
    const current = doc['subnets']
    if (Array.isArray(current)) {
      // One override per new entry, at the end: the file's own entries keep their positions.
      plan.addSubnets.forEach((prefix, i) => out.push({ path: ['subnets', String(current.length + i)], value: prefix, source: '--advertise-subnet' }))
    } else {
      out.push({ path: ['subnets'], value: [...plan.addSubnets], source: '--advertise-subnet' })
    }
  }
  if (plan.interfaces !== null) {
    const current = Array.isArray(doc['interfaces']) ? (doc['interfaces'] as unknown[]) : []
    const value = plan.interfaces.map((name) => current.find((u) => isRecord(u) && u['name'] === name) ?? { name })
    out.push({ path: ['interfaces'], value, source: '--interfaces' })
  }
  return out
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
