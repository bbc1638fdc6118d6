/**
 * The config module's public face. Everything else imports from here.
 *
 *   text ─ parse (YAML, positions, guards) ─ overrides (flags.ts) ─ schema (ajv) ─ semantic rules ─ normalize → frozen Config
 *
 * Nothing here throws for bad content: every problem becomes a `Diagnostic`.
 * Only `loadConfigFile` throws, `ConfigReadError`, when the file cannot be read.
 */
import type { Config } from './types.js'
import type { Diagnostic } from './diagnostics.js'

export type { Diagnostic, DiagnosticCode } from './diagnostics.js'
export { hasErrors, DIAGNOSTIC_CODES } from './diagnostics.js'
export type * from './types.js'

/**
 * A value that replaces (or adds) one key of the raw YAML document before validation,
 * e.g. `{ path: ['multipath', 'mode'], value: 'aggregate', source: '--multipath' }`.
 * `path` uses the YAML's kebab-case keys; a numeric string indexes into a list.
 * Problems with the value are reported with `file: source`, line and column 0.
 */
export interface ConfigOverride {
  path: string[]
  value: unknown
  source: string
}

export interface LoadOptions {
  overrides?: ConfigOverride[]
}

/**
 * `ok: true` when there is no error (warnings may remain in `diagnostics`);
 * `raw` is the plain document after overrides, before normalization.
 */
export type LoadResult =
  | { ok: true; config: Config; raw: unknown; diagnostics: Diagnostic[] }
  | { ok: false; diagnostics: Diagnostic[] }

export { loadConfigText, loadConfigFile, readConfigFile, MAX_CONFIG_BYTES } from './load.js'
export { applyOverrides, makeLoader, FLAG_KEYS, type ConfigFlags, type ConfigLoader } from './flags.js'
export { renderConfigYaml } from './render.js'
export { SCHEMA } from './schema.js'
