/**
 * One problem found in a config, pointing at the offending key or value.
 *
 * `line` and `col` are 1-based. They are 0 when the problem is not in a file
 * (a command-line override: `file` is then the flag, e.g. `--multipath`).
 * `path` is the dotted location in the document (`peers[2].key`, `multipath.mode`);
 * it is `''` for the document as a whole. `code` is stable (see `DiagnosticCode`);
 * `message` is one line, meant for people.
 */
export interface Diagnostic {
  file: string
  line: number
  col: number
  path: string
  severity: 'error' | 'warning'
  code: string
  message: string
}

/** Every `code` the loader emits. Stable: tests, CI scripts and docs rely on them. */
export const DIAGNOSTIC_CODES = [
  // reading and parsing
  'too-large',
  'not-text',
  'empty',
  'yaml-syntax',
  'multiple-documents',
  'too-deep',
  'alias-limit',
  'duplicate-key',
  'not-a-mapping',
  // schema
  'unknown-key',
  'missing-key',
  'wrong-type',
  'bad-value',
  // values
  'bad-cidr',
  'host-bits-set',
  'bad-ip',
  'bad-endpoint',
  'bad-unit',
  'bad-port-range',
  'bad-key',
  // references and consistency
  'subnet-overlap',
  'route-duplicate',
  'route-overlaps-subnet',
  'overlay-overlap',
  'address-outside-overlay',
  'address-reserved',
  'unknown-peer',
  'unknown-group',
  'unknown-uplink',
  'duplicate-uplink',
  'duplicate-peer-name',
  'duplicate-peer-key',
  'duplicate-class',
  'too-many',
  'peer-is-self',
  'exit-not-marked',
  'ports-need-proto',
  'QE_DEFAULT_ROUTE',
  // warnings
  'QE_NOT_IMPLEMENTED',
  // policies.tests
  'policy-test-failed',
  'policy-test-unresolved',
  'dht-without-bootstrap',
  'discovery-without-ca',
  'discovery-port-clash',
  // Not emitted while interfaces[].bandwidth is not acted on (see not-implemented.ts).
  'uplink-without-bandwidth',
  'aggregate-single-uplink',
  'gateway-settings-on-client',
  'bootstrap-without-public-address',
  'exit-on-client',
  'exit-conflict',
  'exit-required-without-exit',
  'ingress-duplicate',
  'ingress-family',
  'ingress-on-client',
  'masquerade-on-client',
] as const

export type DiagnosticCode = (typeof DIAGNOSTIC_CODES)[number]

/** Whether any diagnostic fails the load (warnings fail only under `--strict`, which the CLI applies). */
export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error')
}

/** Stable order: by file, then line, then column, then path. */
export function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics.sort(
    (a, b) =>
      (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) ||
      a.line - b.line ||
      a.col - b.col ||
      (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  )
}
