// A ts-node transpiler backed by esbuild, for the test runner (scripts/run-tests.mjs points
// TS_NODE_PROJECT at scripts/tsconfig.tap.json). With TypeScript's own transpiler ts-node spends
// ~0.7 CPU s more per test file here (3.7 vs 3.0 s for test/config/render.test.ts), and tap starts
// one process per file. Types are still checked, by `npm run typecheck`; this only strips them.
// esbuild is already installed (it is what tsx, a dev dependency, runs on).
/* eslint-disable no-undef, @typescript-eslint/no-require-imports -- CommonJS: ts-node require()s its transpiler */
const { transformSync } = require('esbuild')

exports.create = () => ({
  transpile(input, { fileName }) {
    const r = transformSync(input, { loader: 'ts', format: 'esm', target: 'es2022', sourcemap: 'external', sourcefile: fileName })
    return { outputText: r.code, sourceMapText: r.map }
  },
})
