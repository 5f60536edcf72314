// The dashboard (GET /) in a real browser: Debian's headless chromium driven by
// playwright-core with a fresh profile and no network beyond the server. It must load
// without console errors or failed requests, fetch nothing from another origin, show the
// fixture model as ready with the requests made here in its latency table, keep polling
// /admin/stats, and leave a screenshot (HEARTH_SCREENSHOT) for a person to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.HEARTH_URL;
const model = process.env.HEARTH_MODEL;
const shot = process.env.HEARTH_SCREENSHOT;
const profile = process.env.HEARTH_PROFILE_DIR;

async function api(path, body) {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 200, `${path}: ${text}`);
  return JSON.parse(text);
}

test('dashboard shows the ready model and live request stats', async () => {
  await api('/v1/completions', { model, prompt: 'Hello', max_tokens: 5 });
  await api('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

  mkdirSync(profile, { recursive: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems = [];
    let statsPolls = 0;
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.protocol !== 'data:' && u.origin !== base) problems.push(`request to another origin: ${r.url()}`);
      if (u.pathname === '/admin/stats') statsPolls++;
    });

    const resp = await page.goto(base + '/');
    assert.equal(resp.status(), 200);
    await page.waitForSelector('body[data-loaded="true"]', { timeout: 15000 });

    const row = page.locator('#models tbody tr', { hasText: model });
    await row.waitFor({ timeout: 15000 });
    assert.equal((await row.locator('.badge').textContent()).trim(), 'ready');
    assert.equal((await page.locator('#conn').textContent()).trim(), 'live');

    const groups = page.locator('#groups tbody tr');
    await page.locator('#groups tbody tr', { hasText: 'completions' }).waitFor({ timeout: 15000 });
    const text = (await groups.allTextContents()).join('\n');
    assert.match(text, /chat/);
    assert.match(text, new RegExp(model));
    assert.match(await page.locator('#memory').textContent(), /weights/);
    assert.match(await page.locator('#store').textContent(), /up/);

    // it keeps polling: a later request shows up without a reload
    await api('/v1/completions', { model, prompt: 'again', max_tokens: 3 });
    await page.waitForFunction(() => /\b3 requests\b/.test(document.getElementById('reqsum').textContent),
      null, { timeout: 15000 });
    assert.ok(statsPolls >= 2, `polls of /admin/stats: ${statsPolls}`);

    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await context.close();
  }
});
