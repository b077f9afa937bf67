// posthog-js (pinned, vendored from npm) in headless Chromium against a
// running `vexil serve --demo` (scripts/sdk-browser.sh starts it and passes
// VEXIL_URL and VEXIL_PERSONAL_KEY).
//
// The page is served by this test's own static server on a second local
// origin (another port), and loads posthog-js from node_modules, never a
// CDN; its api_host is Vexil, so every call is cross-origin: /flags, the
// capture endpoints and the early access list answer with CORS, or the
// browser would refuse to read them. Every answer posthog-js gives is
// compared with what /flags answers for the same person, asked by this test
// directly (no property overrides: the person's properties as Vexil stored
// them from posthog-js's own events).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const vexil = need('VEXIL_URL');
const personalKey = need('VEXIL_PERSONAL_KEY');
const chromiumPath = process.env.VEXIL_CHROMIUM ?? '/usr/bin/chromium';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/sdk-browser.sh`);
  return v;
}

async function api(method, path, body) {
  const res = await fetch(vexil + path, {
    method,
    headers: { Authorization: `Bearer ${personalKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// flagsFor is Vexil's own answer for a person: value and payload of every
// flag, as posthog-js reports them (a variant, or true/false; the payload
// parsed).
async function flagsFor(distinctId, groups) {
  const res = await fetch(`${vexil}/flags?v=2`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token, distinct_id: distinctId, ...(groups ? { groups } : {}) }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  const values = {};
  const payloads = {};
  for (const [k, v] of Object.entries(body.flags)) {
    values[k] = v.variant ?? v.enabled;
    const p = v.metadata?.payload;
    payloads[k] = p === undefined || p === null ? undefined : typeof p === 'string' ? JSON.parse(p) : p;
  }
  return { values, payloads, raw: body };
}

// until polls /flags until check holds (ingest is asynchronous); the bound
// is a hang guard, not a timing assertion.
async function until(what, distinctId, groups, check) {
  let last;
  for (let i = 0; i < 600; i++) {
    last = await flagsFor(distinctId, groups);
    if (check(last.values)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: /flags for ${distinctId} still answers ${JSON.stringify(last.values)}`);
}

// ---- the page's origin: a static server on another port ----

const posthogJS = readFileSync(require.resolve('posthog-js/dist/array.full.no-external.js'));
const page = `<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script src="/posthog.js"></script></head><body><p>a customer's site</p></body></html>`;
const site = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/posthog.js') {
    res.writeHead(200, { 'Content-Type': 'text/javascript' });
    res.end(posthogJS);
  } else if (path === '/favicon.ico') {
    res.writeHead(204);
    res.end();
  } else if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end(page);
  } else {
    res.writeHead(404);
    res.end();
  }
});

let token;
let team;
let browser;
let siteURL;
const flagKeys = ['pro-plan', 'experiment', 'big-company', 'beta-feature'];
// What the page's requests met: every response from Vexil, by path.
const seen = [];
const consoleErrors = [];

async function openPage(init) {
  const ctx = await browser.newContext();
  const p = await ctx.newPage();
  p.on('response', (r) => {
    const u = new URL(r.url());
    if (u.origin === vexil) {
      seen.push({ path: u.pathname, status: r.status(), origin: r.headers()['access-control-allow-origin'] ?? '' });
    }
  });
  p.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  p.on('requestfailed', (r) => consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  await p.goto(siteURL);
  await p.evaluate(({ token, vexil, init }) => new Promise((resolve) => {
    window.flagLoads = 0;
    window.posthog.init(token, {
      api_host: vexil,
      persistence: 'memory',
      autocapture: false,
      capture_pageview: false,
      capture_pageleave: false,
      disable_session_recording: true,
      disable_surveys: true,
      request_batching: false,
      // Headless Chromium's user agent says HeadlessChrome, which
      // posthog-js drops as a bot unless told otherwise.
      opt_out_useragent_filter: true,
      ...init,
      loaded: () => resolve(),
    });
    window.posthog.onFeatureFlags(() => { window.flagLoads++; });
  }), { token, vexil, init });
  return p;
}

// The page's answers for every flag: value and payload.
function pageFlags(p) {
  return p.evaluate((keys) => {
    const out = { values: {}, payloads: {}, enabled: {} };
    for (const k of keys) {
      out.values[k] = window.posthog.getFeatureFlag(k);
      out.payloads[k] = window.posthog.getFeatureFlagPayload(k);
      out.enabled[k] = window.posthog.isFeatureEnabled(k);
    }
    return out;
  }, flagKeys);
}

function assertSame(label, got, want) {
  for (const k of flagKeys) {
    assert.deepEqual(got.values[k], want.values[k], `${label}: getFeatureFlag('${k}')`);
    // No payload: posthog-js says null for an enabled flag, undefined for
    // a disabled one; /flags says null.
    assert.deepEqual(got.payloads[k] ?? null, want.payloads[k] ?? null, `${label}: getFeatureFlagPayload('${k}')`);
    assert.equal(got.enabled[k], want.values[k] !== false && want.values[k] !== undefined, `${label}: isFeatureEnabled('${k}')`);
  }
}

// waitFlags waits until the page's flags were (re)loaded count times.
async function waitFlags(p, count) {
  await p.waitForFunction((n) => window.flagLoads >= n, count, { timeout: 60000 });
}

before(async () => {
  const created = await api('POST', '/api/projects', { name: 'posthog-js' });
  team = created.team;
  token = team.api_token;
  await api('PUT', `/api/projects/${team.id}/group_types/0`, { group_type: 'company', version: team.version });
  const flag = (key, filters) => api('POST', `/api/projects/${team.id}/feature_flags/`, { key, name: key, active: true, filters });
  await flag('pro-plan', { groups: [{ properties: [{ key: 'plan', type: 'person', operator: 'exact', value: ['pro'] }], rollout_percentage: 100 }],
    payloads: { true: JSON.stringify({ tier: 'gold' }) } });
  await flag('experiment', { groups: [{ properties: [], rollout_percentage: 100 }],
    multivariate: { variants: [{ key: 'control', rollout_percentage: 50 }, { key: 'test', rollout_percentage: 50 }] },
    payloads: { control: JSON.stringify({ price: 10 }), test: JSON.stringify({ price: 8 }) } });
  await flag('big-company', { aggregation_group_type_index: 0,
    groups: [{ properties: [{ key: 'seats', type: 'group', group_type_index: 0, operator: 'gte', value: 100 }], rollout_percentage: 100 }] });
  await api('POST', `/api/projects/${team.id}/early_access_features`, { name: 'Beta feature', description: 'try it', stage: 'STAGE_BETA', flag_key: 'beta-feature' });

  await new Promise((r) => site.listen(0, '127.0.0.1', r));
  siteURL = `http://127.0.0.1:${site.address().port}/`;
  assert.notEqual(new URL(siteURL).origin, vexil, 'the page must be on another origin');
  browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  site.close();
});

describe('posthog-js in headless Chromium, from another origin', () => {
  let p;
  const groups = { company: 'acme' };

  test('loads flags cross-origin for an anonymous visitor', async () => {
    p = await openPage({});
    await waitFlags(p, 1);
    const anon = await p.evaluate(() => window.posthog.get_distinct_id());
    assertSame('anonymous', await pageFlags(p), await flagsFor(anon));
  });

  test('identify and group: properties reach Vexil through capture; answers equal /flags', async () => {
    const before = await p.evaluate(() => window.flagLoads);
    await p.evaluate(() => {
      window.posthog.identify('web-1', { plan: 'free', email: 'web-1@example.com' });
      window.posthog.group('company', 'acme', { seats: 500 });
    });
    // Vexil stored what posthog-js sent ($identify's $set, $groupidentify).
    await until('group', 'web-1', groups, (v) => v['big-company'] === true);
    await p.evaluate(() => window.posthog.reloadFeatureFlags());
    await waitFlags(p, before + 1);
    await p.waitForFunction(() => window.posthog.getFeatureFlag('big-company') === true, null, { timeout: 60000 });
    assertSame('identified', await pageFlags(p), await flagsFor('web-1', groups));
    assert.equal((await flagsFor('web-1', groups)).values['pro-plan'], false);
  });

  test('reloadFeatureFlags after a property change; onFeatureFlags fires', async () => {
    const loads = await p.evaluate(() => window.flagLoads);
    // A $set through capture: Vexil's person changes.
    await p.evaluate(() => window.posthog.setPersonProperties({ plan: 'pro' }));
    await until('$set', 'web-1', groups, (v) => v['pro-plan'] === true);
    await p.evaluate(() => window.posthog.reloadFeatureFlags());
    await waitFlags(p, loads + 1);
    await p.waitForFunction(() => window.posthog.isFeatureEnabled('pro-plan') === true, null, { timeout: 60000 });
    const got = await pageFlags(p);
    assertSame('after the change', got, await flagsFor('web-1', groups));
    assert.deepEqual(got.payloads['pro-plan'], { tier: 'gold' });
  });

  test('early access features: the list, and enrollment through capture', async () => {
    const features = await p.evaluate(() => new Promise((resolve) => window.posthog.getEarlyAccessFeatures((f) => resolve(f), true)));
    assert.deepEqual(features.map((f) => [f.name, f.flagKey, f.stage]), [['Beta feature', 'beta-feature', 'beta']]);
    assert.equal((await flagsFor('web-1', groups)).values['beta-feature'], false);
    // posthog-js sends $feature_enrollment_update with $set
    // {"$feature_enrollment/beta-feature": true} through capture.
    await p.evaluate(() => window.posthog.updateEarlyAccessFeatureEnrollment('beta-feature', true));
    await until('enrollment', 'web-1', groups, (v) => v['beta-feature'] === true);
    const loads = await p.evaluate(() => window.flagLoads);
    await p.evaluate(() => window.posthog.reloadFeatureFlags());
    await waitFlags(p, loads + 1);
    assertSame('enrolled', await pageFlags(p), await flagsFor('web-1', groups));
  });

  test('bootstrapped flags answer before any request, and equal /flags', async () => {
    const want = await flagsFor('boot-1');
    const bootstrap = { distinctID: 'boot-1', isIdentifiedID: true, featureFlags: want.values,
      featureFlagPayloads: Object.fromEntries(Object.entries(want.payloads).filter(([, v]) => v !== undefined)) };
    const b = await openPage({ bootstrap, advanced_disable_feature_flags_on_first_load: true });
    assertSame('bootstrapped', await pageFlags(b), want);
    assert.equal(await b.evaluate(() => window.posthog.get_distinct_id()), 'boot-1');
    // And the server agrees when asked.
    const loads = await b.evaluate(() => window.flagLoads);
    await b.evaluate(() => window.posthog.reloadFeatureFlags());
    await waitFlags(b, loads + 1);
    assertSame('bootstrapped, reloaded', await pageFlags(b), await flagsFor('boot-1'));
  });

  test('every response from Vexil was readable cross-origin; nothing failed', () => {
    const paths = new Set(seen.map((s) => s.path.replace(/\/$/, '')));
    // /i/v0/e: the capture endpoint Vexil's remote config names.
    for (const want of ['/flags', '/i/v0/e', '/api/early_access_features', `/array/${token}/config`]) {
      assert.ok(paths.has(want), `posthog-js never called ${want}: ${[...paths].join(', ')}`);
    }
    const siteOrigin = new URL(siteURL).origin;
    for (const s of seen) {
      assert.equal(s.status, 200, `${s.path}: status ${s.status}`);
      assert.equal(s.origin, siteOrigin, `${s.path}: Access-Control-Allow-Origin ${s.origin}`);
    }
    assert.deepEqual(consoleErrors, []);
  });
});
