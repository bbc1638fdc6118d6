/** Rules for uplinks and multipath: names, units, classes, target. */
import { parsePortSpec } from './syntax.js'
import type { RuleContext } from './rules.js'
import { list, rec, str } from './rules.js'
import { checkPeerRef, didYouMean } from './rules-peers.js'
import { parseBitrate, parseDuration, parseSize } from './units.js'

export function checkMultipath(ctx: RuleContext): void {
  const mp = rec(ctx.raw.multipath)
  const mode = str(mp?.mode) ?? 'failover'
  const uplinks = new Map<string, number>()
  const interfaces = list(ctx.raw.interfaces)

  interfaces.forEach((item, i) => {
    const u = rec(item)
    if (!u) return
    const name = str(u.name)
    if (name !== undefined) {
      const first = uplinks.get(name)
      if (first !== undefined) ctx.report(['interfaces', i, 'name'], 'duplicate-uplink', `uplink '${name}' is listed twice (first at ${ctx.where(['interfaces', first, 'name'])})`)
      else uplinks.set(name, i)
    }
    const bw = rec(u.bandwidth)
    for (const dir of ['up', 'down'] as const) {
      if (bw?.[dir] === undefined) continue
      const r = parseBitrate(bw[dir])
      if (r.error !== undefined) ctx.report(['interfaces', i, 'bandwidth', dir], 'bad-unit', r.error)
    }
  })

  if ((mode === 'aggregate' || mode === 'redundant') && interfaces.length < 2 && mp) {
    ctx.report(['multipath', 'mode'], 'aggregate-single-uplink', `multipath.mode ${mode} needs two or more uplinks in interfaces (found ${interfaces.length})`, { severity: 'warning' })
  }
  if (!mp) return

  const target = str(mp.target)
  if (target !== undefined) checkPeerRef(ctx, target, ['multipath', 'target'], 'multipath.target')

  const reorder = rec(mp.reorder)
  // The bounds are the forwarding plane's: a reorder wait of 1 ms..10 s, a buffer of 64 KiB..256 MiB.
  if (reorder?.['max-delay'] !== undefined) {
    const r = parseDuration(reorder['max-delay'])
    if (r.error !== undefined) ctx.report(['multipath', 'reorder', 'max-delay'], 'bad-unit', r.error)
    else if (r.value < 1 || r.value > 10_000) ctx.report(['multipath', 'reorder', 'max-delay'], 'bad-value', 'max-delay must be between 1ms and 10s')
  }
  if (reorder?.['max-bytes'] !== undefined) {
    const r = parseSize(reorder['max-bytes'])
    if (r.error !== undefined) ctx.report(['multipath', 'reorder', 'max-bytes'], 'bad-unit', r.error)
    else if (r.value < 65_536 || r.value > 256 * 1024 * 1024) ctx.report(['multipath', 'reorder', 'max-bytes'], 'bad-value', 'max-bytes must be between 64KiB and 256MiB')
  }

  const classes = new Map<string, number>()
  // The engine's limits (native/engine.h QE_MAX_CLASSES, QE_CLASS_MAX_PORTS).
  const MAX_CLASSES = 16
  const MAX_CLASS_PORTS = 32
  list(mp['traffic-classes']).forEach((item, i) => {
    const c = rec(item)
    if (!c) return
    const base = ['multipath', 'traffic-classes', i]
    if (i === MAX_CLASSES) ctx.report(base, 'too-many', `at most ${MAX_CLASSES} traffic classes (the forwarding plane's table); merge some`)
    const name = str(c.name)
    if (name !== undefined) {
      const first = classes.get(name)
      if (first !== undefined) ctx.report([...base, 'name'], 'duplicate-class', `traffic class '${name}' is defined twice (first at ${ctx.where(['multipath', 'traffic-classes', first, 'name'])})`)
      else classes.set(name, i)
    }
    const path = str(c.path)
    if (path !== undefined && path !== 'lowest-latency' && !uplinks.has(path)) {
      ctx.report([...base, 'path'], 'unknown-uplink', `path '${path}' is neither lowest-latency nor an uplink in interfaces${didYouMean(path, ['lowest-latency', ...uplinks.keys()])}`)
    }
    list(rec(c.match)?.ports).forEach((port, j) => {
      if (j === MAX_CLASS_PORTS) ctx.report([...base, 'match', 'ports', j], 'too-many', `at most ${MAX_CLASS_PORTS} ports or ranges in one class; use ranges (e.g. "5060-5090")`)
      const pr = parsePortSpec(port)
      if (pr.error !== undefined) ctx.report([...base, 'match', 'ports', j], pr.code, pr.error)
    })
  })
}
