/**
 * The `quicether` command line. `bin/quicether.js` calls `main(argv)` and
 * exits with the number it resolves to; tests call it in-process with
 * captured io. Expected failures never reach the launcher: QeErrors are
 * printed here as one line, usage errors as one line plus a hint. Anything
 * else is a bug and is rethrown (the launcher prints it and exits 70).
 */
import { Command, CommanderError } from 'commander'
import { isQeError } from '../errors.js'
import { EXIT_OK, EXIT_USAGE, exitCodeFor, formatError, packageVersion, type CliContext, type CliIo } from './context.js'
import { registerAuditCommands } from './audit.js'
import { registerCaCommands } from './ca.js'
import { registerCompletion } from './completion.js'
import { registerControlCommands } from './control.js'
import { registerInit } from './init.js'
import { registerInvite } from './invite.js'
import { registerJoin } from './join.js'
import { registerLabCommands } from './lab.js'
import { registerSchema } from './schema.js'
import { registerServiceCommands } from './service.js'
import { registerTwoFactorCommands } from './twofa.js'
import { registerStart } from './start.js'
import { registerValidate } from './validate.js'
import { registerUi } from './ui.js'
import { registerPolicyCommands } from './policy.js'

export type { CliIo } from './context.js'

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const ctx: CliContext = { io, exitCode: EXIT_OK }
  const program = buildProgram(ctx)
  try {
    await program.parseAsync(argv, { from: 'user' })
    return ctx.exitCode
  } catch (err) {
    if (err instanceof CommanderError) return commanderExit(err, argv, program, io)
    if (isQeError(err)) {
      io.stderr.write(formatError(err))
      return exitCodeFor(err)
    }
    throw err
  }
}

export function buildProgram(ctx: CliContext): Command {
  const { io } = ctx
  const program = new Command('quicether')
  // Set before any subcommand exists: `.command()` copies these settings into each child.
  program
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      // Commander's own error text is reformatted into one line by `commanderExit`.
      outputError: () => {},
      getOutHelpWidth: () => 100,
      getErrHelpWidth: () => 100,
      getOutHasColors: () => false,
      getErrHasColors: () => false,
    })
    .version(packageVersion(), '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show help for a command')
    .helpCommand('help [command]', 'show help for a command')
    .description(
      'QuicEther: a declarative mesh VPN over QUIC that bonds every uplink.\n' +
        'One YAML file (/etc/quicether.yaml) says what a node should be.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ quicether init --name laptop                 # identity + starter config
  $ quicether validate /etc/quicether.yaml       # check a config (CI, Ansible)
  $ quicether start --print-config --multipath aggregate
  $ quicether schema > quicether.schema.json     # for editors

Run 'quicether <command> --help' for a command's options.`,
    )

  registerInit(program, ctx)
  registerValidate(program, ctx)
  registerStart(program, ctx)
  registerSchema(program, ctx)
  registerControlCommands(program, ctx)
  registerInvite(program, ctx)
  registerJoin(program, ctx)
  registerCaCommands(program, ctx)
  registerAuditCommands(program, ctx)
  registerUi(program, ctx)
  registerPolicyCommands(program, ctx)
  registerTwoFactorCommands(program, ctx)
  registerLabCommands(program)
  registerServiceCommands(program, ctx)
  registerCompletion(program, ctx)
  return program
}

function commanderExit(err: CommanderError, argv: string[], program: Command, io: CliIo): number {
  // --help and --version already wrote their output.
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK
  // `quicether help [cmd]` exits 0; `quicether` with no command printed the help to stderr: a usage error.
  if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE
  const message = err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()
  // Point at the deepest command named on the line (`quicether lab pair --help`).
  const names: string[] = []
  let cmd = program
  for (const arg of argv) {
    const sub = arg.startsWith('-') ? undefined : cmd.commands.find((c) => c.name() === arg)
    if (!sub) continue
    names.push(sub.name())
    cmd = sub
  }
  const hint = ['quicether', ...names, '--help'].join(' ')
  io.stderr.write(`quicether: ${message} (QE_USAGE)\nTry '${hint}'.\n`)
  return EXIT_USAGE
}

function processIo(): CliIo {
  // `quicether schema | head` closes the pipe early; that is not an error worth a stack trace.
  for (const s of [process.stdout, process.stderr]) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e
    })
  }
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }
}
