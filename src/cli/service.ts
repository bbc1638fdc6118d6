/**
 * `quicether service unit|install`: the systemd unit that runs a node as a
 * service. The unit text is one pure function of (binary, config path), so
 * `examples/systemd/quicether.service` is exactly what `service unit` prints
 * with the defaults (a test holds them together).
 *
 * `install` writes /etc/systemd/system/quicether.service (under `--root`
 * when given: an image being built, or a test's temporary directory), then
 * `systemctl daemon-reload` unless `--no-reload` or `--root`. An existing
 * unit with other text is left alone unless `--force`.
 */
import { execFile } from 'node:child_process'
import { access, chmod, constants, mkdir, readFile } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { promisify } from 'node:util'
import type { Command } from 'commander'
import { writeFileAtomic } from '../atomic-file.js'
import { QeError, SystemError, UsageError } from '../errors.js'
import { EXIT_OK, describeFsError, type CliContext } from './context.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

/** Where `npm install -g` puts the launcher with a distribution's Node (prefix /usr). */
export const DEFAULT_BIN = '/usr/bin/quicether'
export const UNIT_PATH = '/etc/systemd/system/quicether.service'

/** A unit file is already there with other text, and `--force` was not given. */
export class UnitExistsError extends QeError {
  override readonly code = 'QE_UNIT_EXISTS'
  constructor(message = 'a different quicether.service is installed (use --force to overwrite it)', options?: ErrorOptions) {
    super(message, options)
    this.name = 'UnitExistsError'
  }
}

/** The unit file could not be written (no permission, no such root). */
export class UnitWriteError extends QeError {
  override readonly code = 'QE_UNIT_WRITE'
  constructor(message = 'cannot write the unit file', options?: ErrorOptions) {
    super(message, options)
    this.name = 'UnitWriteError'
  }
}

export interface UnitOptions {
  /** Absolute path of the `quicether` launcher. */
  readonly bin: string
  /** Absolute path of the config file the service runs. */
  readonly config: string
}

/**
 * The unit text. Paths go into ExecStart= and ReadWritePaths= unquoted, so
 * they are checked first: absolute, and no characters systemd would read as
 * specifiers (%), variables ($), quoting or separators.
 */
export function renderUnit(opts: UnitOptions): string {
  const bin = checkPath('--bin', opts.bin)
  const config = checkPath('--config', opts.config)
  const configDir = dirname(config)
  return `# QuicEther: a mesh VPN node, configured by one YAML file.
# Written by \`quicether service unit\` / \`quicether service install\`. For local changes use
# \`systemctl edit quicether\` (a drop-in), so installing again does not undo them.

[Unit]
Description=QuicEther mesh VPN node
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${bin} start --config ${config}
# The daemon re-reads its config on SIGHUP and applies it (the same as after an edit).
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# Log lines go to the journal, each with its priority (<4>{...json...}): \`journalctl -u quicether -p warning\`.
Environment=QUICETHER_LOG_FORMAT=journal

# Runs as root, but only with what a VPN node needs: the TUN device, routes, addresses and
# nftables (NET_ADMIN), a listen port below 1024 if configured (NET_BIND_SERVICE), raw sockets (NET_RAW).
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_NET_RAW
NoNewPrivileges=yes
# /run/quicether (the control socket) and /var/lib/quicether (identity, state) are made by systemd
# and stay writable under ProtectSystem=strict without being listed in ReadWritePaths=.
RuntimeDirectory=quicether
StateDirectory=quicether
StateDirectoryMode=0700
ProtectSystem=strict
# The config's directory is writable, not only the file: the daemon rewrites its config
# (\`quicether apply\` of another file, the revert after \`apply --confirm\`) by writing a temporary
# file beside it and renaming it over the old one. A file listed alone is a bind mount: the
# temporary file cannot be created beside it (EROFS) and a mount point cannot be renamed over
# (EBUSY). With the config in /etc that makes /etc writable; for a tighter sandbox keep the config
# in a directory of its own: \`quicether service install --config /etc/quicether/quicether.yaml\`.
ReadWritePaths=${configDir}
# \`quicether apply FILE\` hands the daemon FILE's path and the daemon reads it: with these two,
# FILE must not be under /home, /root, /run/user or /tmp (put candidates beside the config).
ProtectHome=yes
PrivateTmp=yes
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
# No ProtectKernelTunables=: it makes /proc/sys read-only, and the daemon writes net sysctls
# (forwarding, send_redirects). ProtectSystem= leaves /proc writable.
RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# No MemoryDenyWriteExecute=: Node's JIT needs memory that is writable and executable.
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`
}

function checkPath(flag: string, p: string): string {
  if (!isAbsolute(p)) throw new UsageError(`${flag}: '${p}' is not an absolute path (systemd needs one)`)
  if (!/^[A-Za-z0-9/._+@:-]+$/.test(p)) throw new UsageError(`${flag}: '${p}' has characters a unit file would need quoted or escaped; use a plain path`)
  return p
}

export interface InstallResult {
  readonly path: string
  /** false: the same unit was already there. */
  readonly written: boolean
  readonly reloaded: boolean
}

/** Writes the unit (0644) under `root`, refusing to replace other text unless `force`. */
export async function installUnit(text: string, opts: { root?: string; force?: boolean }): Promise<{ path: string; written: boolean }> {
  const path = opts.root ? join(opts.root, UNIT_PATH) : UNIT_PATH
  const existing = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return null // ENOTDIR: the write says why
    throw new UnitWriteError(`cannot read ${path}: ${describeFsError(err)}`, { cause: err })
  })
  if (existing === text) return { path, written: false }
  if (existing !== null && !opts.force) {
    throw new UnitExistsError(`${path} exists with other content (compare with 'quicether service unit'; --force overwrites it)`)
  }
  try {
    // 0755 like the rest of /etc; writeFileAtomic would make a missing directory 0700.
    await mkdir(dirname(path), { recursive: true, mode: 0o755 })
    await writeFileAtomic(path, text, 0o644)
    await chmod(path, 0o644)
  } catch (err) {
    const hint = (err as NodeJS.ErrnoException).code === 'EACCES' ? ' (run as root)' : ''
    throw new UnitWriteError(`cannot write ${path}: ${describeFsError(err)}${hint}`, { cause: err })
  }
  return { path, written: true }
}

async function daemonReload(): Promise<void> {
  try {
    await promisify(execFile)('systemctl', ['daemon-reload'], { timeout: 30_000 })
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string }
    const why = e.code === 'ENOENT' ? 'systemctl not found' : (e.stderr ?? '').trim() || e.message
    throw new SystemError(`the unit is written, but 'systemctl daemon-reload' failed: ${why}`, { cause: err })
  }
}

export function registerServiceCommands(program: Command, ctx: CliContext): void {
  const { stdout, stderr } = ctx.io
  const service = program
    .command('service')
    .summary('run the node as a systemd service: print or install the unit')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether service unit                       # the unit, to read or to ship
  $ sudo quicether service install && sudo systemctl enable --now quicether
  $ quicether service install --root ./image     # into an image being built (no reload)`,
    )

  service
    .command('unit')
    .summary('print the systemd unit')
    .option('-c, --config <path>', 'config file the service runs', DEFAULT_CONFIG_PATH)
    .option('--bin <path>', 'the quicether launcher', DEFAULT_BIN)
    .action((opts: { config: string; bin: string }) => {
      stdout.write(renderUnit(opts))
      ctx.exitCode = EXIT_OK
    })

  service
    .command('install')
    .summary(`write ${UNIT_PATH} and reload systemd`)
    .option('-c, --config <path>', 'config file the service runs', DEFAULT_CONFIG_PATH)
    .option('--bin <path>', 'the quicether launcher', DEFAULT_BIN)
    .option('--root <dir>', 'write under this directory instead of / (implies --no-reload)')
    .option('--no-reload', "do not run 'systemctl daemon-reload'")
    .option('-f, --force', 'overwrite a unit with other content')
    .action(async (opts: { config: string; bin: string; root?: string; reload: boolean; force?: boolean }) => {
      const text = renderUnit(opts)
      if (!opts.root && !(await access(opts.bin, constants.X_OK).then(() => true, () => false))) {
        stderr.write(`quicether: warning: ${opts.bin} is not an executable here; give the launcher's path with --bin\n`)
      }
      const { path, written } = await installUnit(text, { root: opts.root, force: opts.force })
      stdout.write(written ? `wrote ${path}\n` : `${path} is up to date\n`)
      if (written && opts.reload && !opts.root) {
        await daemonReload()
        stdout.write('reloaded systemd\n')
      }
      stdout.write(`next:\n  systemctl enable --now quicether   # start now and at boot\n  journalctl -u quicether -f          # follow its log\n`)
      ctx.exitCode = EXIT_OK
    })
}
