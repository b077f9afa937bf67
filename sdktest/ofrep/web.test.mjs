// OpenFeature's official OFREP web provider (@openfeature/ofrep-web-provider
// on @openfeature/web-sdk) in headless Chromium (Debian's chromium driven by
// playwright-core) against a running `vexil serve --demo`
// (scripts/sdk-ofrep.sh passes VEXIL_URL, VEXIL_PROJECT_TOKEN and
// VEXIL_CHROMIUM).
//
// The test page and the packages' ES modules are served by playwright's
// routing under the server's own origin, so the provider's requests to
// /ofrep/v1/evaluate/flags are same-origin and reach the real server
// unchanged (no CORS involved).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';
import { cases, expected, label } from './demo.mjs';

const url = need('VEXIL_URL');
const token = need('VEXIL_PROJECT_TOKEN');
const executablePath = need('VEXIL_CHROMIUM');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/sdk-ofrep.sh`);
  return v;
}

const modules = {
  '@openfeature/core': 'node_modules/@openfeature/core/dist/esm/index.js',
  '@openfeature/web-sdk': 'node_modules/@openfeature/web-sdk/dist/esm/index.js',
  '@openfeature/ofrep-core': 'node_modules/@openfeature/ofrep-web-provider/node_modules/@openfeature/ofrep-core/index.esm.js',
  '@openfeature/ofrep-web-provider': 'node_modules/@openfeature/ofrep-web-provider/index.esm.js',
};
const importMap = { imports: Object.fromEntries(Object.keys(modules).map((m) => [m, `/__test/${m}.js`])) };

const page = `<!doctype html><html><head><meta charset="utf-8">
<script type="importmap">${JSON.stringify(importMap)}</script>
<script type="module">
import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';
window.changes = [];
window.start = async (token, context, pollInterval) => {
  OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, (d) => window.changes.push(d.flagsChanged ?? []));
  await OpenFeature.setContext(context);
  await OpenFeature.setProviderAndWait(new OFREPWebProvider({ baseUrl: location.origin, headers: [['Authorization', 'Bearer ' + token]], pollInterval, cacheMode: 'network-first' }));
};
window.read = () => {
  const c = OpenFeature.getClient();
  const d = (k, f) => { const r = f(k); return { value: r.value, variant: r.variant, reason: r.reason, errorCode: r.errorCode, flagMetadata: r.flagMetadata }; };
  return {
    'beta-dashboard': d('beta-dashboard', (k) => c.getBooleanDetails(k, false)),
    'sso-login': d('sso-login', (k) => c.getBooleanDetails(k, false)),
    'new-billing': d('new-billing', (k) => c.getBooleanDetails(k, false)),
    'checkout-experiment': d('checkout-experiment', (k) => c.getStringDetails(k, 'none')),
    'no-such-flag': d('no-such-flag', (k) => c.getBooleanDetails(k, true)),
  };
};
window.setContext = (ctx) => OpenFeature.setContext(ctx);
window.ready = true;
</script></head><body>OFREP web provider test</body></html>`;

let browser;
let tab;
const bulk = []; // status of every bulk request the page made

before(async () => {
  browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
  tab = await browser.newPage();
  await tab.route(`${url}/__test/**`, async (route) => {
    const name = decodeURIComponent(new URL(route.request().url()).pathname.slice('/__test/'.length)).replace(/\.js$/, '');
    const file = modules[name];
    if (!file) return route.fulfill({ status: 404, body: 'no such module' });
    return route.fulfill({ status: 200, contentType: 'text/javascript', body: await readFile(new URL(file, import.meta.url), 'utf8') });
  });
  await tab.route(`${url}/__ofrep-web-test.html`, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: page }));
  tab.on('response', (r) => {
    if (new URL(r.url()).pathname === '/ofrep/v1/evaluate/flags') {
      bulk.push(r.status());
      if (process.env.DEBUG_OFREP) console.log(r.status(), r.request().postData(), r.request().headers()['if-none-match'], r.headers()['etag']);
    }
  });
  const errors = [];
  tab.on('pageerror', (e) => errors.push(String(e)));
  await tab.goto(`${url}/__ofrep-web-test.html`);
  await tab.waitForFunction(() => window.ready === true, null, { timeout: 30000 }).catch(() => {
    throw new Error(`the test page did not load: ${errors.join('; ')}`);
  });
});

after(async () => {
  await browser?.close();
});

function wantDetails(p, c) {
  const want = expected(p, c);
  return Object.fromEntries(Object.entries(want).map(([k, v]) => [k, k === 'checkout-experiment' && v === false ? 'none' : v]));
}

describe('@openfeature/ofrep-web-provider in headless Chromium', () => {
  test('bulk evaluation at start, flags read from the cache', async () => {
    const { p, c } = cases.find(({ p, c }) => c && p.country === 'US');
    await tab.evaluate(([t, ctx]) => window.start(t, ctx, 200), [token, { targetingKey: p.distinctId, groups: { company: c.key } }]);
    const got = await tab.evaluate(() => window.read());
    const want = wantDetails(p, c);
    for (const k of Object.keys(want)) assert.equal(got[k].value, want[k], `${k} for ${label(p, c)}: ${JSON.stringify(got[k])}`);
    assert.equal(got['checkout-experiment'].variant, want['checkout-experiment']);
    assert.equal(typeof got['beta-dashboard'].flagMetadata.flagId, 'number');
    assert.equal(got['no-such-flag'].value, true);
    assert.equal(got['no-such-flag'].errorCode, 'FLAG_NOT_FOUND');
    assert.equal(bulk[0], 200);
  });

  test('polling with the ETag: 304 while nothing changes', async () => {
    const before = bulk.length;
    // Eventually two more polls (every 200 ms) have been answered.
    for (let i = 0; i < 300 && bulk.length < before + 2; i++) await new Promise((r) => setTimeout(r, 100));
    const polled = bulk.slice(before);
    assert.ok(polled.length >= 2, `polls: ${polled}`);
    assert.ok(polled.every((s) => s === 304), `polls answered ${polled}`);
  });

  test('a new context re-evaluates every flag', async () => {
    // A fresh page without polling: a poll in flight must not race the
    // context changes. (The provider's default cache mode,
    // local-cache-first, answers a new context from the browser's storage
    // while it refetches, keyed by targetingKey alone; network-first waits
    // for the server.)
    await tab.reload();
    await tab.waitForFunction(() => window.ready === true, null, { timeout: 30000 });
    await tab.evaluate(([t, ctx]) => window.start(t, ctx, 0), [token, { targetingKey: 'user-1' }]);
    for (const { p, c } of cases.slice(0, 12)) {
      await tab.evaluate((ctx) => window.setContext(ctx), { targetingKey: p.distinctId, ...(c ? { groups: { company: c.key } } : {}) });
      const got = await tab.evaluate(() => window.read());
      const want = wantDetails(p, c);
      for (const k of Object.keys(want)) assert.equal(got[k].value, want[k], `${k} for ${label(p, c)}: ${JSON.stringify(got[k])}`);
    }
  });
});
