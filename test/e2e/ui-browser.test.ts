/**
 * The web UI in a real browser (Debian's chromium, driven by playwright-core)
 * against a lab mesh: "home" bonds two uplinks to "gw"; "laptop" hangs off gw.
 * The page, reached from the host's loopback through `lab ui`'s forward,
 * shows the nodes and tunnels, a tunnel's rate rising while iperf3 runs, and
 * the lte uplink turning red once it is cut. Without the token it shows no
 * data. Screenshots go to test-artifacts/ui/ (with the first-paint figures in
 * timings.json: measured, not asserted). Needs root, the compiled tree and
 * chromium; the lab is torn down even when a check fails.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { loadScenario } from '../../src/lab/scenario.js'
import { labUp } from '../../src/lab/up.js'
import { labDown } from '../../src/lab/teardown.js'
import { openNodeFaces } from '../../src/lab/forward.js'
import { LAB_METRICS_PORT, LAB_UI_PORT } from '../../src/lab/nodeconfig.js'
import { runIn, spawnIn, timeUntil } from '../../src/lab/exec.js'

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p))
if (process.getuid?.() !== 0) {
  t.plan(0, 'needs root (network namespaces)')
  process.exit(0)
}
if (!CHROMIUM) {
  t.plan(0, 'chromium is not installed (scripts/setup.sh installs it)')
  process.exit(0)
}

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url))
const fixture = fileURLToPath(new URL('./lab-fixtures/ui-bond.yaml', import.meta.url))

t.test('the UI shows the mesh, live rates and a cut uplink; no token, no data', async (t) => {
  await mkdir(ARTIFACTS, { recursive: true })
  const up = await labUp(await loadScenario(fixture), { daemons: true })
  t.teardown(() => labDown({ runId: up.runId }).then(() => undefined))
  const node = (name: string) => up.nodes.find((n) => n.name === name)!
  const home = node('home')
  const gw = node('gw')

  // The daemon writes its UI token as the UI starts.
  t.ok(await timeUntil(async () => existsSync(`${up.dir}/home/ui.token`), 15_000, 100) !== null, 'home\'s UI started')
  const faces = await openNodeFaces({ netns: home.netns, node: 'home', stateDir: `${up.dir}/home`, uiPort: LAB_UI_PORT, metricsPort: LAB_METRICS_PORT })
  t.teardown(() => faces.close())
  // Both tunnels from home: to gw (bonded) and, through discovery, to laptop (or it is shown down).
  t.ok(await timeUntil(async () => (await runIn(home.netns, 'ping', ['-n', '-c', '1', '-W', '1', gw.overlay!.ipv4], { allowFail: true })).code === 0, 20_000, 250) !== null, 'home → gw over the tunnel')

  // The bond's uplinks are home's interfaces on the two links ("@fiber", "@lte" in the scenario).
  const ifOn = async (link: string) => {
    const addr = home.underlay.find((u) => u.link === link)!.ipv4
    const name = /^\d+:\s+(\S+)\s+inet /m.exec((await runIn(home.netns, 'ip', ['-o', '-4', 'addr', 'show', 'to', addr])).stdout)?.[1]
    if (!name) throw new Error(`no interface of home has ${addr}`)
    return name
  }
  const lte = await ifOn('lte')
  const fiber = await ifOn('fiber')

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] })
  t.teardown(() => browser.close())

  await t.test('no token: the page holds no data, and the API answers 401', async (t) => {
    const page = await browser.newPage()
    await page.goto(faces.ui.replace(/#.*$/, ''))
    await page.waitForSelector('#conn.denied')
    t.equal(await page.locator('#peers tbody tr').count(), 0, 'no peer rows')
    t.match(await page.locator('#problems').textContent(), /No token/)
    const status = await page.evaluate(async () => (await fetch('/api/view')).status)
    t.equal(status, 401)
    await page.screenshot({ path: `${ARTIFACTS}no-token.png` })
    await page.close()
  })

  const page: Page = await browser.newPage({ viewport: { width: 1400, height: 1100 } })
  const errors: string[] = []
  page.on('pageerror', (e) => errors.push(e.message))
  const t0 = Date.now()
  await page.goto(faces.ui)
  await page.waitForFunction(() => ((globalThis as unknown as { qe?: { views: number } }).qe?.views ?? 0) >= 1)
  const loadedMs = Date.now() - t0
  const paint = await page.evaluate(() => ({
    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    firstView: (globalThis as unknown as { qe: { firstViewMs: number } }).qe.firstViewMs,
  }))

  await t.test('the topology: this node, its peers, and the tunnels coloured by health', async (t) => {
    await page.waitForSelector('#tunnels tr[data-peer="gw"][data-health="up"]', { timeout: 15_000 })
    await page.waitForFunction(() => (globalThis as unknown as { qe: { cy: unknown } }).qe.cy !== null)
    const graph = await page.evaluate(() => {
      const cy = (globalThis as unknown as { qe: { cy: { nodes(): { map<T>(f: (n: { data(k: string): string }) => T): T[] }; edges(): { map<T>(f: (n: { data(k: string): string }) => T): T[] } } } }).qe.cy
      return { nodes: cy.nodes().map((n) => n.data('label')).sort(), edges: cy.edges().map((e) => `${e.data('peer')}:${e.data('health')}:${e.data('kind')}`).sort() }
    })
    t.same(graph.nodes, ['gw', 'home', 'laptop'], 'home, and both its peers')
    t.ok(graph.edges.includes('gw:up:lan') || graph.edges.includes('gw:up:direct'), `the tunnel to gw is up and labelled (${graph.edges.join(', ')})`)
    t.match(await page.locator('#node-name').textContent(), 'home')
    t.match(await page.locator('#peers tr[data-peer="gw"] .fp').textContent(), /^SHA256:/, 'key fingerprints')
    t.match(await page.locator('#config').textContent(), /generation 1/)
    // The second path comes up a moment after the tunnel does: wait for its row, then count.
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#bonds tr[data-uplink]').length >= 2, undefined, { timeout: 15_000 }).catch(() => undefined)
    t.equal(await page.locator('#bonds tr[data-uplink]').count(), 2, 'both uplinks of the bond')
    await page.screenshot({ path: `${ARTIFACTS}topology.png`, fullPage: true })
  })

  await t.test("a tunnel's live rate rises while data moves, and the uplinks share it", async (t) => {
    const server = spawnIn(gw.netns, 'iperf3', ['-s', '-1', '-B', gw.overlay!.ipv4], { runId: up.runId, stdio: 'ignore' })
    t.teardown(() => void server.kill())
    await new Promise((r) => setTimeout(r, 500))
    const client = spawnIn(home.netns, 'iperf3', ['-c', gw.overlay!.ipv4, '-t', '25', '-P', '2'], { runId: up.runId, stdio: 'ignore' })
    t.teardown(() => void client.kill())
    const rate = () => page.evaluate(() => (globalThis as unknown as { qe: { last: { peers: { name: string; outBps: number }[] } } }).qe.last.peers.find((p) => p.name === 'gw')?.outBps ?? 0)
    t.ok(await timeUntil(async () => (await rate()) > 5e6, 15_000, 250) !== null, 'the view reports more than 5 Mbit/s to gw')
    const shown = await page.locator('#tunnels tr[data-peer="gw"] .rate-out').textContent()
    t.match(shown, /Mbit\/s$/, `the table shows it (${shown})`)
    const views = await page.evaluate(() => (globalThis as unknown as { qe: { views: number } }).qe.views)
    await page.waitForFunction((n) => (globalThis as unknown as { qe: { views: number } }).qe.views >= n + 2, views)
    t.pass('new views keep arriving (about one a second)')
    const shares = await page.evaluate(() => (globalThis as unknown as { qe: { last: { peers: { name: string; paths: { uplink: string; share: number }[] }[] } } }).qe.last.peers.find((p) => p.name === 'gw')!.paths.map((p) => p.share))
    t.ok(shares.every((s) => s > 0.05), `both uplinks carry a share (${shares.map((s) => s.toFixed(2)).join(', ')})`)
    await page.screenshot({ path: `${ARTIFACTS}traffic.png`, fullPage: true })

    // The metrics say the same, read through the same kind of forward.
    const metrics = await (await fetch(faces.metrics)).text()
    t.match(metrics, /^quicether_peer_up\{peer="gw"\} 1$/m, 'metrics: gw is up')
    t.match(metrics, new RegExp(`^quicether_path_up\\{peer="gw",uplink="${lte}"\\} 1$`, 'm'), 'metrics: the lte path is alive')

    // Cut lte on home's side: its row turns red.
    await runIn(home.netns, 'ip', ['link', 'set', lte, 'down'])
    const cutAt = Date.now()
    await page.waitForSelector(`#bonds tr[data-uplink="${lte}"][data-alive="false"].dead`, { timeout: 15_000 })
    const shownAfterMs = Date.now() - cutAt
    const color = await page.locator(`#bonds tr[data-uplink="${lte}"] td.uplink`).evaluate((e) => (globalThis as unknown as { getComputedStyle(x: unknown): { color: string } }).getComputedStyle(e).color)
    t.equal(color, 'rgb(214, 40, 40)', 'the cut uplink is drawn red')
    t.equal(await page.locator(`#bonds tr[data-uplink="${fiber}"][data-alive="true"]`).count(), 1, 'fiber stays alive')
    const health = await page.evaluate(() => {
      const qe = (globalThis as unknown as { qe: { cy: { edges(): { map<T>(f: (e: { data(k: string): string }) => T): T[] } } } }).qe
      return qe.cy.edges().map((e) => `${e.data('peer')}:${e.data('health')}`)
    })
    t.ok(health.includes('gw:degraded'), `the tunnel to gw is drawn degraded (${health.join(', ')})`)
    await page.screenshot({ path: `${ARTIFACTS}uplink-cut.png`, fullPage: true })
    await writeFile(`${ARTIFACTS}timings.json`, JSON.stringify({ loaded_ms: loadedMs, first_contentful_paint_ms: paint.fcp, first_view_ms: paint.firstView, cut_shown_after_ms: shownAfterMs }, null, 2) + '\n')
    t.comment(`first contentful paint ${paint.fcp?.toFixed(0)} ms, first data ${paint.firstView.toFixed(0)} ms, cut shown after ${shownAfterMs} ms`)
  })
  t.same(errors, [], 'no script errors on the page')
})
