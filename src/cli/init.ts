/**
 * `quicether init`: set a node up. Creates the identity (or reuses the one in
 * the state directory), writes a commented starter config that validates,
 * and says what to do next. Never overwrites a config without --force; never
 * replaces an existing identity (a new key is a new node to every peer).
 */
import { hostname } from 'node:os'
import { stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Option, type Command } from 'commander'
import { loadConfigText, type NodeRole } from '../config/index.js'
import { writeConfigFile } from '../config/write.js'
import { UsageError } from '../errors.js'
import { deriveOverlayAddresses, generateIdentity, IdentityMissingError, loadIdentity, publicKeyBase64, saveIdentity, type Identity } from '../mesh/identity.js'
import { ConfigExistsError, ConfigWriteError, describeFsError, EXIT_OK, type CliContext } from './context.js'
import { formatLines } from './report.js'
import { SCHEMA_FILE } from './schema.js'
import { renderStarterConfig } from './starter-config.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

export const DEFAULT_STATE_DIR = '/var/lib/quicether'
export const DEFAULT_NETWORK = 'mesh'
const ROLES: readonly NodeRole[] = ['client', 'gateway', 'bootstrap']
/** The schema's `$defs.name`: what node.name and network.name must look like. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

export interface InitOptions {
  name?: string
  network: string
  role: NodeRole
  bootstrapMode?: boolean
  enterprise?: boolean
  config: string
  stateDir: string
  force?: boolean
}

export function registerInit(program: Command, ctx: CliContext): void {
  program
    .command('init')
    .summary('create the node identity and a starter config')
    .description(
      'Create this node\'s identity (an Ed25519 key, mode 0600, in the state directory; an existing\n' +
        'one is reused) and write a commented starter config that validates. An existing config is\n' +
        'never overwritten without --force.',
    )
    .option('-n, --name <name>', 'node name (lowercase letters, digits, dashes; default: from the hostname)')
    .option('--network <name>', 'network name, the same on every node of the mesh', DEFAULT_NETWORK)
    .addOption(new Option('-r, --role <role>', 'node role').choices(ROLES).default('client'))
    .option('--bootstrap-mode', 'serve as a DHT bootstrap node for the network')
    .option('--enterprise', 'also write default-deny policies, an audit log and require-2fa (policies and 2FA validated, not acted on yet)')
    .option('-c, --config <path>', 'where to write the config', DEFAULT_CONFIG_PATH)
    .option('--state-dir <dir>', 'directory for the identity key and state', DEFAULT_STATE_DIR)
    .option('--force', 'overwrite an existing config (the identity is always kept)')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether init --name laptop
  $ quicether init --name office-gw --role gateway --enterprise
  $ quicether init --name seed --role bootstrap --config ./seed.yaml --state-dir ./state`,
    )
    .action(async (opts: InitOptions) => {
      ctx.exitCode = await runInit(opts, ctx)
    })
}

export async function runInit(opts: InitOptions, ctx: CliContext): Promise<number> {
  const { stdout, stderr } = ctx.io
  const name = opts.name ?? nameFromHostname()
  if (!NAME.test(name)) throw new UsageError(`--name '${name}' is not a valid node name: use lowercase letters, digits and dashes (1-63, no leading or trailing dash)`)
  if (!NAME.test(opts.network)) throw new UsageError(`--network '${opts.network}' is not a valid network name: use lowercase letters, digits and dashes`)
  const configPath = resolve(opts.config)
  const stateDir = resolve(opts.stateDir)

  const existing = await fileKind(configPath)
  if (existing === 'other') throw new ConfigWriteError(`${configPath} exists and is not a regular file`)
  if (existing === 'file' && !opts.force) throw new ConfigExistsError(`${configPath} already exists; not overwriting it (use --force to replace it)`)

  const identityPath = join(stateDir, 'identity.key')
  const { identity, created } = await loadOrCreateIdentity(identityPath, (m) => stderr.write(`quicether: warning: ${m}\n`))

  const text = renderStarterConfig({
    name,
    role: opts.role,
    network: opts.network,
    bootstrapMode: opts.bootstrapMode === true,
    enterprise: opts.enterprise === true,
    stateDir,
    schemaRef: fileURLToPath(SCHEMA_FILE),
    publicKey: publicKeyBase64(identity),
  })
  // The template must load; if it does not, that is a bug in this file, not the user's problem.
  const check = loadConfigText(text, configPath)
  if (!check.ok) throw new Error(`init produced a config that does not validate:\n${formatLines(check.diagnostics, 'text')}`)
  const { config } = check
  if (config.node.identity !== identityPath) {
    throw new Error(`init: the starter config points at identity ${config.node.identity}, expected ${identityPath}`)
  }

  if (created) await saveIdentity(identityPath, identity)
  await writeConfigFile(configPath, text)

  const addrs = deriveOverlayAddresses(identity.publicKey, config.network.overlay.ipv4, config.network.overlay.ipv6)
  const defaultConfig = configPath === DEFAULT_CONFIG_PATH
  stdout.write(
    [
      created ? `created identity ${identityPath} (Ed25519, mode 0600)` : `using the existing identity ${identityPath}`,
      `wrote ${configPath} (node ${name}, role ${opts.role}, network ${opts.network}${opts.enterprise ? ', enterprise' : ''})`,
      ``,
      `public key:        ${publicKeyBase64(identity)}`,
      `overlay addresses: ${config.network.address.ipv4 ?? addrs.ipv4}, ${config.network.address.ipv6 ?? addrs.ipv6}`,
      ``,
      `Next: give the public key to your peers, list theirs under 'peers:' in ${configPath}, then run`,
      `  quicether start${defaultConfig ? '' : ` --config ${configPath}`}`,
      ``,
    ].join('\n'),
  )
  return EXIT_OK
}

/** The identity at `path`, or a new one in memory (`created`; the caller saves it once everything else checked out). */
export async function loadOrCreateIdentity(path: string, onWarning: (m: string) => void): Promise<{ identity: Identity; created: boolean }> {
  try {
    return { identity: await loadIdentity(path, { onWarning }), created: false }
  } catch (err) {
    if (err instanceof IdentityMissingError) return { identity: generateIdentity(), created: true }
    throw err
  }
}

/** A node name from the hostname: `Dev-Laptop.local` → `dev-laptop`. */
export function nameFromHostname(host = hostname()): string {
  const n = (host.split('.')[0] ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63)
    .replace(/-+$/, '')
  return n || 'node'
}

/** Whether `path` is missing, a regular file, or something else (a directory…). */
export async function fileKind(path: string): Promise<'missing' | 'file' | 'other'> {
  try {
    return (await stat(path)).isFile() ? 'file' : 'other'
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing'
    throw new ConfigWriteError(`cannot check ${path}: ${describeFsError(err)}`, { cause: err })
  }
}

