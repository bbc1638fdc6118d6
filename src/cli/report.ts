/**
 * Printing config diagnostics in the three formats `validate` offers (and
 * `start --print-config` reuses for text):
 *
 *   text    FILE:LINE:COL: error: MESSAGE (at path.to.key)      one per line
 *           --multipath: error: MESSAGE (at multipath.mode)     (not in a file: no line/column)
 *   json    [{ file, line, column, path, severity, code, message }, ...]
 *   github  ::error file=F,line=L,col=C,title=quicether (code)::MESSAGE (at path)
 */
import type { Diagnostic } from '../config/index.js'

export type ReportFormat = 'text' | 'json' | 'github'
export const REPORT_FORMATS: readonly ReportFormat[] = ['text', 'json', 'github']

/** A diagnostic as `--format json` prints it (`column`, not `col`: the published shape). */
export interface JsonDiagnostic {
  file: string
  line: number
  column: number
  path: string
  severity: 'error' | 'warning'
  code: string
  message: string
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim()
}

function location(d: Diagnostic): string {
  return d.line > 0 ? `${d.file}:${d.line}:${d.col > 0 ? d.col : 1}` : d.file
}

export function formatText(d: Diagnostic): string {
  const at = d.path ? ` (at ${d.path})` : ''
  return `${location(d)}: ${d.severity}: ${oneLine(d.message)}${at}\n`
}

export function toJson(d: Diagnostic): JsonDiagnostic {
  return { file: d.file, line: d.line, column: d.col, path: d.path, severity: d.severity, code: d.code, message: oneLine(d.message) }
}

/** GitHub workflow commands: `%`, CR, LF escaped everywhere; `:` and `,` too inside properties. */
function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A')
}

function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C')
}

export function formatGithub(d: Diagnostic): string {
  const props = [`file=${escapeProperty(d.file)}`]
  if (d.line > 0) {
    props.push(`line=${d.line}`)
    if (d.col > 0) props.push(`col=${d.col}`)
  }
  props.push(`title=${escapeProperty(`quicether (${d.code})`)}`)
  const at = d.path ? ` (at ${d.path})` : ''
  return `::${d.severity} ${props.join(',')}::${escapeData(oneLine(d.message) + at)}\n`
}

/** Text or GitHub lines for a list of diagnostics (JSON is printed once, for all files, by the caller). */
export function formatLines(diagnostics: readonly Diagnostic[], format: 'text' | 'github'): string {
  const f = format === 'github' ? formatGithub : formatText
  return diagnostics.map(f).join('')
}

export function countBySeverity(diagnostics: readonly Diagnostic[]): { errors: number; warnings: number } {
  let errors = 0
  let warnings = 0
  for (const d of diagnostics) {
    if (d.severity === 'error') errors++
    else warnings++
  }
  return { errors, warnings }
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
