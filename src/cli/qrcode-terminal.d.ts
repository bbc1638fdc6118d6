/** Ambient types for qrcode-terminal 0.12 (CommonJS, untyped): only what src/cli/twofa.ts uses. */
declare module 'qrcode-terminal' {
  /** Renders `text` as a QR code in ANSI blocks (`small`: half-height, Unicode block characters) and hands it to `cb`, synchronously. */
  export function generate(text: string, opts: { small?: boolean }, cb: (qr: string) => void): void
  const qrcode: { generate: typeof generate }
  export default qrcode
}
