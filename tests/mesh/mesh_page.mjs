// tests/mesh/mesh_page.mjs BASE EXPECTED_JSON SCREENSHOT
//
// Opens BASE/mesh (a collector's Zipkin port) in Debian's Chromium, headless,
// through playwright-core from tests/compat/node_modules, and checks:
//   - the page loads with no console error or warning, no page error, no failed
//     request and nothing asked of another origin (its CSP holds);
//   - every node and edge of /api/mesh is in the SVG (g.node, g.edge with data-*
//     attributes) and every edge in the table, with the figures of /api/mesh and
//     of /metrics (EXPECTED_JSON, written by check_api.py: requests, errors, p99);
//   - the labels shown agree with those figures, non-ASCII names read as sent;
//   - the window picker asks /api/mesh for the window chosen and keeps it in the URL.
// Then saves a full-page screenshot to SCREENSHOT. Exits 1 listing what failed.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.OUTRIDER_SRC}/tests/compat/package.json`);
const { chromium } = require('playwright-core');

const [base, expectedPath, screenshot] = process.argv.slice(2);
const expected = JSON.parse(readFileSync(expectedPath, 'utf8'));
const WAIT_MS = 120000; // readiness waits, not timing assertions
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};
const near = (a, b, rel, abs = 0) => Math.abs(a - b) <= Math.max(abs, rel * Math.abs(b));
const pct = (v) => (v === null ? '–' : (v * 100).toFixed(1) + '%');
const number = (text) => parseFloat(String(text));

async function readPage(page) {
  return page.evaluate(() => {
    const svg = document.getElementById('graph');
    return {
      window: svg.dataset.window,
      covered: Number(svg.dataset.coveredSeconds),
      nodes: [...svg.querySelectorAll('g.node')].map((g) => ({
        ...g.dataset,
        texts: [...g.querySelectorAll('text')].map((t) => t.textContent),
      })),
      edges: [...svg.querySelectorAll('g.edge')].map((g) => ({
        ...g.dataset,
        label: g.querySelector('text.label').textContent,
        href: g.querySelector('a').getAttribute('href'),
        path: g.querySelector('path.line').getAttribute('d'),
      })),
      rows: [...document.querySelectorAll('#edges tbody tr')].map((tr) => ({
        ...tr.dataset,
        cells: [...tr.cells].map((c) => c.textContent),
        href: tr.querySelector('a').getAttribute('href'),
        json: [...tr.querySelectorAll('a')].pop().getAttribute('href'),
      })),
      status: document.getElementById('status').textContent,
    };
  });
}

// The Zipkin UI links of two answers: the same search, each over the window ending when it was made.
function sameSearch(page, api) {
  const strip = (u) => {
    const url = new URL(u, 'http://x');
    const end = Number(url.searchParams.get('endTs'));
    url.searchParams.delete('endTs');
    return [url.toString(), end];
  };
  const [p, pEnd] = strip(page), [a, aEnd] = strip(api);
  return p === a && aEnd > 0 && Math.abs(pEnd - aEnd) < 120000;
}

function checkEdge(api, dom, row, metrics, covered) {
  const what = `${api.source} -> ${api.destination}`;
  if (!dom) return check(false, `${what}: not in the SVG`);
  check(dom.reporter === api.reporter, `${what}: data-reporter ${dom.reporter}, /api/mesh ${api.reporter}`);
  check(Number(dom.requests) === api.requests, `${what}: data-requests ${dom.requests}, /api/mesh ${api.requests}`);
  check(Number(dom.errors) === api.errors, `${what}: data-errors ${dom.errors}, /api/mesh ${api.errors}`);
  check(dom.successRate === (api.successRate === null ? '' : String(api.successRate)),
    `${what}: data-success-rate ${dom.successRate}, /api/mesh ${api.successRate}`);
  check(dom.p99Ms === (api.p99Ms === null ? '' : String(api.p99Ms)), `${what}: data-p99-ms ${dom.p99Ms}, /api/mesh ${api.p99Ms}`);
  // the page's rps is requests over the time its own answer covered
  check(near(Number(dom.rps) * covered, api.requests, 1e-4, 1e-3), `${what}: data-rps ${dom.rps} x ${covered} s is not ${api.requests}`);
  check(sameSearch(dom.href, api.zipkin), `${what}: link ${dom.href}, /api/mesh ${api.zipkin}`);
  check(near(number(dom.label), Number(dom.rps), 0.006, 0.006), `${what}: label "${dom.label}" shows another rps than ${dom.rps}`);
  check(dom.label.includes(pct(api.successRate)), `${what}: label "${dom.label}" lacks the success rate ${pct(api.successRate)}`);
  if (api.p99Ms !== null) {
    const shown = number(dom.label.split('p99 ')[1]);
    check(near(shown, api.p99Ms, 0.005, 0.0501), `${what}: label "${dom.label}" shows p99 ${shown}, /api/mesh ${api.p99Ms}`);
  }
  if (!row) return check(false, `${what}: not in the table`);
  const [, , rps, success, p99, requests, errors] = row.cells;
  check(requests === String(api.requests), `${what}: table requests ${requests}, /api/mesh ${api.requests}`);
  check(errors === String(api.errors), `${what}: table errors ${errors}, /api/mesh ${api.errors}`);
  check(success === pct(api.successRate), `${what}: table success ${success}, /api/mesh ${pct(api.successRate)}`);
  check(near(number(rps), Number(dom.rps), 0.006, 0.006), `${what}: table rps ${rps}, data-rps ${dom.rps}`);
  check(api.p99Ms === null ? p99 === '–' : near(number(p99), api.p99Ms, 0.005, 0.0501), `${what}: table p99 ${p99}, /api/mesh ${api.p99Ms}`);
  check(sameSearch(row.href, api.zipkin), `${what}: table link ${row.href}, /api/mesh ${api.zipkin}`);
  check(row.json === api.traces, `${what}: table JSON link ${row.json}, /api/mesh ${api.traces}`);
  if (metrics) {
    check(metrics.requests === api.requests && String(metrics.requests) === requests,
      `${what}: /metrics has ${metrics.requests} requests, the page ${requests}`);
    check(metrics.errors === api.errors && String(metrics.errors) === errors,
      `${what}: /metrics has ${metrics.errors} errors, the page ${errors}`);
    if (metrics.p99Ms !== null) {
      check(near(number(p99), metrics.p99Ms, 0.005, 0.0501), `${what}: /metrics p99 ${metrics.p99Ms}, the page ${p99}`);
    }
  }
}

function checkNode(api, dom) {
  const what = `node ${api.service}`;
  if (!dom) return check(false, `${what}: not in the SVG`);
  check(dom.name === api.name && dom.namespace === api.namespace && dom.kind === api.kind,
    `${what}: data-name/namespace/kind ${dom.name}/${dom.namespace}/${dom.kind}`);
  check(dom.texts[0] === api.name, `${what}: shows "${dom.texts[0]}", not its name "${api.name}"`);
  check(dom.versions === api.versions.map((v) => `${v.version}=${v.share}`).join(';'),
    `${what}: data-versions ${dom.versions}, /api/mesh ${JSON.stringify(api.versions)}`);
  for (const v of api.versions) {
    const shown = `${v.version} ${Math.round(v.share * 100)}%`;
    check(dom.texts.some((t) => t.includes(shown)), `${what}: no "${shown}" in ${JSON.stringify(dom.texts)}`);
  }
}

async function checkGraph(page, window, withMetrics) {
  const dom = await readPage(page);
  const api = await (await fetch(`${base}/api/mesh?window=${window}`)).json();
  check(dom.window === window, `the SVG shows window ${dom.window}, not ${window}`);
  check(dom.nodes.length === api.nodes.length, `${dom.nodes.length} nodes in the SVG, ${api.nodes.length} at /api/mesh`);
  check(dom.edges.length === api.edges.length, `${dom.edges.length} edges in the SVG, ${api.edges.length} at /api/mesh`);
  check(dom.rows.length === api.edges.length, `${dom.rows.length} table rows, ${api.edges.length} edges at /api/mesh`);
  const key = (e) => `${e.source}\n${e.destination}`;
  const domEdges = new Map(dom.edges.map((e) => [key(e), e]));
  const rows = new Map(dom.rows.map((r) => [key(r), r]));
  const metrics = new Map(withMetrics ? expected.edges.map((e) => [key(e), e]) : []);
  for (const e of api.edges) checkEdge(e, domEdges.get(key(e)), rows.get(key(e)), metrics.get(key(e)), dom.covered);
  for (const e of metrics.values()) check(domEdges.has(key(e)), `${key(e)} of /metrics is not drawn`);
  const domNodes = new Map(dom.nodes.map((n) => [n.service, n]));
  for (const n of api.nodes) checkNode(n, domNodes.get(n.service));
  for (const e of dom.edges) check(/^M[-0-9.]+,[-0-9.]+ C/.test(e.path), `edge path "${e.path}" is not a curve`);
  return { dom, api };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1480, height: 640 } });
  const problems = [];
  const origin = new URL(base).origin;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  page.on('request', (r) => {
    if (!r.url().startsWith(origin + '/')) problems.push(`request to another origin: ${r.url()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });

  const resp = await page.goto(`${base}/mesh?window=1h`);
  check(resp.status() === 200, `/mesh answered ${resp.status()}`);
  const csp = resp.headers()['content-security-policy'] || '';
  check(csp.includes("default-src 'self'"), `/mesh Content-Security-Policy: "${csp}"`);
  const want = expected.edges.length;
  await page.waitForFunction((n) => document.querySelectorAll('#graph g.edge').length >= n, want, { timeout: WAIT_MS });
  const { dom, api } = await checkGraph(page, '1h', true);
  const cafe = dom.nodes.find((n) => n.name === 'café');
  check(cafe && cafe.namespace === 'shop' && cafe.texts[0] === 'café', `no node café in shop: ${JSON.stringify(cafe)}`);
  check(dom.status.includes(`${api.nodes.length} services, ${api.edges.length} calls`), `status line: ${dom.status}`);

  // the window picker: another window is asked for, drawn, and kept in the URL
  const asked = page.waitForRequest((r) => r.url().endsWith('/api/mesh?window=5m'), { timeout: WAIT_MS });
  await page.selectOption('#window', '5m');
  await asked;
  await page.waitForFunction(() => document.getElementById('graph').dataset.window === '5m', null, { timeout: WAIT_MS });
  check(page.url().endsWith('/mesh?window=5m'), `the URL after choosing 5m: ${page.url()}`);
  await checkGraph(page, '5m', false);

  await page.screenshot({ path: screenshot, fullPage: true });
  for (const p of problems) check(false, p);
  const n = api.edges.length;
  console.log(`mesh page: ${api.nodes.length} nodes and ${n} edges drawn and tabled as /api/mesh and /metrics have them`);
} finally {
  await browser.close();
}
if (failures.length) {
  for (const f of failures) console.error('FAIL: ' + f);
  process.exit(1);
}
