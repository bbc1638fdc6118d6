/** Moved to `src/net/` and `src/config/syntax.ts`; this re-export goes once every importer points there. */
export { clearIpCaches as resetParseCaches } from '../net/index.js'
