// Browser tests of the Loupe dashboard in headless Chromium (Debian's, driven
// by playwright-core). Starts the seeded example dashboard on 127.0.0.1:0,
// visits every page, and checks: no console errors, htmx filter swaps with
// URL updates, lazy span expansion, and that a hostile prompt is shown as
// text and never runs. Screenshots go to artifacts/ (gitignored).
//
// Run: scripts/setup-browser.sh once, then `npm test` in tests/browser.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const artifacts = path.join(here, 'artifacts');
const XSS_TRACE = '0000000000000000000000000000dead';
const XSS_SPAN = '000000000000bad1';
const XSS_PROMPT = '<script>alert(1)</script><img src=x onerror="alert(2)"><b>bold?</b> & friends';
const BIG_TRACE = '00000000000000000000000000000b16';

let server;
let base;
let context;
let userDataDir;

function startServer() {
  const build = spawnSync('cargo', ['build', '-q', '-p', 'dashboard', '--example', 'seeded_dashboard'], { cwd: root, stdio: 'inherit' });
  assert.equal(build.status, 0, 'building the seeded dashboard');
  const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
  const bin = path.join(targetDir, 'debug', 'examples', 'seeded_dashboard');
  const child = spawn(bin, ['--port', '0', '--big-trace', '2000'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the seeded dashboard did not start within 120 s')), 120_000);
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.on('exit', (code) => reject(new Error(`the seeded dashboard exited early (${code})`)));
  });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  ({ child: server, url: base } = await startServer());
  userDataDir = mkdtempSync(path.join(tmpdir(), 'loupe-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited; // the example closes the embedded engine before it exits
  }
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** A page that records console errors, page errors, failed requests and dialogs. */
async function open() {
  const page = await context.newPage();
  const problems = [];
  const dialogs = [];
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  return { page, problems, dialogs };
}

async function shot(page, name, fullPage = true) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage });
}

for (const [name, url] of [
  ['overview', '/'],
  ['cost', '/cost'],
  ['cost-tenant', '/cost?tenant=globex'],
  ['drift', '/drift'],
  ['traces', '/traces'],
  ['alerts', '/alerts'],
  ['trace-big', `/traces/${BIG_TRACE}`],
]) {
  test(`${name} loads without console errors`, async () => {
    const { page, problems } = await open();
    const resp = await page.goto(base + url, { waitUntil: 'networkidle' });
    assert.equal(resp.status(), 200);
    assert.ok(await page.locator('main').isVisible());
    await shot(page, name, !name.startsWith('trace-big'));
    assert.deepEqual(problems, []);
    await page.close();
  });
}

test('a filter change swaps the traces table through htmx and updates the URL', async () => {
  const { page, problems } = await open();
  await page.goto(`${base}/traces?range=7d`, { waitUntil: 'networkidle' });
  await page.evaluate(() => { window.__sameDocument = true; });
  const rowsBefore = await page.locator('table.calls tbody tr').count();
  assert.ok(rowsBefore > 0);
  const swapped = page.waitForResponse((r) => r.url().includes('/traces?') && r.url().includes('tenant=globex') && r.request().headers()['hx-request'] === 'true');
  await page.selectOption('select[name=tenant]', 'globex');
  await swapped;
  await page.waitForFunction(() => [...document.querySelectorAll('table.calls tbody tr td:nth-child(2)')].every((td) => td.textContent.trim() === 'globex'));
  assert.match(page.url(), /tenant=globex/, 'URL pushed');
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no full page load');
  const tenants = await page.locator('table.calls tbody tr td:nth-child(2)').allTextContents();
  assert.ok(tenants.length > 0 && tenants.every((t) => t.trim() === 'globex'));
  // text filter, debounced, also swaps and pushes
  const typed = page.waitForResponse((r) => r.url().includes('q=invoice'));
  await page.fill('#q', 'invoice');
  await typed;
  await page.waitForURL(/q=invoice/);
  // the next page link swaps in place too
  await page.selectOption('select[name=tenant]', '');
  await page.fill('#q', '');
  await page.waitForURL((u) => !u.search.includes('q=invoice'));
  const next = page.locator('.pager a.next');
  if (await next.count()) {
    const paged = page.waitForResponse((r) => r.url().includes('cursor='));
    await next.click();
    await paged;
    await page.waitForURL(/cursor=/);
    assert.equal(await page.evaluate(() => window.__sameDocument), true);
  }
  await shot(page, 'traces-filtered');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the trace detail expands a span and loads its chat lazily', async () => {
  const { page, problems } = await open();
  await page.goto(`${base}/traces?range=30d&tenant=acme`, { waitUntil: 'networkidle' });
  await page.locator('table.calls tbody tr td.preview a').first().click();
  await page.waitForURL(/\/traces\/[0-9a-f]{32}\?span=/);
  await page.waitForSelector('details[open] .span-detail .chat');
  // collapse-free: open another span by clicking its summary
  const closedId = await page.locator('details.span:not([open])').first().getAttribute('id');
  const closed = page.locator(`#${closedId}`);
  const loaded = page.waitForResponse((r) => /\/spans\/[0-9a-f]{16}$/.test(r.url()));
  await closed.locator('summary').click();
  await loaded;
  await closed.locator('.span-detail').waitFor();
  assert.equal(await closed.getAttribute('open'), '');
  await shot(page, 'trace-expanded');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a <script> prompt is displayed as text and never executes', async () => {
  const { page, problems, dialogs } = await open();
  await page.addInitScript(() => { window.alert = (m) => { window.__alerted = (window.__alerted || []).concat([String(m)]); }; });
  await page.goto(`${base}/traces/${XSS_TRACE}?span=${XSS_SPAN}`, { waitUntil: 'networkidle' });
  const user = page.locator('.span-detail .msg.user .content');
  await user.waitFor();
  assert.equal(await user.textContent(), XSS_PROMPT, 'shown verbatim as text');
  assert.equal(await page.locator('.span-detail img, .span-detail b, .span-detail script').count(), 0, 'no element made from the prompt');
  const scripts = await page.evaluate(() => [...document.scripts].map((s) => s.src || s.textContent));
  assert.equal(scripts.length, 1, `only htmx: ${scripts}`);
  assert.match(scripts[0], /htmx-2\.0\.11\.min\.js$/);
  assert.equal(await page.evaluate(() => window.__alerted), undefined, 'alert never called');
  assert.deepEqual(dialogs, []);
  // the list preview too
  await page.goto(`${base}/traces?range=1h&q=script`, { waitUntil: 'networkidle' });
  assert.match(await page.locator('td.preview .in').first().textContent(), /<script>alert\(1\)<\/script>/);
  assert.equal(await page.evaluate(() => window.__alerted), undefined);
  await shot(page, 'xss-list');
  assert.deepEqual(problems, []);
  await page.close();
});
