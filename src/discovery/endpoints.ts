/**
 * Where this node can be reached: the endpoints its record announces.
 *
 * In order: `discovery.public-address` (the operator said so), then the
 * listen address when it is a specific one, else every address of every
 * interface that is up, except loopback, IPv6 link-local (not dialable
 * without a scope), the overlay's own ranges and the overlay TUN itself.
 * Pure but for `os.networkInterfaces()`, which the caller may replace.
 */
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import type { Config, Endpoint } from '../config/types.js'
import { parseAddress, parsePrefix, prefixesOverlap, WIDTH } from '../net/index.js'

export type InterfaceTable = NodeJS.Dict<NetworkInterfaceInfo[]>

export function localEndpoints(config: Pick<Config, 'listen' | 'discovery' | 'network' | 'tun'>, port: number, interfaces: InterfaceTable = networkInterfaces()): Endpoint[] {
  const out: Endpoint[] = []
  const add = (host: string) => {
    if (!out.some((e) => e.host === host)) out.push({ host, port })
  }
  if (config.discovery.publicAddress !== null) add(config.discovery.publicAddress)
  const listen = config.listen.address
  if (listen !== '::' && listen !== '0.0.0.0') {
    add(listen)
    return out
  }
  const overlays = [config.network.overlay.ipv4, config.network.overlay.ipv6].map((c) => parsePrefix(c).value).filter((p) => p !== undefined)
  const v4Only = listen === '0.0.0.0'
  for (const [name, infos] of Object.entries(interfaces)) {
    if (name === config.tun.name || !infos) continue
    for (const info of infos) {
      if (info.internal) continue
      if (v4Only && info.family !== 'IPv4') continue
      const ip = parseAddress(info.address).value
      if (!ip) continue
      if (ip.family === 6 && /^fe[89ab]/i.test(ip.text)) continue
      const host = parsePrefix(`${ip.text}/${WIDTH[ip.family]}`).value
      if (host && overlays.some((o) => prefixesOverlap(o, host))) continue
      add(ip.text)
    }
  }
  return out
}
