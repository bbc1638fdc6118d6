/**
 * A value as an error message shows it, whatever the config held. `String()`
 * throws on a mapping whose `toString` key is not a function (YAML can write
 * one), and prints `[object Object]` for any other mapping.
 */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`
  if (Array.isArray(v)) return 'a list'
  if (v !== null && typeof v === 'object') return 'a mapping'
  return String(v)
}
