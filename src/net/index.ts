/**
 * The network vocabulary's public face: families, addresses, prefixes and the
 * kernel's address/route/rule records, and the one `ipaddr.js` wrapper.
 * A leaf: it imports nothing of QuicEther's but the error root.
 */
export type * from './types.js'
export { InvalidAddressError } from './errors.js'
export {
  WIDTH, parseAddress, parsePrefix, parseCidr, canonicalCidr, canonicalIp, familyOf, ipToBytes, bytesToIp, isLinkLocal, isDialable,
  prefixContains, prefixesOverlap, findOverlaps, clearIpCaches, type NetParseCode, type Parsed,
} from './ip.js'
