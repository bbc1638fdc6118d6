import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Command } from 'commander'
import { bashCompletion, commandTree } from '../../src/cli/completion.js'
import { run } from './run.js'
import { buildProgram } from '../../src/cli/main.js'

const dir = mkdtempSync(join(tmpdir(), 'qe-comp-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const hasBash = spawnSync('bash', ['--version']).status === 0
const hasZsh = spawnSync('zsh', ['--version']).status === 0

/** What the bash script offers for a command line whose last word is being completed. */
function complete(script: string, words: string[]): string[] {
  const file = join(dir, 'comp.bash')
  writeFileSync(file, script)
  const arr = words.map((w) => `'${w}'`).join(' ')
  const res = spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _quicether; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir, encoding: 'utf8' })
  if (res.status !== 0) throw new Error(res.stderr)
  return res.stdout.split('\n').filter((l) => l !== '')
}

t.test('bash: commands, subcommands and options of the real program', { skip: hasBash ? false : 'no bash' }, async (t) => {
  const r = await run(['completion', 'bash'])
  t.equal(r.code, 0, r.stderr)
  t.same(complete(r.stdout, ['quicether', 'sta']), ['start', 'status'])
  const lab = buildProgram({ io: { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }, exitCode: 0 }).commands.find((c) => c.name() === 'lab')!
  const labSubs = [...lab.commands.map((c) => c.name()), 'help']
  t.ok(labSubs.includes('bond') && labSubs.includes('up'), 'the lab has subcommands to complete')
  t.same(complete(r.stdout, ['quicether', 'lab', '']).filter((w) => !w.startsWith('-')), labSubs, "the lab's subcommands, as the program has them")
  t.same(complete(r.stdout, ['quicether', 'service', 'install', '--r']), ['--root'])
  t.same(complete(r.stdout, ['quicether', 'status', '--config', '/etc/q.yaml', '--w']), ['--watch'], "an option's value is not a command")
  t.same(complete(r.stdout, ['quicether', 'service', 'install', '-f', '--no']), ['--no-reload'], 'install -f takes no value (validate -f does)')
  writeFileSync(join(dir, 'node.yaml'), '')
  t.same(complete(r.stdout, ['quicether', 'status', '--config', 'nod']), ['node.yaml'], 'file names after a value option')
})

t.test('bash: a command added to the program completes with no edit', { skip: hasBash ? false : 'no bash' }, async (t) => {
  const p = new Command('quicether')
  p.command('stable').command('deep').option('--knob <n>')
  p.command('start')
  t.same(complete(bashCompletion(p), ['quicether', 'sta']), ['stable', 'start'])
  t.same(complete(bashCompletion(p), ['quicether', 'stable', 'deep', '--k']), ['--knob'])
  t.same(commandTree(p).find((n) => n.path === 'stable deep')?.valueOptions, ['--knob'])
})

t.test('zsh: #compdef and every top-level command', async (t) => {
  const r = await run(['completion', 'zsh'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^#compdef quicether\n/)
  for (const cmd of ['init', 'validate', 'start', 'status', 'peers', 'paths', 'plan', 'apply', 'lab', 'service', 'completion']) {
    t.match(r.stdout, new RegExp(`cmds=\\(.*'${cmd}:`), cmd)
  }
  t.notMatch(r.stdout, /\bpath=/, 'no $path: zsh ties it to $PATH')
  if (hasZsh) {
    const res = spawnSync('zsh', ['-n'], { input: r.stdout, encoding: 'utf8' })
    t.equal(res.status, 0, res.stderr)
  }
})

t.test('an unknown shell is a usage error', async (t) => {
  const r = await run(['completion', 'fish'])
  t.equal(r.code, 2)
  t.match(r.stderr, /'fish' is not a shell this knows \(bash, zsh\) \(QE_USAGE\)/)
})
