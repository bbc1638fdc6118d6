/**
 * `quicether validate [FILE...]`: check config files for CI, Ansible
 * (`validate: 'quicether validate %s'`) and editors' save hooks.
 *
 * Every problem of every file is printed (not just the first), then a
 * one-line summary on stderr. Exit 0 all valid, 1 any invalid (warnings too
 * under --strict), 2 any file unreadable or bad arguments; 2 wins over 1.
 */
import { Option, type Command } from 'commander'
import { hasErrors, loadConfigFile, loadConfigText, MAX_CONFIG_BYTES, type Diagnostic, type LoadResult } from '../config/index.js'
import { ConfigReadError, UsageError } from '../errors.js'
import { EXIT_INVALID, EXIT_OK, EXIT_USAGE, formatError, type CliContext } from './context.js'
import { countBySeverity, formatLines, plural, REPORT_FORMATS, toJson, type JsonDiagnostic, type ReportFormat } from './report.js'
import { readStdinText } from './stdin.js'

export const DEFAULT_CONFIG_PATH = '/etc/quicether.yaml'
/** How stdin is named in diagnostics. */
export const STDIN_NAME = '<stdin>'

export interface ValidateOptions {
  format: ReportFormat
  strict?: boolean
  quiet?: boolean
}

type FileOutcome =
  /** `diagnostics` as reported (after --strict and --quiet); `ok` = none of them is an error. */
  | { file: string; status: 'checked'; diagnostics: Diagnostic[]; ok: boolean }
  | { file: string; status: 'unreadable'; error: ConfigReadError }

export function registerValidate(program: Command, ctx: CliContext): void {
  program
    .command('validate')
    .summary('check config files and report every problem')
    .description(
      'Check one or more QuicEther config files (default /etc/quicether.yaml; "-" reads stdin)\n' +
        'and report every problem of every file as FILE:LINE:COL: error: MESSAGE (at path.to.key).\n\n' +
        'Exit status: 0 all files valid, 1 any file invalid (warnings count only with --strict),\n' +
        '2 a file cannot be read or the arguments are wrong.',
    )
    .argument('[file...]', 'config files to check; "-" reads stdin', [DEFAULT_CONFIG_PATH])
    .addOption(new Option('-f, --format <format>', 'output format').choices(REPORT_FORMATS).default('text'))
    .option('--strict', 'treat warnings as errors')
    .option('-q, --quiet', 'print errors only: no warnings, no summary')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether validate                          # checks /etc/quicether.yaml
  $ quicether validate examples/*.yaml --strict
  $ cat quicether.yaml | quicether validate -
  $ quicether validate --format github quicether.yaml   # annotations in GitHub Actions
  $ quicether validate --format json site-a.yaml site-b.yaml | jq '.[].message'

Ansible:
  - template: { src: quicether.yaml.j2, dest: /etc/quicether.yaml, validate: 'quicether validate %s' }`,
    )
    .action(async (files: string[], opts: ValidateOptions) => {
      ctx.exitCode = await runValidate(files, opts, ctx)
    })
}

export async function runValidate(files: string[], opts: ValidateOptions, ctx: CliContext): Promise<number> {
  if (files.filter((f) => f === '-').length > 1) throw new UsageError('stdin ("-") can be given only once')
  const { io } = ctx
  const outcomes: FileOutcome[] = []
  const json: JsonDiagnostic[] = []
  for (const file of files) {
    const outcome = await checkOne(file, opts, ctx)
    outcomes.push(outcome)
    let shown: Diagnostic[]
    if (outcome.status === 'unreadable') {
      io.stderr.write(formatError(outcome.error))
      // Machine formats list it too, so CI sees every file that failed.
      shown = opts.format === 'text' ? [] : [{ file, line: 0, col: 0, path: '', severity: 'error', code: 'unreadable', message: outcome.error.message }]
    } else {
      shown = outcome.diagnostics
    }
    if (opts.format === 'json') json.push(...shown.map(toJson))
    else io.stdout.write(formatLines(shown, opts.format))
  }
  if (opts.format === 'json') io.stdout.write(JSON.stringify(json, null, 2) + '\n')
  if (!opts.quiet) io.stderr.write(summary(outcomes) + '\n')
  if (outcomes.some((o) => o.status === 'unreadable')) return EXIT_USAGE
  if (outcomes.some((o) => o.status === 'checked' && !o.ok)) return EXIT_INVALID
  return EXIT_OK
}

async function checkOne(file: string, opts: ValidateOptions, ctx: CliContext): Promise<FileOutcome> {
  let result: LoadResult
  const name = file === '-' ? STDIN_NAME : file
  if (file === '-') {
    const input = await readStdinText(ctx.io.stdin, MAX_CONFIG_BYTES)
    result = input.tooLarge
      ? { ok: false, diagnostics: [{ file: name, line: 0, col: 0, path: '', severity: 'error', code: 'too-large', message: `the input is larger than ${MAX_CONFIG_BYTES} bytes; a config is never this big` }] }
      : loadConfigText(input.text, name)
  } else {
    try {
      result = await loadConfigFile(file)
    } catch (err) {
      if (err instanceof ConfigReadError) return { file, status: 'unreadable', error: err }
      throw err
    }
  }
  const diagnostics = present(result.diagnostics, opts)
  return { file: name, status: 'checked', diagnostics, ok: !hasErrors(diagnostics) }
}

/** What is reported: warnings become errors under --strict and disappear under --quiet. */
function present(diagnostics: Diagnostic[], opts: ValidateOptions): Diagnostic[] {
  const out: Diagnostic[] = []
  for (const d of diagnostics) {
    if (d.severity === 'warning' && opts.strict) out.push({ ...d, severity: 'error' })
    else if (d.severity === 'warning' && opts.quiet) continue
    else out.push(d)
  }
  return out
}

function summary(outcomes: FileOutcome[]): string {
  const checked = outcomes.filter((o): o is Extract<FileOutcome, { status: 'checked' }> => o.status === 'checked')
  const unreadable = outcomes.length - checked.length
  const invalid = checked.filter((o) => !o.ok).length
  const { errors, warnings } = countBySeverity(checked.flatMap((o) => o.diagnostics))
  const parts = [`${checked.length - invalid} valid`]
  if (invalid) parts.push(`${invalid} invalid`)
  if (unreadable) parts.push(`${unreadable} unreadable`)
  const counts = [errors ? plural(errors, 'error') : '', warnings ? plural(warnings, 'warning') : ''].filter(Boolean).join(', ')
  return `quicether: ${plural(outcomes.length, 'file')} checked: ${parts.join(', ')}${counts ? ` (${counts})` : ''}`
}
