/** Moved to `src/state/marks.ts`; this re-export goes once every importer points there. */
export * from '../state/marks.js'
