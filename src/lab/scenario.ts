/**
 * Scenario files for `quicether lab up FILE`: YAML, checked against
 * `schemas/lab-scenario.schema.json`, then normalized into a TopologySpec
 * (units parsed: bits/s, ms, fractions) and the overlay settings the
 * generated node configs use.
 */
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import Ajv2020 from 'ajv/dist/2020.js'
import type { ValidateFunction } from 'ajv/dist/2020.js'
import { parse as parseYaml } from 'yaml'
import { LabSpecError } from './errors.js'
import { checkTopology } from './topology.js'
import { parseDelay, parseLoss, parseRate } from './units.js'
import type { DirectionSpec, LinkSpec, NatKind, NodeSpec, TopologySpec } from './types.js'

export const SCENARIO_SCHEMA_URL = new URL('../../schemas/lab-scenario.schema.json', import.meta.url)

/** Overlay settings of the generated node configs. */
export interface LabNetwork {
  readonly name: string
  readonly ipv4: string
  readonly ipv6: string
  readonly port: number
  readonly logLevel: string
}

export const DEFAULT_NETWORK: LabNetwork = Object.freeze({ name: 'lab', ipv4: '10.252.0.0/24', ipv6: 'fdc5:1ab:ff::/64', port: 7443, logLevel: 'info' })

export interface Scenario {
  readonly name: string | null
  readonly network: LabNetwork
  readonly topology: TopologySpec
}

let validator: ValidateFunction | undefined

function validate(doc: unknown): string[] {
  if (!validator) {
    const schema = JSON.parse(readFileSync(SCENARIO_SCHEMA_URL, 'utf8')) as object
    const ajv = new Ajv2020.default({ allErrors: true, strict: true, allowUnionTypes: true })
    validator = ajv.compile(schema)
  }
  if (validator(doc)) return []
  const seen = new Set<string>()
  const out: string[] = []
  for (const e of validator.errors ?? []) {
    // oneOf branches repeat each other; keep one message per place.
    const where = e.instancePath === '' ? '(top level)' : e.instancePath.slice(1).replace(/\//g, '.')
    const what = e.keyword === 'additionalProperties' ? `unknown key '${String(e.params['additionalProperty'])}'` : (e.message ?? 'is not valid')
    const line = `${where}: ${what}`
    if (!seen.has(where)) out.push(line)
    seen.add(where)
  }
  return out
}

type Raw = Record<string, unknown>

function perDirection(v: unknown, parse: (x: unknown, what: string) => number, what: string): [number, number] | null {
  if (v === undefined) return null
  if (typeof v === 'object' && v !== null) {
    const o = v as Raw
    return [
      o['a-to-b'] === undefined ? NaN : parse(o['a-to-b'], `${what}.a-to-b`),
      o['b-to-a'] === undefined ? NaN : parse(o['b-to-a'], `${what}.b-to-a`),
    ]
  }
  const x = parse(v, what)
  return [x, x]
}

function direction(rate: number, delay: number, jitter: number, loss: number): DirectionSpec {
  const orZero = (x: number): number => (Number.isNaN(x) ? 0 : x)
  return { rate: Number.isNaN(rate) ? null : rate, delay: orZero(delay), jitter: orZero(jitter), loss: orZero(loss) }
}

/** Normalizes one raw link (as in a scenario file or built by a command) into a LinkSpec. */
export function linkFromRaw(raw: Raw, index: number): LinkSpec {
  const name = typeof raw['name'] === 'string' ? raw['name'] : `link${index}`
  const where = `links[${index}] (${name})`
  const rate = perDirection(raw['rate'], parseRate, `${where} rate`) ?? [NaN, NaN]
  const delay = perDirection(raw['delay'], parseDelay, `${where} delay`) ?? [NaN, NaN]
  const jitter = perDirection(raw['jitter'], parseDelay, `${where} jitter`) ?? [NaN, NaN]
  const loss = perDirection(raw['loss'], parseLoss, `${where} loss`) ?? [NaN, NaN]
  return {
    name,
    a: String(raw['a']),
    b: String(raw['b']),
    aToB: direction(rate[0], delay[0], jitter[0], loss[0]),
    bToA: direction(rate[1], delay[1], jitter[1], loss[1]),
    queue: raw['queue'] === undefined ? null : parseDelay(raw['queue'], `${where} queue`),
    nat: (raw['nat'] as NatKind | undefined) ?? 'none',
  }
}

/** Parses and checks scenario text; throws LabSpecError listing every problem. */
export function parseScenario(text: string, file = 'scenario'): Scenario {
  let doc: unknown
  try {
    doc = parseYaml(text, { prettyErrors: true })
  } catch (err) {
    throw new LabSpecError(`${file}: not valid YAML: ${(err as Error).message}`, { cause: err })
  }
  const problems = validate(doc)
  if (problems.length > 0) throw new LabSpecError(`${file} is not a valid lab scenario:\n  ${problems.join('\n  ')}`)
  const d = doc as Raw
  const net = (d['network'] ?? {}) as Raw
  const overlay = (net['overlay'] ?? {}) as Raw
  const network: LabNetwork = {
    name: (net['name'] as string | undefined) ?? DEFAULT_NETWORK.name,
    ipv4: (overlay['ipv4'] as string | undefined) ?? DEFAULT_NETWORK.ipv4,
    ipv6: (overlay['ipv6'] as string | undefined) ?? DEFAULT_NETWORK.ipv6,
    port: (net['port'] as number | undefined) ?? DEFAULT_NETWORK.port,
    logLevel: (net['log-level'] as string | undefined) ?? DEFAULT_NETWORK.logLevel,
  }
  const nodes: NodeSpec[] = ((d['nodes'] as Raw[] | undefined) ?? []).map((n) => ({
    name: String(n['name']),
    daemon: (n['daemon'] as boolean | undefined) ?? true,
    config: (n['config'] as Raw | undefined) ?? null,
  }))
  let links: LinkSpec[]
  try {
    links = ((d['links'] as Raw[] | undefined) ?? []).map((l, i) => linkFromRaw(l, i))
  } catch (err) {
    if (err instanceof LabSpecError) throw new LabSpecError(`${file}: ${err.message}`, { cause: err })
    throw err
  }
  const topology: TopologySpec = { nodes, links }
  try {
    checkTopology(topology)
  } catch (err) {
    if (err instanceof LabSpecError) throw new LabSpecError(`${file}: ${err.message}`, { cause: err })
    throw err
  }
  return { name: typeof d['name'] === 'string' ? d['name'] : null, network, topology }
}

/** Reads and parses a scenario file. */
export async function loadScenario(path: string): Promise<Scenario> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new LabSpecError(`cannot read scenario ${path}: ${(err as Error).message}`, { cause: err })
  }
  return parseScenario(text, path)
}
