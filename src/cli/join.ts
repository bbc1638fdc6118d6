/**
 * `quicether join TOKEN`: a new device joins the network in one line. It
 * decodes the token, makes its identity (or keeps the one it has), asks the
 * inviter for a certificate, and only then writes anything: the identity,
 * the certificate, the network secret and a commented config that validates
 * (atomic, like `init`). A refused, expired or unreachable invite changes
 * nothing on disk.
 */
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { stringify } from 'yaml'
import { loadConfigText } from '../config/index.js'
import { DEFAULT_PORT, DEFAULT_STATE_DIR } from '../config/defaults.js'
import { writeConfigFile } from '../config/write.js'
import type { JoinGrant } from '../discovery/join.js'
import { UsageError } from '../errors.js'
import { publicKeyBase64, saveIdentity } from '../mesh/identity.js'
import { ConfigExistsError, ConfigWriteError, describeFsError, EXIT_OK, type CliContext } from './context.js'
import { fileKind, loadOrCreateIdentity } from './init.js'
import { formatLines } from './report.js'
import { SCHEMA_FILE } from './schema.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

interface JoinOpts {
  config: string
  stateDir: string
  listenPort: string
  timeout: string
  force?: boolean
}

export function registerJoin(program: Command, ctx: CliContext): void {
  program
    .command('join')
    .summary('join a network with an invite token (from quicether invite): identity, certificate and config in one step')
    .description(
      'Redeem a one-time token from \'quicether invite\': this device gets its identity (an existing one\n' +
        'in the state directory is kept), a certificate from the inviter, the network secret and a\n' +
        'config that validates. Nothing is written unless the inviter grants the join. An existing\n' +
        'config is never overwritten without --force.',
    )
    .argument('<token>', 'the token quicether invite printed (qe1…)')
    .option('-c, --config <path>', 'config file to write', DEFAULT_CONFIG_PATH)
    .option('--state-dir <dir>', 'where the identity, certificate and network secret go', DEFAULT_STATE_DIR)
    .option('--listen-port <port>', 'UDP port of this node\'s tunnels', String(DEFAULT_PORT))
    .option('--timeout <seconds>', 'how long to wait for the inviter', '10')
    .option('--force', 'overwrite an existing config (the identity is always kept)')
    .addHelpText(
      'after',
      `
Examples:
  $ quicether join qe1AQID…
  $ quicether join qe1AQID… --config ./pi.yaml --state-dir ./pi-state --listen-port 7543`,
    )
    .action(async (tokenText: string, opts: JoinOpts) => {
      ctx.exitCode = await runJoin(tokenText, opts, ctx)
    })
}

export async function runJoin(tokenText: string, opts: JoinOpts, ctx: CliContext): Promise<number> {
  const { stdout, stderr } = ctx.io
  const port = Number(opts.listenPort)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--listen-port '${opts.listenPort}' is not a port (1-65535)`)
  const timeoutS = Number(opts.timeout)
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 600) throw new UsageError(`--timeout '${opts.timeout}' is not a number of seconds (0-600)`)
  const configPath = resolve(opts.config)
  const stateDir = resolve(opts.stateDir)
  // Imported here, not at the top: they load ajv and compile schemas, which no other command needs.
  const { decodeToken, writeSecretFile } = await import('../discovery/invite.js')
  const { InviteExpiredError, requestJoin } = await import('../discovery/join.js')
  const { saveCertificate } = await import('../pki/index.js')

  const token = decodeToken(tokenText)
  if (Date.now() > token.expiresAt) throw new InviteExpiredError(`this invite expired at ${new Date(token.expiresAt).toISOString()}: ask for a new one`)
  const existing = await fileKind(configPath)
  if (existing === 'other') throw new ConfigWriteError(`${configPath} exists and is not a regular file`)
  if (existing === 'file' && !opts.force) throw new ConfigExistsError(`${configPath} already exists: joining writes a new config (use --force to replace it)`)

  const identityPath = join(stateDir, 'identity.key')
  const { identity, created: fresh } = await loadOrCreateIdentity(identityPath, (m) => stderr.write(`quicether: warning: ${m}\n`))
  stderr.write(`asking ${token.endpoints.map((e) => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`)).join(', ')} to join '${token.network}' …\n`)
  const grant = await requestJoin(token, identity.publicKey, { timeoutMs: Math.round(timeoutS * 1000) })

  const text = joinedConfig(grant, { stateDir, port, schemaRef: fileURLToPath(SCHEMA_FILE), publicKey: publicKeyBase64(identity) })
  // The template must load; if it does not, that is a bug here (or a grant the checks let through), not the user's.
  const loaded = loadConfigText(text, configPath)
  if (!loaded.ok) throw new Error(`join produced a config that does not validate:\n${formatLines(loaded.diagnostics, 'text')}`)
  const { config } = loaded
  if (config.node.identity !== identityPath || config.network.certificate !== join(stateDir, 'node.crt') || config.network.secret !== join(stateDir, 'network.secret')) {
    throw new Error(`join: the config points at ${config.node.identity}, ${config.network.certificate}, ${config.network.secret}, not the files in ${stateDir}`)
  }

  // Everything checked: now write, the identity first (the certificate is for its key), the config last.
  if (fresh) await saveIdentity(identityPath, identity)
  await saveCertificate(config.network.certificate, grant.cert)
  await writeSecretFile(config.network.secret, grant.secret + '\n').catch((err: unknown) => {
    throw new ConfigWriteError(`cannot write ${config.network.secret}: ${describeFsError(err)}`, { cause: err })
  })
  await writeConfigFile(configPath, text)

  const cert = grant.cert
  const defaultConfig = configPath === DEFAULT_CONFIG_PATH
  stdout.write(
    [
      `Joined '${grant.network.name}' as '${cert.name}'${cert.groups.length ? ` (groups: ${cert.groups.join(', ')})` : ''}, invited by '${grant.inviter.name}'.`,
      fresh ? `created identity ${identityPath} (Ed25519, mode 0600)` : `using the existing identity ${identityPath}`,
      `wrote ${config.network.certificate} (certificate, valid until ${new Date(cert.notAfter).toISOString().slice(0, 10)})`,
      `wrote ${config.network.secret} (network secret, mode 0600)`,
      `wrote ${configPath}`,
      ``,
      `public key:        ${publicKeyBase64(identity)}`,
      `overlay addresses: ${cert.ipv4 ?? '-'}, ${cert.ipv6 ?? '-'}`,
      ``,
      `Next: quicether start${defaultConfig ? '' : ` -c ${configPath}`}`,
      ``,
    ].join('\n'),
  )
  return EXIT_OK
}

/** `text` with `# comment` aligned in one column, as in init's starter config. */
function c(text: string, comment: string): string {
  return `${text.padEnd(41)} # ${comment}`
}

/** A YAML scalar (or flow list), quoted only when it has to be. */
function y(value: unknown): string {
  return stringify(value, { lineWidth: 0, flowCollectionPadding: false, collectionStyle: 'flow' }).trimEnd()
}

/**
 * The config of a node that joined: the network and its CA, the inviter
 * pinned as first contact, and discovery through the bootstrap nodes the
 * inviter knows. The certificate and the network secret sit at their
 * default paths in the state directory, so the file does not name them.
 */
export function joinedConfig(g: JoinGrant, o: { stateDir: string; port: number; schemaRef: string; publicKey: string; date?: Date }): string {
  const date = (o.date ?? new Date()).toISOString().slice(0, 10)
  const lines = [
    `# yaml-language-server: $schema=${o.schemaRef}`,
    `#`,
    `# QuicEther config of node ${g.cert.name}, written by 'quicether join' on ${date}: this node joined`,
    `# network '${g.network.name}' on an invite from '${g.inviter.name}'. Check it with 'quicether validate FILE';`,
    `# 'quicether schema' documents every key. The file is the truth: edit it, the daemon follows.`,
    ``,
    `node:`,
    c(`  name: ${y(g.cert.name)}`, 'the name in this node\'s certificate'),
    `  state-dir: ${y(o.stateDir)}`,
    `  # identity: <state-dir>/identity.key  (Ed25519, mode 0600; public key ${o.publicKey})`,
    ``,
    `network:`,
    `  name: ${y(g.network.name)}`,
    `  # The network's CA: members are the nodes holding a certificate it signed.`,
    `  ca: ${y(g.network.ca)}`,
    c(`  # certificate: <state-dir>/node.crt`, 'signed by the CA, from the inviter'),
    c(`  # secret: <state-dir>/network.secret`, 'mode 0600: the members\' shared discovery secret'),
    `  overlay:`,
    `    ipv4: ${y(g.network.overlay.ipv4)}`,
    `    ipv6: ${y(g.network.overlay.ipv6)}`,
    ``,
    `listen:`,
    c(`  port: ${o.port}`, 'UDP; discovery and joins use port + 1'),
    ``,
    `# The inviter, pinned as the first contact; every other member is found by its certificate.`,
    `peers:`,
    `  - name: ${y(g.inviter.name)}`,
    `    key: ${y(g.inviter.key)}`,
    `    endpoints: ${y([...g.inviter.endpoints])}`,
    ``,
    `discovery:`,
    ...(g.bootstrap.length > 0
      ? [`  dht: true`, `  # Bootstrap nodes of the network's private DHT, as the inviter knew them.`, `  bootstrap: ${y([...g.bootstrap])}`]
      : [`  # The inviter knew no bootstrap node: members are reached through the inviter and peer exchange.`, `  dht: false`]),
    ``,
  ]
  return lines.join('\n')
}
