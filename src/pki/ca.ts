/**
 * The CA directory: everything the network's signing authority keeps.
 *
 *   ca.key          Ed25519 private key, PKCS#8 PEM, mode 0600 (keep it offline or on an admin node)
 *   ca.json         { v, network, publicKey, overlay: { ipv4, ipv6 }, createdAt }, mode 0644
 *   network.secret  32 random bytes, base64, one line, mode 0600: the members' shared secret
 *   revoked.json    the signed revocation list (seq 0 and empty at first), mode 0644
 *   issued.jsonl    one JSON line per certificate issued (serial, key, name, notAfter, issuedAt)
 *
 * The directory itself is mode 0700. One process at a time should change a
 * CA directory: writes within one `Ca` are serialized, but two processes
 * revoking at once may each write seq N+1 (the later rename wins).
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { appendFile, chmod, link, mkdir, open, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { DEFAULT_OVERLAY_IPV4, defaultOverlayIpv6 } from '../config/defaults.js'
import { QeError } from '../errors.js'
import { deriveOverlayAddresses, parsePublicKey, publicKeyBase64 } from '../mesh/identity.js'
import { parseAddress, parsePrefix, prefixContains, type Prefix } from '../net/index.js'
import {
  CertificateRequestError,
  describe,
  isCanonicalBase64,
  isErrno,
  isValidGroup,
  isValidName,
  NAME_PATTERN,
  pkiAjv,
  publicKeyOf,
  readSmallFile,
  signCertificate,
  writeFileAtomic,
  type Certificate,
} from './cert.js'
import { loadRevocationList, revokedKeys, saveRevocationList, signRevocationList, verifyRevocationList, type RevocationList, type RevokedEntry } from './revocation.js'

export interface CaInfo {
  /** The CA directory, as given. */
  readonly dir: string
  readonly network: string
  /** The CA public key, base64 of 32 raw bytes: the config's network.ca. */
  readonly publicKey: string
  /** Canonical CIDRs the CA hands node addresses out of. */
  readonly overlay: { readonly ipv4: string; readonly ipv6: string }
}

export interface SignRequest {
  /** The node's public key, base64 (surrounding whitespace is ignored). */
  readonly key: string
  readonly name: string
  readonly groups?: readonly string[]
  /** Omitted: derived from the key (deriveOverlayAddresses); null: no address of this family. */
  readonly ipv4?: string | null
  readonly ipv6?: string | null
  readonly subnets?: readonly string[]
  /** Default DEFAULT_CERT_LIFETIME_MS. */
  readonly lifetimeMs?: number
  /** Default Date.now(). */
  readonly now?: number
}

export interface Ca {
  readonly info: CaInfo
  readonly privateKey: KeyObject
  /** Issues a certificate; ipv4/ipv6 default to deriveOverlayAddresses(key, overlay) from src/mesh/identity.ts; lifetime default 365 days. Appends to issued.jsonl. */
  sign(req: SignRequest): Promise<Certificate>
  /** Adds keys to revoked.json (seq + 1, re-signed, atomic). Revoking a revoked key again changes nothing and returns the current list. */
  revoke(keys: readonly { key: string; name?: string | null }[], now?: number): Promise<RevocationList>
  /** The current revoked.json, verified against this CA (CaInvalidError when it does not verify). */
  revocations(): Promise<RevocationList>
  /** The network secret (raw 32 bytes). */
  secret(): Promise<Buffer>
}

export const DEFAULT_CERT_LIFETIME_MS = 365 * 86_400_000
export const CA_FILES = Object.freeze({
  key: 'ca.key',
  info: 'ca.json',
  secret: 'network.secret',
  revocations: 'revoked.json',
  issued: 'issued.jsonl',
})

/** `initCa` found a CA key already in the directory. */
export class CaExistsError extends QeError {
  override readonly code = 'QE_CA_EXISTS'
  constructor(message = 'a CA already exists in this directory', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CaExistsError'
  }
}

/** No CA directory, or its ca.json or ca.key is missing. */
export class CaMissingError extends QeError {
  override readonly code = 'QE_CA_MISSING'
  constructor(message = 'no CA in this directory', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CaMissingError'
  }
}

/** A CA file is malformed, or the files disagree (the key is not ca.json's key). */
export class CaInvalidError extends QeError {
  override readonly code = 'QE_CA_INVALID'
  constructor(message = 'the CA directory is not valid', options?: ErrorOptions) {
    super(message, options)
    this.name = 'CaInvalidError'
  }
}

/**
 * Creates a CA in `dir` (made with mode 0700 when missing). Refuses with
 * CaExistsError when `dir/ca.key` exists; a directory with the other files but
 * no key (an interrupted init) is initialised again. `ca.key` is written last
 * and never over an existing file. Bad input: CertificateRequestError for the
 * network name, OverlayRangeError (identity.ts) for an overlay range.
 */
export async function initCa(dir: string, opts: { network: string; overlay?: { ipv4?: string; ipv6?: string }; now?: number }): Promise<CaInfo> {
  const now = opts.now ?? Date.now()
  if (!isValidName(opts.network)) throw new CertificateRequestError(`network: '${opts.network}' is not a valid network name (lowercase letters, digits and dashes, 1-63)`)
  const overlay = {
    ipv4: overlayRange(opts.overlay?.ipv4 ?? DEFAULT_OVERLAY_IPV4, 4),
    ipv6: overlayRange(opts.overlay?.ipv6 ?? defaultOverlayIpv6(opts.network), 6),
  }
  // Throws OverlayRangeError for a range with no room for a host.
  deriveOverlayAddresses(Buffer.alloc(32), overlay.ipv4, overlay.ipv6)

  const keyPath = join(dir, CA_FILES.key)
  if (await exists(keyPath)) throw new CaExistsError(`${keyPath} already exists; not replacing a CA (its certificates would all stop verifying)`)
  try {
    const created = await mkdir(dir, { recursive: true, mode: 0o700 })
    if (created !== undefined) await chmod(dir, 0o700)
  } catch (err) {
    throw new CaInvalidError(`cannot create CA directory ${dir}: ${describe(err)}`, { cause: err })
  }

  const { privateKey } = generateKeyPairSync('ed25519')
  const publicKey = publicKeyOf(privateKey)
  const info = { v: 1, network: opts.network, publicKey, overlay, createdAt: now }
  await writeFileAtomic(join(dir, CA_FILES.info), JSON.stringify(info, null, 2) + '\n', 0o644)
  await writeFileAtomic(join(dir, CA_FILES.secret), randomBytes(32).toString('base64') + '\n', 0o600)
  await saveRevocationList(join(dir, CA_FILES.revocations), signRevocationList({ network: opts.network, seq: 0, issuedAt: now, revoked: [] }, privateKey))
  await writeFileAtomic(join(dir, CA_FILES.issued), '', 0o644)
  await writeKeyExclusive(keyPath, privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())
  return Object.freeze({ dir, network: opts.network, publicKey, overlay: Object.freeze(overlay) })
}

function overlayRange(cidr: string, family: 4 | 6): string {
  const p = parsePrefix(cidr)
  if (p.value === undefined) throw new CertificateRequestError(`overlay.ipv${family}: ${p.error}`)
  if (p.value.family !== family) throw new CertificateRequestError(`overlay.ipv${family}: '${cidr}' is not an IPv${family} range`)
  return p.value.cidr
}

/** Write to a temporary file, then hard-link it into place: atomic, and fails if `path` exists. */
async function writeKeyExclusive(path: string, pem: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(pem, 'utf8')
      await fh.chmod(0o600)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await link(tmp, path)
  } catch (err) {
    if (isErrno(err, 'EEXIST')) throw new CaExistsError(`${path} already exists; not replacing a CA`, { cause: err })
    throw new CaInvalidError(`cannot write ${path}: ${describe(err)}`, { cause: err })
  } finally {
    await unlink(tmp).catch(() => undefined)
  }
}

const infoSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['v', 'network', 'publicKey', 'overlay', 'createdAt'],
  properties: {
    v: { const: 1 },
    network: { type: 'string', pattern: NAME_PATTERN },
    publicKey: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
    overlay: {
      type: 'object',
      additionalProperties: false,
      required: ['ipv4', 'ipv6'],
      properties: { ipv4: { type: 'string', maxLength: 18 }, ipv6: { type: 'string', maxLength: 49 } },
    },
    createdAt: { type: 'integer', minimum: 0 },
  },
} as const

interface CaJson {
  v: 1
  network: string
  publicKey: string
  overlay: { ipv4: string; ipv6: string }
  createdAt: number
}

const validateInfo = pkiAjv.compile<CaJson>(infoSchema)

/**
 * Reads `dir/ca.json` alone: what a node needs to verify against this CA, no
 * private key. CaMissingError when there is none, CaInvalidError when malformed.
 */
export async function readCaInfo(dir: string): Promise<CaInfo> {
  const path = join(dir, CA_FILES.info)
  const text = await readSmallFile(path, 64 * 1024, {
    missing: (cause) => new CaMissingError(`no CA in ${dir}: ${path} does not exist (create one with 'quicether ca init --network <name> --dir ${dir}')`, { cause }),
    invalid: (message, cause) => new CaInvalidError(`${path}: ${message}`, { cause }),
  })
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new CaInvalidError(`${path} is not JSON`, { cause: err })
  }
  if (!validateInfo(value)) throw new CaInvalidError(`${path}: ${pkiAjv.errorsText(validateInfo.errors, { dataVar: 'ca' })}`)
  if (!isCanonicalBase64(value.publicKey, 32)) throw new CaInvalidError(`${path}: publicKey is not canonical base64`)
  for (const family of [4, 6] as const) {
    const cidr = value.overlay[`ipv${family}`]
    const p = parsePrefix(cidr)
    if (p.value === undefined || p.value.family !== family || p.value.cidr !== cidr) throw new CaInvalidError(`${path}: overlay.ipv${family} '${cidr}' is not a canonical IPv${family} range`)
  }
  return Object.freeze({ dir, network: value.network, publicKey: value.publicKey, overlay: Object.freeze({ ...value.overlay }) })
}

/**
 * Opens the CA in `dir`: reads ca.json and ca.key and checks that they belong
 * together. CaMissingError when either file is missing, CaInvalidError when
 * either is malformed or the key is not ca.json's.
 */
export async function openCa(dir: string): Promise<Ca> {
  const info = await readCaInfo(dir)
  const keyPath = join(dir, CA_FILES.key)
  const pem = await readSmallFile(keyPath, 64 * 1024, {
    missing: (cause) => new CaMissingError(`${keyPath} does not exist: this copy of the CA directory cannot sign`, { cause }),
    invalid: (message, cause) => new CaInvalidError(`${keyPath}: ${message}`, { cause }),
  })
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' })
  } catch (err) {
    throw new CaInvalidError(`${keyPath} is not a PEM private key`, { cause: err })
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new CaInvalidError(`${keyPath} is a ${privateKey.asymmetricKeyType ?? 'unknown'} key, expected Ed25519`)
  if (publicKeyOf(privateKey) !== info.publicKey) throw new CaInvalidError(`${keyPath} does not match the public key in ${join(dir, CA_FILES.info)}`)
  return new DirectoryCa(info, privateKey)
}

class DirectoryCa implements Ca {
  readonly info: CaInfo
  readonly privateKey: KeyObject
  readonly #v4: Prefix
  readonly #v6: Prefix
  /** Serializes writes to revoked.json and issued.jsonl. */
  #queue: Promise<unknown> = Promise.resolve()

  constructor(info: CaInfo, privateKey: KeyObject) {
    this.info = info
    this.privateKey = privateKey
    this.#v4 = parsePrefix(info.overlay.ipv4).value!
    this.#v6 = parsePrefix(info.overlay.ipv6).value!
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn)
    this.#queue = next.catch(() => undefined)
    return next
  }

  async sign(req: SignRequest): Promise<Certificate> {
    const raw = parsePublicKey(req.key)
    const key = publicKeyBase64(raw)
    if (!isValidName(req.name)) throw new CertificateRequestError(`name: '${req.name}' is not a valid node name (lowercase letters, digits and dashes, 1-63, no leading or trailing dash)`)
    const groups = [...new Set(req.groups ?? [])].sort()
    for (const g of groups) if (!isValidGroup(g)) throw new CertificateRequestError(`groups: '${g}' is not a valid group name (1-63 of A-Z a-z 0-9 _ . -)`)
    const derived = deriveOverlayAddresses(raw, this.info.overlay.ipv4, this.info.overlay.ipv6)
    const ipv4 = req.ipv4 === undefined ? derived.ipv4 : this.#address(req.ipv4, this.#v4, 'ipv4')
    const ipv6 = req.ipv6 === undefined ? derived.ipv6 : this.#address(req.ipv6, this.#v6, 'ipv6')
    const subnets = [...new Set((req.subnets ?? []).map((s) => this.#subnet(s)))].sort()
    const now = req.now ?? Date.now()
    const lifetime = req.lifetimeMs ?? DEFAULT_CERT_LIFETIME_MS
    if (!Number.isFinite(lifetime) || Math.round(lifetime) <= 0) throw new CertificateRequestError(`lifetime: ${lifetime} ms is not a positive duration`)
    if (!Number.isSafeInteger(now) || now < 0) throw new CertificateRequestError(`now: ${now} is not a time in ms since the epoch`)
    if (revokedKeys(await this.revocations()).has(key)) throw new CertificateRequestError(`key: ${key} is revoked; a certificate for it would never verify`)
    const cert = signCertificate(
      { network: this.info.network, key, name: req.name, groups, ipv4, ipv6, subnets, notBefore: now, notAfter: now + Math.round(lifetime) },
      this.privateKey,
    )
    const line = JSON.stringify({ serial: cert.serial, key: cert.key, name: cert.name, notAfter: cert.notAfter, issuedAt: now }) + '\n'
    await this.#serial(async () => {
      try {
        await appendFile(join(this.info.dir, CA_FILES.issued), line, { mode: 0o644 })
      } catch (err) {
        throw new CaInvalidError(`cannot record the certificate in ${join(this.info.dir, CA_FILES.issued)}: ${describe(err)}`, { cause: err })
      }
    })
    return cert
  }

  #address(text: string | null, range: Prefix, field: 'ipv4' | 'ipv6'): string | null {
    if (text === null) return null
    const p = parseAddress(text)
    if (p.value === undefined) throw new CertificateRequestError(`${field}: ${p.error}`)
    if (!prefixContains(range, p.value)) throw new CertificateRequestError(`${field}: ${p.value.text} is outside the overlay range ${range.cidr}`)
    if (p.value.n === range.first || (field === 'ipv4' && p.value.n === range.last)) {
      throw new CertificateRequestError(`${field}: ${p.value.text} is the ${p.value.n === range.first ? 'network' : 'broadcast'} address of ${range.cidr}`)
    }
    return p.value.text
  }

  #subnet(text: string): string {
    const p = parsePrefix(text)
    if (p.value === undefined) throw new CertificateRequestError(`subnets: ${p.error}`)
    return p.value.cidr
  }

  async revoke(keys: readonly { key: string; name?: string | null }[], now = Date.now()): Promise<RevocationList> {
    const entries: RevokedEntry[] = keys.map(({ key, name }) => {
      if (name != null && !isValidName(name)) throw new CertificateRequestError(`name: '${name}' is not a valid node name`)
      return { key: publicKeyBase64(parsePublicKey(key)), name: name ?? null, at: now }
    })
    return this.#serial(async () => {
      const current = await this.revocations()
      const byKey = new Map(current.revoked.map((e) => [e.key, e]))
      const before = byKey.size
      for (const e of entries) if (!byKey.has(e.key)) byKey.set(e.key, e)
      if (byKey.size === before) return current
      const list = signRevocationList({ network: this.info.network, seq: current.seq + 1, issuedAt: now, revoked: [...byKey.values()] }, this.privateKey)
      await saveRevocationList(join(this.info.dir, CA_FILES.revocations), list)
      return list
    })
  }

  async revocations(): Promise<RevocationList> {
    const path = join(this.info.dir, CA_FILES.revocations)
    let list: RevocationList | null
    try {
      list = await loadRevocationList(path)
    } catch (err) {
      throw new CaInvalidError(err instanceof Error ? err.message : String(err), { cause: err })
    }
    if (list === null) throw new CaInvalidError(`${path} does not exist; restore it from a backup (a new empty list would un-revoke every key)`)
    const check = verifyRevocationList(list, { ca: this.info.publicKey, network: this.info.network })
    if (!check.ok) throw new CaInvalidError(`${path} does not verify against this CA: ${check.reason} (${check.code})`)
    return list
  }

  async secret(): Promise<Buffer> {
    const path = join(this.info.dir, CA_FILES.secret)
    const text = await readSmallFile(path, 1024, {
      missing: (cause) => new CaMissingError(`${path} does not exist`, { cause }),
      invalid: (message, cause) => new CaInvalidError(`${path}: ${message}`, { cause }),
    })
    const b64 = text.trim()
    if (!isCanonicalBase64(b64, 32)) throw new CaInvalidError(`${path} is not the base64 of 32 bytes`)
    return Buffer.from(b64, 'base64')
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return false
    throw new CaInvalidError(`cannot check ${path}: ${describe(err)}`, { cause: err })
  }
}
