/**
 * Names of everything a lab run creates. Every name starts with `qel-` and
 * the run's 4-hex-digit id, so two runs never collide and `lab down` can
 * find every leftover by prefix:
 *
 *   node namespace     qel-<run>-<node>        (qel-3f2a-alpha)
 *   router namespace   qel-<run>-r<link>       (qel-3f2a-r0)
 *   interfaces         qel-<run>-l<link><end>  (qel-3f2a-l0a, …-l0ra, …-l0da), at most 15 characters
 *   temp directory     <tmp>/qel-<run>
 */
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LabSpecError } from './errors.js'

export const LAB_PREFIX = 'qel-'

/** Links per lab: addresses use the link index as one IPv4 octet, interface names keep it to 3 digits. */
export const MAX_LINKS = 256

const RUN_ID = /^[0-9a-f]{4}$/
const NODE_NAME = /^[a-z][a-z0-9-]{0,19}$/
const ROUTER_LIKE = /^r[0-9]+$/

/** A fresh run id: 4 random hex digits. */
export function newRunId(): string {
  return randomBytes(2).toString('hex')
}

export function isRunId(s: string): boolean {
  return RUN_ID.test(s)
}

/** Throws LabSpecError unless `name` can name a lab node (and so a namespace and a config `node.name`). */
export function checkNodeName(name: string): void {
  if (!NODE_NAME.test(name) || name.endsWith('-')) {
    throw new LabSpecError(`node name '${name}' is not valid: lowercase letters, digits and dashes, starting with a letter, at most 20 characters`)
  }
  if (ROUTER_LIKE.test(name)) throw new LabSpecError(`node name '${name}' is reserved for link routers (r<number>)`)
}

export function nodeNetns(run: string, node: string): string {
  return `${LAB_PREFIX}${run}-${node}`
}

export function routerNetns(run: string, link: number): string {
  return `${LAB_PREFIX}${run}-r${link}`
}

/**
 * Interface names of link `link`:
 *  a, b    the ends in node a's and node b's namespaces
 *  ra, rb  the router's ends facing a and b
 *  da, db  the router's delay TUNs for packets coming from a and from b
 */
export type LinkEnd = 'a' | 'b' | 'ra' | 'rb' | 'da' | 'db'

export function linkIfname(run: string, link: number, end: LinkEnd): string {
  if (!Number.isInteger(link) || link < 0 || link >= MAX_LINKS) throw new LabSpecError(`link index ${link} is out of range (0..${MAX_LINKS - 1})`)
  return `${LAB_PREFIX}${run}-l${link}${end}`
}

/** The run's temp directory (configs, identities, logs, pid files). */
export function runDir(run: string, base = tmpdir()): string {
  return join(base, `${LAB_PREFIX}${run}`)
}

/** The run id a lab name belongs to, or null when the name is not a lab name. */
export function runIdOf(name: string): string | null {
  const m = /^qel-([0-9a-f]{4})(?:-|$)/.exec(name)
  return m?.[1] ?? null
}

/** True when `name` was made by run `run` (or by any run, when `run` is null). */
export function isLabName(name: string, run: string | null = null): boolean {
  const id = runIdOf(name)
  return id !== null && (run === null || id === run)
}
