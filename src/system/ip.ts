/** Moved to `src/net/` (the network vocabulary); this re-export goes once every importer points there. */
export { bytesToIp, canonicalCidr, canonicalIp, familyOf, ipToBytes, isLinkLocal, parseCidr } from '../net/ip.js'
