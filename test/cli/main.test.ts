import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { exitCodeFor, formatError, ConfigExistsError, NotAvailableError } from '../../src/cli/context.js'
import { ConfigInvalidError, ConfigReadError, UsageError } from '../../src/errors.js'
import { lines, run } from './run.js'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

t.test('--version prints the package version', async (t) => {
  for (const flag of ['--version', '-V']) {
    const r = await run([flag])
    t.equal(r.code, 0)
    t.equal(r.stdout, `${pkg.version}\n`)
    t.equal(r.stderr, '')
  }
})

t.test('--help lists every command with examples', async (t) => {
  const r = await run(['--help'])
  t.equal(r.code, 0)
  for (const cmd of ['init', 'validate', 'start', 'schema']) t.match(r.stdout, new RegExp(`^  ${cmd}\\b`, 'm'), `lists ${cmd}`)
  t.match(r.stdout, /Examples:/)
  t.equal(r.stderr, '')
})

t.test('every command has --help with examples, exit 0 (also as `help CMD`)', async (t) => {
  for (const cmd of ['init', 'validate', 'start', 'schema']) {
    const r = await run([cmd, '--help'])
    t.equal(r.code, 0, `${cmd} --help exits 0`)
    t.match(r.stdout, new RegExp(`^Usage: quicether ${cmd}`, 'm'))
    t.match(r.stdout, /Examples:\n {2}\$ quicether /, `${cmd} --help has examples`)
    const h = await run(['help', cmd])
    t.equal(h.code, 0, `help ${cmd} exits 0`)
    t.equal(h.stdout, r.stdout)
  }
})

t.test('no command: help on stderr, exit 2', async (t) => {
  const r = await run([])
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, /Usage: quicether/)
})

t.test('unknown command or flag: exit 2, one error line and a hint, no stack', async (t) => {
  const cases: Array<[string[], RegExp, string]> = [
    [['frobnicate'], /^quicether: unknown command 'frobnicate' \(QE_USAGE\)$/, "Try 'quicether --help'."],
    [['valdate'], /^quicether: unknown command 'valdate' \(Did you mean validate\?\) \(QE_USAGE\)$/, "Try 'quicether --help'."],
    [['validate', '--bogus'], /^quicether: unknown option '--bogus' \(QE_USAGE\)$/, "Try 'quicether validate --help'."],
    [['start', '--multipth', 'aggregate'], /^quicether: unknown option '--multipth' \(Did you mean --multipath\?\) \(QE_USAGE\)$/, "Try 'quicether start --help'."],
    [['validate', '--format', 'xml', 'x.yaml'], /^quicether: option .*--format.* argument 'xml' is invalid.*\(QE_USAGE\)$/, "Try 'quicether validate --help'."],
    [['init', '--role', 'wizard'], /argument 'wizard' is invalid.*client, gateway, bootstrap/, "Try 'quicether init --help'."],
    [['start', '--name'], /^quicether: option '--name <name>' argument missing \(QE_USAGE\)$/, "Try 'quicether start --help'."],
    [['schema', 'extra'], /^quicether: too many arguments for 'schema'/, "Try 'quicether schema --help'."],
  ]
  for (const [args, first, hint] of cases) {
    const r = await run(args)
    t.equal(r.code, 2, `${args.join(' ')} exits 2`)
    t.equal(r.stdout, '')
    const ls = lines(r.stderr)
    t.equal(ls.length, 2, `${args.join(' ')}: an error line and a hint`)
    t.match(ls[0], first)
    t.equal(ls[1], hint)
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('an unreadable --config is one line with its code, exit 2', async (t) => {
  const missing = join(t.testdir(), 'nope.yaml')
  const r = await run(['start', '--config', missing, '--print-config'])
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.equal(lines(r.stderr).length, 1)
  t.match(r.stderr, new RegExp(`^quicether: .*${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\\(QE_CONFIG_READ\\)\\n$`))
})

t.test('error classes map to exit codes and print as one line', async (t) => {
  t.equal(exitCodeFor(new UsageError()), 2)
  t.equal(exitCodeFor(new ConfigReadError()), 2)
  t.equal(exitCodeFor(new NotAvailableError()), 2)
  t.equal(exitCodeFor(new ConfigInvalidError()), 1)
  t.equal(exitCodeFor(new ConfigExistsError()), 1)
  t.equal(formatError(new ConfigExistsError('x exists\nreally')), 'quicether: x exists really (QE_CONFIG_EXISTS)\n')
})
