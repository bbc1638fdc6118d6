/**
 * `quicether policy explain --from X --to ADDRESS[:PORT][/PROTO]`: which rule
 * of the config's policy decides a flow, and why the ones before it did not
 * match. Offline, from the file: members are those the config names (their
 * addresses as the config says or derives from their keys).
 */
import type { Command } from 'commander'
import { loadConfigFile } from '../config/index.js'
import { UsageError } from '../errors.js'
import { compilePolicy, evaluate, parseTarget } from '../policy/policy.js'
import { configMembers } from '../policy/tests.js'
import { parseCidr } from '../net/ip.js'
import type { CliContext } from './context.js'
import { formatLines } from './report.js'
import { DEFAULT_CONFIG_PATH } from './validate.js'

export function registerPolicyCommands(program: Command, ctx: CliContext): void {
  const policy = program.command('policy').summary('explain what the policy decides for a flow')
  policy
    .command('explain')
    .summary('the rule that decides a flow: --from peer:NAME|IP --to ADDRESS[:PORT][/tcp|udp|icmp]')
    .requiredOption('--from <who>', 'the initiator: peer:NAME (its overlay address) or an IP address')
    .requiredOption('--to <target>', 'ADDRESS[:PORT][/tcp|udp|icmp] (a port alone means tcp)')
    .option('-c, --config <path>', 'config file', DEFAULT_CONFIG_PATH)
    .option('--json', 'print JSON')
    .action(async (opts: { from: string; to: string; config: string; json?: boolean }) => {
      const r = await loadConfigFile(opts.config)
      if (!r.ok) {
        ctx.io.stderr.write(formatLines(r.diagnostics, 'text'))
        throw new UsageError(`${opts.config} does not load`)
      }
      const config = r.config
      const to = parseTarget(opts.to)
      if ('error' in to) throw new UsageError(`--to: ${to.error}`)
      const family = parseCidr(to.addr).family
      const members = configMembers(config)
      let src: string
      if (opts.from.startsWith('peer:')) {
        const m = members.find((x) => x.name === opts.from.slice(5))
        if (!m) throw new UsageError(`--from: no member '${opts.from.slice(5)}' in ${opts.config}`)
        const a = m.addresses.find((x) => parseCidr(x).family === family)
        if (!a) throw new UsageError(`--from: no IPv${family} overlay address is known for '${m.name}' in ${opts.config}`)
        src = a
      } else {
        try {
          src = parseCidr(opts.from).network
        } catch {
          throw new UsageError(`--from: '${opts.from}' is not peer:NAME or an IP address`)
        }
      }
      const table = compilePolicy({ policies: { ...config.policies, enforced: true } }, members)
      const member = opts.from.startsWith('peer:') ? opts.from.slice(5) : undefined
      const v = evaluate(table, { src, dst: to.addr, proto: to.proto, dport: to.port, ...(member !== undefined ? { member } : {}) })
      const flow = `${src} → ${to.addr}${to.port !== null ? `:${to.port}` : ''}/${to.proto}`
      if (opts.json) {
        ctx.io.stdout.write(JSON.stringify({ flow, enforced: config.policies.enforced, action: v.action, rule: v.rule ? { number: v.rule.index + 1, name: v.rule.name, text: v.rule.text } : null, default: table.default }) + '\n')
        return
      }
      const lines = [`flow     ${flow}${opts.from.startsWith('peer:') ? `  (${opts.from})` : ''}`]
      if (v.rule) lines.push(`decided  ${v.action.toUpperCase()} by rule ${v.rule.index + 1} '${v.rule.name}': ${v.rule.text}`)
      else lines.push(`decided  ${v.action.toUpperCase()} by the default (no rule of ${table.rules.length} matched)`)
      if (!config.policies.enforced) lines.push('note     this config writes no policies.rules or policies.default: nothing is enforced, every member is admitted')
      ctx.io.stdout.write(lines.join('\n') + '\n')
    })
}
