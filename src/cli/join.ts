/**
 * `quicether join TOKEN`: a new device joins the network in one line. It
 * decodes the token, makes its identity (or keeps the one it has), asks the
 * inviter for a certificate, and only then writes anything: the identity,
 * the certificate, the network secret and a config that validates (atomic,
 * like `init`). A refused, expired or unreachable invite changes nothing.
 */
import { access, chmod, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { stringify } from 'yaml'
import { loadConfigText } from '../config/index.js'
import { DEFAULT_PORT, DEFAULT_STATE_DIR } from '../config/defaults.js'
import { writeConfigFile } from '../config/write.js'
import { decodeToken } from '../discovery/invite.js'
import { InviteExpiredError, requestJoin, type JoinGrant } from '../discovery/join.js'
import { generateIdentity, IdentityMissingError, loadIdentity, publicKeyBase64, saveIdentity, type Identity } from '../mesh/identity.js'
import { saveCertificate } from '../pki/index.js'
import { ConfigExistsError, type CliContext } from './context.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

interface JoinOpts {
  config: string
  stateDir: string
  listenPort: string
  force?: boolean
  timeout: string
}

export function registerJoin(program: Command, ctx: CliContext): void {
  program
    .command('join')
    .summary('join a network with an invite token (from quicether invite): identity, certificate and config in one step')
    .argument('<token>', 'the token quicether invite printed')
    .option('-c, --config <path>', 'config file to write', DEFAULT_CONFIG_PATH)
    .option('--state-dir <dir>', 'where the identity, certificate and network secret go', DEFAULT_STATE_DIR)
    .option('--listen-port <port>', 'UDP port of the tunnels', String(DEFAULT_PORT))
    .option('--timeout <seconds>', 'how long to wait for the inviter', '10')
    .option('--force', 'overwrite an existing config file')
    .action(async (tokenText: string, opts: JoinOpts) => {
      const { stdout, stderr } = ctx.io
      const token = decodeToken(tokenText)
      if (Date.now() > token.expiresAt) throw new InviteExpiredError(`this invite expired at ${new Date(token.expiresAt).toISOString()}: ask for a new one`)
      if (!opts.force && (await exists(opts.config))) throw new ConfigExistsError(`${opts.config} already exists: joining writes a new config (use --force to replace it)`)
      const identityPath = join(opts.stateDir, 'identity.key')
      const { identity, fresh } = await identityAt(identityPath)
      stderr.write(`asking ${token.endpoints.map((e) => `${e.host}:${e.port}`).join(', ')} to join '${token.network}' …\n`)
      const grant = await requestJoin(token, identity.publicKey, { timeoutMs: Number(opts.timeout) * 1000 })
      const port = Number(opts.listenPort)
      const text = joinedConfig(grant, opts.stateDir, port)
      const loaded = loadConfigText(text, opts.config)
      if (!loaded.ok) throw new Error(`the config join would write does not validate: ${loaded.diagnostics.map((d) => d.message).join('; ')}`)
      // Everything checked: now write, identity first (the certificate is for its key).
      await mkdir(opts.stateDir, { recursive: true, mode: 0o700 })
      if (fresh) await saveIdentity(identityPath, identity)
      await saveCertificate(join(opts.stateDir, 'node.crt'), grant.cert)
      const secretPath = join(opts.stateDir, 'network.secret')
      await writeFile(secretPath, grant.secret + '\n', { mode: 0o600 })
      await chmod(secretPath, 0o600)
      await writeConfigFile(opts.config, text)
      stdout.write(
        `Joined '${grant.network.name}' as '${grant.cert.name}' (${publicKeyBase64(identity).slice(0, 8)}…), certificate valid until ${new Date(grant.cert.notAfter).toISOString().slice(0, 10)}.\n` +
          `Wrote ${opts.config}, ${join(opts.stateDir, 'node.crt')}, ${secretPath}${fresh ? `, ${identityPath}` : ''}.\n` +
          `Next: quicether start -c ${opts.config}\n`,
      )
    })
}

async function identityAt(path: string): Promise<{ identity: Identity; fresh: boolean }> {
  try {
    return { identity: await loadIdentity(path), fresh: false }
  } catch (err) {
    if (err instanceof IdentityMissingError) return { identity: generateIdentity(), fresh: true }
    throw err
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

/** The config of a node that joined: the network, its inviter as first contact, and discovery. */
export function joinedConfig(g: JoinGrant, stateDir: string, port: number): string {
  const doc = {
    node: { name: g.cert.name, 'state-dir': stateDir },
    network: { name: g.network.name, ca: g.network.ca, overlay: { ipv4: g.network.overlay.ipv4, ipv6: g.network.overlay.ipv6 } },
    listen: { port },
    peers: [{ name: g.inviter.name, key: g.inviter.key, endpoints: [...g.inviter.endpoints] }],
    discovery: g.bootstrap.length > 0 ? { dht: true, bootstrap: [...g.bootstrap] } : { dht: false },
  }
  return (
    `# Written by 'quicether join' on ${new Date().toISOString().slice(0, 10)}: this node joined '${g.network.name}' as '${g.cert.name}'.\n` +
    `# Members with a certificate of the network are admitted and found by themselves; '${g.inviter.name}' (the\n` +
    `# inviter) is pinned as the first contact. The file is the truth: edit it, the daemon follows.\n` +
    stringify(doc)
  )
}
