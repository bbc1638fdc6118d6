/** Limits that keep hostile input cheap. A real config is far inside all of them. */

/** Refuse text larger than this (bytes) before parsing. */
export const MAX_CONFIG_BYTES = 1024 * 1024
/** Deepest nesting of mappings and lists we accept; a real config needs about 6. */
export const MAX_DEPTH = 64
/** Nodes that aliases may expand to, in total. */
export const MAX_ALIAS_EXPANSION = 10_000
