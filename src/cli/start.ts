/**
 * `quicether start`: run the node. Every flag of the product brief is a
 * `ConfigOverride` of one config key, applied to the YAML document before
 * validation, so flags override the file and a bad flag value is reported
 * exactly like a bad config value (`--multipath: error: ... (at multipath.mode)`).
 *
 * `--print-config` prints the effective, merged config and exits. Otherwise
 * the validated config goes to the daemon (`runDaemon` below: the one seam).
 */
import { resolve } from 'node:path'
import type { Command } from 'commander'
import { applyOverrides, hasErrors, makeLoader, readConfigFile, renderConfigYaml, type Config, type ConfigFlags, type ConfigLoader } from '../config/index.js'
import { ConfigReadError } from '../errors.js'
import { createLogger, type Logger } from '../log.js'
import { EXIT_INVALID, EXIT_OK, NotAvailableError, type CliContext } from './context.js'
import type * as DaemonModule from '../daemon/run.js'
import { importOptional } from './optional-module.js'
import { countBySeverity, formatLines, plural } from './report.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

export interface StartOptions extends ConfigFlags {
  config: string
  printConfig?: boolean
}

/** `--bootstrap a,b --bootstrap c` → ['a', 'b', 'c']. */
function list(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter((s) => s !== '')]
}

export function registerStart(program: Command, ctx: CliContext): void {
  program
    .command('start')
    .summary('run the node (or print the effective config)')
    .description(
      'Run this node with the config file, overridden by any flags given. Each flag sets one\n' +
        'config key (shown in brackets) and is checked like the file: a bad value is a config error.',
    )
    .option('-c, --config <path>', 'config file', DEFAULT_CONFIG_PATH)
    .option('--print-config', 'print the effective config as YAML and exit (1 if invalid)')
    .option('--name <name>', 'node name [node.name]')
    .option('--role <role>', 'client | gateway | bootstrap [node.role]')
    .option('--bootstrap <host:port,...>', 'DHT bootstrap nodes (their discovery port), repeatable [discovery.bootstrap]', list)
    .option('--connect-to <peer|host:port,...>', 'peers to dial at start, repeatable [discovery.connect-to]', list)
    .option('--advertise-subnet <cidr,...>', 'prefix to advertise, repeatable, added to the file\'s [subnets]', list)
    .option('--interfaces <if,...>', 'uplinks to use, e.g. eth0,wwan0; settings of listed names are kept [interfaces]', list)
    .option('--multipath <mode>', 'aggregate | failover | redundant (two best paths) [multipath.mode]')
    .option('--scheduler <name>', 'min-rtt (or ecf, the same) | weighted (round-robin: runs min-rtt) [multipath.scheduler]')
    .option('--target <peer>', 'bond uplinks toward this peer [multipath.target]')
    .option('--accept-multipath', 'accept bonded connections from peers [multipath.accept]')
    .option('--advertise-bandwidth <rate>', 'capacity announced to peers choosing a relay, and each relayed pair\'s cap, e.g. 1Gbps [gateway.advertise-bandwidth]')
    .option('--forward-for <peer|cidr,...>', 'be a hub: route between these members, or toward these prefixes, repeatable [gateway.forward-for]', list)
    .option('--exit-node <peer>', 'send internet traffic (0.0.0.0/0, ::/0) through this gateway [exit-node]')
    .option('--exit-node-required', 'block internet traffic while the exit is down, instead of falling back [exit-node-required]')
    .option('--bootstrap-mode', 'serve as a DHT bootstrap node and rendezvous [node.bootstrap-mode]')
    .option('--public-ip <ip>', 'public address to announce in this node\'s record [discovery.public-address]')
    .option('--advertise-as-bootstrap', 'announce this node as a bootstrap node [discovery.advertise-as-bootstrap]')
    .option('--audit-log <path>', 'append-only, hash-chained audit log file [audit.path]')
    .option('--require-2fa', 'require a second factor before joining (not acted on yet) [auth.require-2fa]')
    .option('--log-level <level>', 'trace | debug | info | warn | error | fatal | silent [logging.level]')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether start                                   # /etc/quicether.yaml
  $ quicether start --config ./laptop.yaml --multipath aggregate --interfaces wlan0,wwan0
  $ quicether start --role gateway --advertise-subnet 192.168.1.0/24 --print-config

Flags marked "not acted on yet" set keys this version validates but does not act on;
each draws a QE_NOT_IMPLEMENTED warning.`,
    )
    .action(async (opts: StartOptions) => {
      ctx.exitCode = await runStart(opts, ctx)
    })
}

export async function runStart(opts: StartOptions, ctx: CliContext): Promise<number> {
  const { stdout, stderr } = ctx.io
  // One loader for the first load and every reload: flags keep winning over the file.
  const load = makeLoader(opts)
  const read = await readConfigFile(opts.config).catch((err: unknown) => {
    if (err instanceof ConfigReadError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new ConfigReadError(`${err.message} (create it with 'quicether init', or name another with --config)`, { cause: err })
    }
    throw err
  })
  const result = read.ok ? load(read.text, opts.config) : read
  if (!result.ok || hasErrors(result.diagnostics)) {
    stderr.write(formatLines(result.diagnostics, 'text'))
    const { errors, warnings } = countBySeverity(result.diagnostics)
    const what = applyOverrides(opts, undefined).length > 0 ? `${opts.config} with these flags` : opts.config
    stderr.write(`quicether: ${what} is not valid: ${plural(errors, 'error')}${warnings ? `, ${plural(warnings, 'warning')}` : ''} (QE_CONFIG_INVALID)\n`)
    return EXIT_INVALID
  }
  stderr.write(formatLines(result.diagnostics, 'text'))
  if (opts.printConfig) {
    stdout.write(renderConfigYaml(result.config))
    return EXIT_OK
  }
  const log = createLogger({ level: result.config.logging.level, destination: logDestination(result.config.logging.destination) })
  // The daemon only ever calls write(); any TextSink will do.
  return runDaemon(result.config, { configPath: resolve(opts.config), log, load, stderr: ctx.io.stderr as NodeJS.WritableStream })
}

function logDestination(d: string): string | number {
  return d === 'stderr' ? 2 : d === 'stdout' ? 1 : d
}

/**
 * The seam to the daemon (`src/daemon/run.ts`). Imported on demand: the
 * daemon pulls in the native forwarding plane, which `validate`, `init` and
 * `--print-config` must not need; and a build without it still has a CLI.
 */
async function runDaemon(config: Config, opts: DaemonRunOptions): Promise<number> {
  const mod = await importOptional<typeof DaemonModule>(new URL('../daemon/run.js', import.meta.url))
  if (typeof mod?.runDaemon !== 'function') throw new NotAvailableError('the daemon is not available in this build yet')
  return mod.runDaemon(config, opts)
}

interface DaemonRunOptions {
  /** The config file the daemon watches (absolute). */
  configPath: string | null
  log: Logger
  /** Loads a config text with the command-line flags applied (every reload uses it). */
  load: ConfigLoader
  stderr: NodeJS.WritableStream
}
