/**
 * `quicether lab …`: the network-namespace lab (needs root).
 *
 *   lab demo                          a newcomer's first run: two sites, a tunnel, a transfer
 *   lab pair [--rate --delay --loss]  two daemons over one emulated link: throughput, RTT, CPU
 *   lab bond --uplink … [--raw]       a client with several uplinks to a gateway: bonding figures
 *   lab nat --a TYPE --b TYPE | --matrix   two members behind emulated NATs and a public relay
 *   lab roam                          a client moves from wifi to lte mid-transfer
 *   lab up SCENARIO.yaml              build a topology from a file and leave it running
 *   lab down [--run ID]               remove everything a lab run left (also after a crash)
 *
 * Expected failures are QeErrors, printed by `main`. Every command that
 * builds a lab tears it down on errors and on Ctrl-C.
 */
import type { Command } from 'commander'
import { LabPrerequisiteError, LabSpecError } from '../lab/errors.js'
import { withInterrupts } from '../lab/interrupt.js'
import { isRunId } from '../lab/names.js'
import type { PairResult } from '../lab/pair.js'
import type { UpResult } from '../lab/up.js'
import type { TeardownReport } from '../lab/teardown.js'
import type { BondEffects } from '../lab/bond-spec.js'
import type { NatPairResult } from '../lab/nat-lab.js'
import { NAT_TYPES, type NatType } from '../lab/nat-types.js'
import { parseDelay, parseLoss, parsePositiveInt, parseRate } from '../lab/units.js'
// The rest of the lab (topologies, daemons, the scenario schema) is imported by the command
// that runs it, so every other command and `--help` start without it.

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabPrerequisiteError('the lab creates network namespaces and needs root: run it with sudo')
  }
}

function print(line = ''): void {
  process.stdout.write(line + '\n')
}

function progress(line: string): void {
  process.stderr.write(`lab: ${line}\n`)
}

interface BondFlags {
  uplink: string[]
  mode: string
  streams: string
  seconds: string
  cut?: string
  jitter: string[]
  vary: string[]
  seed?: string
  raw?: boolean
  mptcp?: boolean
  congestion: string
  tcpBuffer?: string
  direction: string
  json?: boolean
}

interface PairFlags {
  rate?: string
  delay?: string
  loss?: string
  seconds: string
  streams: string
  json?: boolean
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .summary('network-namespace lab: demo, benchmarks, topologies (root)')
    .description(
      'Build real topologies in Linux network namespaces (names start with qel-), with emulated\n' +
        'links (rate, one-way delay, loss, NAT) and real quicether daemons. Needs root.',
    )
    .addHelpText(
      'after',
      `
Examples:
  $ sudo quicether lab demo
  $ sudo quicether lab pair --rate 100mbit --delay 10ms --loss 0.5% --seconds 10 --json
  $ sudo quicether lab bond --uplink 50mbit,10ms --uplink 100mbit,30ms,1% --cut 2@5
  $ sudo quicether lab bond --uplink 50mbit,10ms --uplink 100mbit,40ms --jitter 2@10 --vary 2 --seed 7
  $ sudo quicether lab up examples/lab/two-sites.yaml
  $ sudo quicether lab down`,
    )

  lab
    .command('demo')
    .summary('two sites, a tunnel, a ping and a transfer, then tear down (under a minute)')
    .action(async () => {
      requireRoot()
      const { runDemo } = await import('../lab/demo.js')
      await withInterrupts((signal) => runDemo(print, signal))
    })

  lab
    .command('mesh')
    .summary('N daemons that know only their network and a bootstrap node: how fast the mesh forms')
    .option('--nodes <n>', 'members started together', '5')
    .option('--lan', 'also find each other on the LAN segment (multicast)')
    .option('--join', 'also invite a new device and time quicether join until every member has it up')
    .option('--seconds <n>', 'how long each phase may take before it counts as failed', '30')
    .option('--json', 'print the result as JSON')
    .action(async (f: { nodes: string; lan?: boolean; join?: boolean; seconds: string; json?: boolean }) => {
      const opts = { nodes: parsePositiveInt(f.nodes, '--nodes', 32), lan: f.lan === true, join: f.join === true, seconds: parsePositiveInt(f.seconds, '--seconds', 600) }
      requireRoot()
      const { formatMesh, runMesh } = await import('../lab/mesh.js')
      const r = await withInterrupts((signal) => runMesh({ ...opts, signal, progress }))
      print(f.json ? JSON.stringify(r, null, 2) : formatMesh(r))
    })

  lab
    .command('nat')
    .summary('two members behind emulated NATs (and a public relay): connected, direct or relayed, how fast')
    .option('--a <type>', `a's NAT: ${NAT_TYPES.join(', ')}`, 'port-restricted')
    .option('--b <type>', "b's NAT (same types)", 'port-restricted')
    .option('--matrix', 'every unordered pair of types, each with itself too (15 pairs)')
    .option('--switch', 'the move to direct: a pair relayed while the direct path is blocked, unblocked mid-transfer')
    .option('--reps <n>', 'runs of each pair; the worst is reported', '1')
    .option('--random <n>', 'n pairs drawn from a seeded generator: both NAT types and the access rate (10-100 Mbit/s)')
    .option('--seed <n>', 'seed of --random (printed; default: from the clock)')
    .option('--rate <mbit>', "a's and b's access links, Mbit/s", '50')
    .option('--seconds <n>', 'how long a connection may take before it counts as failed (and the transfer, at most 5)', '10')
    .option('--json', 'print the result as JSON')
    .action(async (f: { a: string; b: string; matrix?: boolean; switch?: boolean; random?: string; seed?: string; reps: string; rate: string; seconds: string; json?: boolean }) => {
      const { formatNat, natMatrix, runNatPair, runNatSwitch, summarizeNat } = await import('../lab/nat-lab.js')
      if (f.switch) {
        const seconds = parsePositiveInt(f.seconds, '--seconds', 600)
        const rateMbit = parsePositiveInt(f.rate, '--rate', 10_000)
        requireRoot()
        const r = await withInterrupts((signal) => runNatSwitch({ seconds, rateMbit, signal, progress }))
        print(f.json ? JSON.stringify(r, null, 2) : Object.entries(r).map(([k, v]) => `${k.padEnd(12)} ${String(v)}`).join('\n'))
        return
      }
      const type = (v: string, flag: string): NatType => {
        if (!(NAT_TYPES as readonly string[]).includes(v)) throw new LabSpecError(`${flag} must be one of ${NAT_TYPES.join(', ')}`)
        return v as NatType
      }
      if (f.random !== undefined) {
        const n = parsePositiveInt(f.random, '--random', 1000)
        const seed = f.seed !== undefined ? parsePositiveInt(f.seed, '--seed', 2 ** 31) : Date.now() % 2 ** 31
        const seconds = parsePositiveInt(f.seconds, '--seconds', 600)
        requireRoot()
        progress(`seed ${seed}`)
        const { seededRandom } = await import('../lab/random.js')
        const rnd = seededRandom(seed)
        const pick = () => NAT_TYPES[Math.floor(rnd() * NAT_TYPES.length)] as NatType
        const draws = Array.from({ length: n }, () => ({ a: pick(), b: pick(), rateMbit: 10 + Math.floor(rnd() * 91) }))
        const results: NatPairResult[] = []
        await withInterrupts(async (signal) => {
          for (const d of draws) results.push(await runNatPair({ ...d, seconds, signal, progress }))
        })
        const summary = summarizeNat(seed, results)
        print(f.json ? JSON.stringify({ ...summary, results }, null, 2) : `${formatNat(results)}\n${Object.entries(summary).map(([k, v]) => `${k.padEnd(22)} ${String(v)}`).join('\n')}`)
        return
      }
      const pairs: [NatType, NatType][] = f.matrix ? natMatrix() : [[type(f.a, '--a'), type(f.b, '--b')]]
      const reps = parsePositiveInt(f.reps, '--reps', 100)
      const rateMbit = parsePositiveInt(f.rate, '--rate', 10_000)
      const seconds = parsePositiveInt(f.seconds, '--seconds', 600)
      requireRoot()
      const results: NatPairResult[] = []
      await withInterrupts(async (signal) => {
        for (const [a, b] of pairs) {
          let worst: NatPairResult | null = null
          for (let i = 0; i < reps; i++) {
            const r = await runNatPair({ a, b, seconds, rateMbit, signal, progress })
            if (worst === null || !r.connected || (worst.connected && (r.connect_ms ?? 0) > (worst.connect_ms ?? 0))) worst = r
          }
          if (worst) results.push(worst)
        }
      })
      const out = f.matrix ? results : results[0]
      print(f.json ? JSON.stringify(out, null, 2) : formatNat(results))
    })

  lab
    .command('roam')
    .summary('a client with two uplinks moves from one to the other mid-transfer, as a laptop leaving Wi-Fi')
    .option('--seconds <n>', 'the transfer; the move is half-way', '10')
    .option('--rate <mbit>', 'each uplink, Mbit/s', '50')
    .option('--reps <n>', 'runs; the worst (longest gap, most resets) is reported', '1')
    .option('--json', 'print the result as JSON')
    .action(async (f: { seconds: string; rate: string; reps: string; json?: boolean }) => {
      const seconds = parsePositiveInt(f.seconds, '--seconds', 600)
      const rateMbit = parsePositiveInt(f.rate, '--rate', 10_000)
      const reps = parsePositiveInt(f.reps, '--reps', 100)
      requireRoot()
      const { formatRoam, runRoam } = await import('../lab/nat-lab.js')
      const runs = await withInterrupts(async (signal) => {
        const out = []
        for (let i = 0; i < reps; i++) out.push(await runRoam({ seconds, rateMbit, signal, progress }))
        return out
      })
      const worst = runs.reduce((w, r) => (r.resets > w.resets || (r.resets === w.resets && (r.gap_ms ?? Infinity) > (w.gap_ms ?? Infinity)) ? r : w))
      print(f.json ? JSON.stringify(reps > 1 ? { ...worst, gaps_ms: runs.map((r) => r.gap_ms) } : worst, null, 2) : formatRoam(worst))
    })

  lab
    .command('pair')
    .summary('two daemons over one link: iperf3 and ping through the tunnel')
    .option('--rate <rate>', 'link rate each way, e.g. 100mbit (default: unlimited)')
    .option('--delay <time>', 'one-way delay each way, e.g. 10ms (default: none)')
    .option('--loss <pct>', 'random loss each way, e.g. 1% (default: none)')
    .option('--seconds <n>', 'transfer length', '10')
    .option('--streams <n>', 'parallel TCP streams (iperf3 -P)', '1')
    .option('--json', 'print the result as JSON')
    .action(async (f: PairFlags) => {
      const opts = {
        rate: f.rate === undefined ? null : parseRate(f.rate, '--rate'),
        delay: f.delay === undefined ? 0 : parseDelay(f.delay, '--delay'),
        loss: f.loss === undefined ? 0 : parseLoss(f.loss, '--loss'),
        seconds: parsePositiveInt(f.seconds, '--seconds', 3600),
        streams: parsePositiveInt(f.streams, '--streams', 128),
      }
      requireRoot()
      const { runPair } = await import('../lab/pair.js')
      const r = await withInterrupts((signal) => runPair({ ...opts, signal, progress }))
      if (f.json) print(JSON.stringify(r, null, 2))
      else printPair(r)
    })

  lab
    .command('bond')
    .summary('a client with several uplinks to a gateway: QuicEther alone per uplink, bonded, cut (or --raw links)')
    .description(
      'Builds a client with one emulated link per --uplink to a gateway (each link its own path: own\n' +
        'interfaces and addresses), measures QuicEther over each uplink alone, then bonded over all of\n' +
        'them (iperf3 TCP through the tunnel: --direction up is client → gateway, down is gateway →\n' +
        'client at each uplink\'s download rate, both runs the two at once), optionally cutting one\n' +
        'uplink mid-way. Every figure in the output says which direction it is for.\n' +
        'With --raw: the links alone, no QuicEther, one iperf3 flow per link in parallel.',
    )
    .option('--uplink <spec>', '[NAME=]RATE[,DELAY[,LOSS]], one per uplink: 50mbit,10ms,1% or 50/10mbit,20ms (up/down)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--mode <mode>', 'aggregate, failover, redundant or weighted', 'aggregate')
    .option('--streams <n>', 'parallel TCP streams (iperf3 -P)', '1')
    .option('--seconds <n>', 'length of each transfer (each single-uplink run and the bonded run)', '10')
    .option('--cut <N@T>', 'cut uplink N (counting from 1) T seconds into the bonded transfer, e.g. 2@5')
    .option('--direction <dir>', 'up (client → gateway), down (gateway → client) or both at once', 'up')
    .option('--jitter <N@MS>', "uplink N's one-way delay wanders between +0 and +MS ms over time, never reordering (repeatable; up/down: 2@10/5ms)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--vary <N>', "uplink N's rate moves every 2-5 s to 0.5-1.5× its rate, each direction on its own (repeatable, or 1,3)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--seed <n>', 'seed of --jitter and --vary (printed; default: from the clock)')
    .option('--raw', 'the emulated links alone, no QuicEther: each must reach 95% of its rate')
    .option('--mptcp', 'also measure kernel MPTCP over the same links (needs mptcpize)')
    .option('--congestion <cc>', 'TCP congestion control of the iperf3 flows (iperf3 -C)', 'cubic')
    .option('--tcp-buffer <size>', "the most a TCP socket may buffer in the client and the gateway (tcp_wmem/tcp_rmem max, e.g. 32M; default: the kernel's, 4 MiB to send)")
    .option('--json', 'print the result as JSON')
    .action(async (f: BondFlags) => {
      const { parseCongestion, parseCut, parseJitters, parseMode, parseSeed, parseTcpBuffer, parseUplinks, parseVary, withJitter } = await import('../lab/bond-spec.js')
      let uplinks = parseUplinks(f.uplink)
      const seconds = parsePositiveInt(f.seconds, '--seconds', 3600)
      const streams = parsePositiveInt(f.streams, '--streams', 128)
      const congestion = parseCongestion(f.congestion)
      const tcpBuffer = f.tcpBuffer === undefined ? undefined : parseTcpBuffer(f.tcpBuffer)
      if (f.raw && tcpBuffer !== undefined) throw new LabSpecError('--tcp-buffer: applies to the tunnelled runs, not --raw')
      const mode = parseMode(f.mode)
      const { parseDirection } = await import('../lab/bond-direction.js')
      const direction = parseDirection(f.direction)
      if (f.raw && f.cut !== undefined) throw new LabSpecError('--cut: a cut needs the bonded run; --raw measures the links alone')
      const cut = f.cut === undefined ? null : parseCut(f.cut, uplinks.length, seconds)
      if (f.mptcp && uplinks.length < 2) throw new LabSpecError('--mptcp: MPTCP needs two or more uplinks')
      const jitters = parseJitters(f.jitter, uplinks.length)
      const vary = parseVary(f.vary, uplinks.length)
      // One seed for the jitter and the variation: given, or drawn and printed so the run replays.
      const seeded = jitters.length > 0 || vary.length > 0 || f.seed !== undefined
      const seed = f.seed !== undefined ? parseSeed(f.seed) : Date.now() % 2 ** 31
      uplinks = withJitter(uplinks, jitters)
      // Shown with the figures, so a run can be told apart and replayed from its JSON.
      const effects = seeded ? { effects: { seed, vary: vary.map((i) => i + 1), jitter: jitters.map((j) => ({ uplink: j.index + 1, up_ms: j.up, down_ms: j.down })) } } : {}
      requireRoot()
      if (seeded) progress(`seed ${seed}`)
      const { runBond, runRaw } = await import('../lab/bond.js')
      const { renderBond, renderRaw, emulationText, fmt } = await import('../lab/bond-report.js')
      // vary and seed ride along as BondEffects: bond.ts reads them (optional fields of its options).
      const more: BondEffects = seeded ? { vary, seed } : {}
      if (f.raw) {
        const r = await withInterrupts((signal) => runRaw({ uplinks, streams, seconds, congestion, direction, progress, ...more, signal }))
        print(f.json ? JSON.stringify({ ...effects, results: r }, null, 2) : r.map(renderRaw).join('\n\n'))
        return
      }
      const all = await withInterrupts((signal) => runBond({ uplinks, mode, streams, seconds, cut, congestion, ...(tcpBuffer !== undefined ? { tcpBuffer } : {}), direction, mptcp: f.mptcp ?? false, progress, ...more, signal }))
      if (f.json) {
        print(JSON.stringify({ ...effects, ...all }, null, 2))
        return
      }
      print(all.results.map((r) => renderBond(r, uplinks)).join('\n\n'))
      print(`emulation        ${emulationText(all.emulation)}`)
      const m = all.results[0]?.mptcp
      if (m) {
        print()
        print(`kernel MPTCP   ${fmt(m.total_mbit)} Mbit/s over ${m.links_used} link(s) (${m.subflows_joined} subflow(s) joined to ${m.connections} connection(s)); ` +
          `efficiency ${fmt(m.efficiency, 3)} of ${fmt(m.tcp_sum_mbit)} Mbit/s plain TCP over each link` +
          `${cut ? `; dip ${m.dip_ms ?? '—'} ms, ${m.resets} reset(s)` : ''}${m.error ? `; iperf3 failed: ${m.error}` : ''}`)
      }
    })

  lab
    .command('exit')
    .summary('a client bonds its uplinks to a gateway that is its internet exit: throughput, leaks, fallback')
    .description(
      'Builds a client with one emulated link per --uplink to a gateway that offers an internet exit\n' +
        '(0.0.0.0/0) and reaches an "internet" namespace by one more link. The client uses it with\n' +
        'exit-node and bonds every uplink toward it. Measures iperf3 to the internet host\'s own\n' +
        `address (${'198.51.100.10'}) through the exit, the same transfer to the gateway's overlay address,\n` +
        'counts packets to the internet host that left the client outside the tunnel (leaks), then\n' +
        'kills the gateway and times the fallback to the client\'s own default route.',
    )
    .option('--uplink <spec>', '[NAME=]RATE[,DELAY[,LOSS]], one per uplink (default: 50mbit,10ms and 100mbit,20ms)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--streams <n>', 'parallel TCP streams (iperf3 -P)', '4')
    .option('--seconds <n>', 'length of each transfer', '10')
    .option('--congestion <cc>', 'TCP congestion control of the iperf3 flows (iperf3 -C)', 'cubic')
    .option('--reps <n>', 'transfers of each kind (internet, tunnel) in ABBA order after a warm-up', '2')
    .option('--random <n>', 'n uplink mixes drawn from a seeded generator (1-4 uplinks, 5-150 Mbit/s, 2-60 ms, some lossy); reports the worst')
    .option('--seed <n>', 'seed of --random (printed; default: from the clock)')
    .option('--json', 'print the result as JSON')
    .action(async (f: { uplink: string[]; streams: string; seconds: string; congestion: string; reps: string; random?: string; seed?: string; json?: boolean }) => {
      const reps = parsePositiveInt(f.reps, '--reps', 20)
      const { parseCongestion, parseUplinks } = await import('../lab/bond-spec.js')
      const seconds = parsePositiveInt(f.seconds, '--seconds', 3600)
      const streams = parsePositiveInt(f.streams, '--streams', 128)
      const congestion = parseCongestion(f.congestion)
      const { runExit, renderExit, drawExitMixes, summarizeExits, renderExitSummary } = await import('../lab/gateways.js')
      if (f.random !== undefined) {
        if (f.uplink.length > 0) throw new LabSpecError('--random draws the uplinks: leave out --uplink')
        const n = parsePositiveInt(f.random, '--random', 100)
        const seed = f.seed !== undefined ? parsePositiveInt(f.seed, '--seed', 2 ** 31) : Date.now() % 2 ** 31
        requireRoot()
        progress(`seed ${seed}`)
        const { seededRandom } = await import('../lab/random.js')
        const mixes = drawExitMixes(seededRandom(seed), n)
        const runs = []
        for (const mix of mixes) {
          progress(`mix ${runs.length + 1}/${n}: ${mix.join(' + ')}`)
          const r = await withInterrupts((signal) => runExit({ uplinks: parseUplinks(mix), streams, seconds, congestion, reps, signal, progress }))
          runs.push({ ...r, mix })
        }
        const s = summarizeExits(seed, runs)
        print(f.json ? JSON.stringify(s, null, 2) : renderExitSummary(s))
        return
      }
      const uplinks = parseUplinks(f.uplink.length > 0 ? f.uplink : ['50mbit,10ms', '100mbit,20ms'])
      requireRoot()
      const r = await withInterrupts((signal) => runExit({ uplinks, streams, seconds, congestion, reps, signal, progress }))
      print(f.json ? JSON.stringify(r, null, 2) : renderExit(r))
    })

  lab
    .command('subnet-failover')
    .summary('two gateways for one LAN; the preferred one dies: the gap in pings and a TCP stream')
    .description(
      'Builds a client, two gateways advertising one LAN (gw-a priority 10, gw-b priority 20) and a\n' +
        'LAN host behind both. The client pings the LAN host every 20 ms and streams TCP to it; gw-a\n' +
        'dies mid-way (its daemon killed, its links down). Prints the longest gap and the resets.',
    )
    .option('--seconds <n>', 'length of the stream', '10')
    .option('--json', 'print the result as JSON')
    .action(async (f: { seconds: string; json?: boolean }) => {
      const seconds = parsePositiveInt(f.seconds, '--seconds', 600)
      if (seconds < 4) throw new LabSpecError('--seconds: at least 4 (the death comes at a third of the run)')
      requireRoot()
      const { runSubnetFailover, renderFailover } = await import('../lab/gateways.js')
      const r = await withInterrupts((signal) => runSubnetFailover({ seconds, killAtS: Math.round(seconds / 3), signal, progress }))
      print(f.json ? JSON.stringify(r, null, 2) : renderFailover(r))
    })

  lab
    .command('policy')
    .summary('a policy enforced by real daemons: 30+ flows (TCP, UDP, ICMP; v4 and v6) against what it says, and a reload')
    .option('--rules <n>', 'rules drawn from a seeded generator that match nothing here, put in front of the real ones', '0')
    .option('--seed <n>', 'seed of those rules (printed; default: from the clock)')
    .option('--json', 'print the result as JSON')
    .action(async (f: { rules: string; seed?: string; json?: boolean }) => {
      const rules = Number(f.rules) === 0 ? 0 : parsePositiveInt(f.rules, '--rules', 10_000)
      const seed = f.seed === undefined ? Date.now() % 2 ** 31 : parsePositiveInt(f.seed, '--seed', 2 ** 31)
      requireRoot()
      const { runPolicyLab, renderPolicyLab } = await import('../lab/policy.js')
      progress(`seed ${seed}`)
      const r = await withInterrupts((signal) => runPolicyLab({ rules, seed, signal, progress }))
      print(f.json ? JSON.stringify(r, null, 2) : renderPolicyLab(r))
      if (r.mismatches.length > 0 || r.reload_dropped_allowed > 0) process.exitCode = 1
    })

  lab
    .command('up')
    .summary('build a topology from a scenario file and leave it running')
    .argument('<scenario>', 'scenario YAML (see schemas/lab-scenario.schema.json)')
    .option('--no-daemons', 'build the network only; start no quicether daemons')
    .option('--json', 'print what was built as JSON')
    .action(async (file: string, f: { daemons: boolean; json?: boolean }) => {
      const { loadScenario } = await import('../lab/scenario.js')
      const scenario = await loadScenario(file)
      requireRoot()
      const { labUp } = await import('../lab/up.js')
      const r = await withInterrupts((signal) => labUp(scenario, { daemons: f.daemons, signal, progress }))
      if (f.json) print(JSON.stringify(r, null, 2))
      else printUp(r, scenario.name)
    })

  lab
    .command('ui')
    .summary("forward a lab node's web UI and metrics to this host's loopback, and print their addresses")
    .argument('<node>', 'a node of the run that runs a daemon')
    .option('--run <id>', 'the run (default: the only one up)')
    .option('--port <n>', 'host port for the UI (default: any free one; metrics take any free one)')
    .action(async (node: string, f: { run?: string; port?: string }) => {
      if (f.run !== undefined && !isRunId(f.run)) throw new LabSpecError(`--run: '${f.run}' is not a run id (4 hex digits, as in qel-3f2a-…)`)
      const hostUiPort = f.port === undefined ? 0 : parsePositiveInt(f.port, '--port', 65535)
      requireRoot()
      const { readUpResult } = await import('../lab/up.js')
      const { openNodeFaces } = await import('../lab/forward.js')
      const { LAB_METRICS_PORT, LAB_UI_PORT } = await import('../lab/nodeconfig.js')
      const up = await readUpResult(f.run ?? null)
      const n = up.nodes.find((x) => x.name === node)
      if (!n) throw new LabSpecError(`run ${up.runId} has no node '${node}' (it has ${up.nodes.map((x) => x.name).join(', ')})`)
      if (!n.daemon) throw new LabSpecError(`'${node}' runs no daemon: it has no UI`)
      await withInterrupts(async (signal) => {
        const faces = await openNodeFaces({ netns: n.netns, node, stateDir: `${up.dir}/${node}`, uiPort: LAB_UI_PORT, metricsPort: LAB_METRICS_PORT, hostUiPort })
        print(`${node}'s web UI:   ${faces.ui}`)
        print(`${node}'s metrics:  ${faces.metrics}`)
        print(`forwarded into ${n.netns} from this host's loopback; Ctrl-C stops`)
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
        await faces.close()
      }).catch((err: Error) => {
        if (err.name !== 'LabAbortedError') throw err
      })
    })

  lab
    .command('down')
    .summary('remove everything lab runs left: processes, namespaces, tables, temp dirs')
    .option('--run <id>', 'only this run (the 4 hex digits in qel-<id>-…)')
    .option('--json', 'print what was removed as JSON')
    .action(async (f: { run?: string; json?: boolean }) => {
      if (f.run !== undefined && !isRunId(f.run)) throw new LabSpecError(`--run: '${f.run}' is not a run id (4 hex digits, as in qel-3f2a-…)`)
      requireRoot()
      const { labDown } = await import('../lab/teardown.js')
      const r = await labDown({ runId: f.run ?? null })
      if (f.json) print(JSON.stringify(r, null, 2))
      else printDown(r)
    })
}

function printPair(r: PairResult): void {
  const link = [
    r.link.rate_mbit === null ? 'unlimited' : `${r.link.rate_mbit} Mbit/s`,
    r.link.delay_ms ? `${r.link.delay_ms} ms each way` : null,
    r.link.loss_pct ? `${r.link.loss_pct}% loss` : null,
  ]
    .filter(Boolean)
    .join(', ')
  const rows: [string, string][] = [
    ['link', link],
    ['throughput', `${r.mbit} Mbit/s (iperf3 TCP -P${r.streams}, ${r.seconds} s)`],
    ['retransmits', String(r.retransmits)],
    ['RTT over the tunnel', `p50 ${r.rtt_ms_p50} ms, p99 ${r.rtt_ms_p99} ms (${r.ping_received}/${r.ping_sent} replies)`],
    ['daemon CPU', `${r.cpu_s_per_gbit} s per Gbit (${r.cpu_s} s, both daemons)`],
    ['overlay ready after', `${r.overlay_ready_ms} ms`],
  ]
  const w = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v] of rows) print(`${k.padEnd(w)}  ${v}`)
}

function printUp(r: UpResult, name: string | null): void {
  print(`lab run ${r.runId} is up${name ? `: ${name}` : ''} (files in ${r.dir})`)
  print()
  const nw = Math.max(...r.nodes.map((n) => n.name.length))
  const sw = Math.max(...r.nodes.map((n) => n.netns.length))
  for (const n of r.nodes) {
    const under = n.underlay.map((u) => `${u.ipv4} (${u.link})`).join(', ')
    print(`  ${n.name.padEnd(nw)}  ${n.netns.padEnd(sw)}  ${n.overlay ? `overlay ${n.overlay.ipv4}  ` : ''}${under || 'no links'}`)
  }
  print()
  print('Reach the nodes:')
  const first = r.nodes[0]
  if (first) print(`  ip netns exec ${first.netns} bash    # a shell in ${first.name}`)
  const withOverlay = r.nodes.filter((n) => n.overlay)
  const [x, y] = withOverlay
  if (x && y?.overlay) {
    print(`  ip netns exec ${x.netns} ping ${y.overlay.ipv4}    # ${x.name} → ${y.name} over the tunnel`)
  } else {
    // The first link's a end can always reach its b end (with NAT, a is the inside).
    const l = r.links[0]
    const a = r.nodes.find((n) => n.name === l?.a)
    const to = r.nodes.find((n) => n.name === l?.b)?.underlay.find((u) => u.link === l?.name)
    if (a && to) print(`  ip netns exec ${a.netns} ping ${to.ipv4}    # ${a.name} → ${l?.b} over link ${l?.name}`)
  }
  if (x?.log) print(`  tail -f ${x.log}    # ${x.name}'s daemon log`)
  const watched = r.nodes.filter((n) => n.daemon)
  if (watched.length) {
    print()
    print("Each daemon's web UI and metrics listen on its namespace's loopback (UI 127.0.0.1:9587, metrics :9586).")
    print("From this host, forward one and print its addresses (the UI's with its token):")
    for (const n of watched) print(`  quicether lab ui ${n.name} --run ${r.runId}`)
    print(`  ip netns exec ${watched[0]!.netns} curl -s http://127.0.0.1:9586/metrics    # or read metrics inside`)
  }
  print(`Tear down: quicether lab down --run ${r.runId}   (or: quicether lab down, for every run)`)
}

function printDown(r: TeardownReport): void {
  const total = r.processes.length + r.namespaces.length + r.links.length + r.tables.length + r.dirs.length
  if (total === 0) {
    print('nothing to remove: no lab leftovers')
    return
  }
  if (r.processes.length) print(`stopped ${r.processes.length} process(es): ${r.processes.join(' ')}`)
  if (r.namespaces.length) print(`deleted ${r.namespaces.length} namespace(s): ${r.namespaces.join(' ')}`)
  if (r.links.length) print(`deleted host link(s): ${r.links.join(' ')}`)
  if (r.tables.length) print(`deleted nft table(s): ${r.tables.join(' ')}`)
  if (r.dirs.length) print(`removed ${r.dirs.join(' ')}`)
}
