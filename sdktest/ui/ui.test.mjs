// The web UI in a real browser: playwright-core drives Debian's headless
// chromium against a running `vexil serve --demo` (scripts/ui-test.sh starts
// it, publishes companies with "employees" = 10*k for company-0..39, and
// passes VEXIL_URL, VEXIL_PROJECT_TOKEN, VEXIL_PERSONAL_KEY, VEXIL_LOGIN_LINK,
// VEXIL_CHROMIUM). posthog-node then checks that /flags answers as the UI
// said. The tests run in order: each scenario builds on the one before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { PostHog } from 'posthog-node';
import { textContrast } from './contrast.mjs';

const url = need('VEXIL_URL');
const token = need('VEXIL_PROJECT_TOKEN');
const adminKey = need('VEXIL_PERSONAL_KEY');
const loginLink = need('VEXIL_LOGIN_LINK');
const executablePath = need('VEXIL_CHROMIUM');
const shots = new URL('./screenshots/', import.meta.url).pathname;
const FLAG = 'ui-pro-and-big-companies';
const team = 1;
const T = `${url}/ui/t/${team}`;

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/ui-test.sh`);
  return v;
}

// PostHog's bucketing (docs/posthog-compat.md §4), computed here
// independently of Vexil.
const LONG_SCALE = 0xfffffffffffffff;
function hash(key, id) {
  const hex = createHash('sha1').update(`${key}.${id}`, 'utf8').digest('hex');
  return Number(BigInt('0x' + hex.slice(0, 15))) / LONG_SCALE;
}
const plans = ['free', 'free', 'pro', 'enterprise'];
// What the flag the UI builds must answer: persons on plan pro, 30% of
// them, OR companies with more than 100 employees, 30% of them.
function expected(i, k) {
  const person = plans[i % 4] === 'pro' && hash(FLAG, `user-${i}`) <= 0.3;
  const company = k !== undefined && k * 10 > 100 && k < 40 && hash(FLAG, `company-${k}`) <= 0.3;
  return person || company;
}

let browser;
const byId = (page, id) => page.locator(`[id="${id}"]`);

// submit clicks a button (or runs act) that navigates, and waits for the
// new page; it returns the navigation's response.
async function submit(page, act) {
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), act()]);
  return resp;
}
const click = (page, selector) => submit(page, () => page.locator(selector).first().click());
const action = (page, value) => click(page, `button[name="action"][value="${value}"]:not(.default-action)`);

async function signIn(key) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${url}/`);
  assert.match(page.url(), /\/ui\/login/);
  await page.fill('#key', key);
  await click(page, 'button[type=submit]');
  return { ctx, page };
}

// tabTo presses Tab until the focused element matches selector, and
// checks that the focus is visible there (an outline).
async function tabTo(page, selector) {
  for (let i = 0; i < 200; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate((s) => {
      const el = document.activeElement;
      return el && el.matches(s) ? getComputedStyle(el).outlineStyle : null;
    }, selector);
    if (at !== null) {
      assert.notEqual(at, 'none', `${selector} is focused without a visible outline`);
      return;
    }
  }
  assert.fail(`200 presses of Tab never reached ${selector}`);
}

async function csrfOf(page) {
  return page.locator('form[action="/ui/logout"] input[name=csrf]').inputValue();
}

async function api(method, path, body) {
  const resp = await fetch(`${url}${path}`, {
    method, headers: { Authorization: `Bearer ${adminKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  assert.equal(resp.status, 200, `${method} ${path}: ${resp.status} ${text}`);
  return JSON.parse(text);
}

// assertContrast checks docs/ui.md's promise of 7:1 text contrast on the
// page as it stands, with the browser preferring a light and then a dark
// colour scheme (the UI has one theme: a dark preference must not change
// it into something unreadable), and fails naming every element under it.
async function assertContrast(page, name) {
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    const { checked, found } = await page.evaluate(textContrast, 7);
    assert.ok(checked > 5, `${name} (${colorScheme}): only ${checked} text elements found`);
    assert.deepEqual(found, [], `${name} (${colorScheme}): text under 7:1 contrast:\n` +
      found.map((f) => `  ${f.element} "${f.text}": ${f.problem}`).join('\n'));
  }
  await page.emulateMedia({ colorScheme: null });
}

// assertLabelled checks that every visible input, select and textarea has
// an accessible name (a label, aria-label or aria-labelledby).
async function assertLabelled(page, name) {
  const bare = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && el.checkVisibility({ checkVisibilityCSS: true }) && el.getBoundingClientRect().width > 1)
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')?.trim() &&
      !(el.getAttribute('aria-labelledby') || '').split(/\s+/).some((id) => document.getElementById(id)?.textContent.trim()))
    .map((el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}[name=${el.name}]`));
  assert.deepEqual(bare, [], `${name}: inputs without a label`);
}

async function shoot(page, name) {
  await assertContrast(page, name);
  await assertLabelled(page, name);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: width === 390 ? 844 : 900 });
    await page.screenshot({ path: `${shots}${name}-${width}.png`, fullPage: width === 1280 ? false : true });
    if (width === 390) {
      // Usable at 390 px: nothing wider than the screen.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(overflow <= 391, `${name} is ${overflow} px wide at 390`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 900 });
}

describe('web UI in headless chromium', () => {
  let admin; // { ctx, page } signed in with the demo's key
  let flagID;
  let flagURL;
  let posthog;

  before(async () => {
    mkdirSync(shots, { recursive: true });
    browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    posthog = new PostHog(token, { host: url, flushAt: 1, fetchRetryCount: 0, featureFlagsPollingInterval: 600000 });
  });

  after(async () => {
    await posthog?.shutdown();
    await browser?.close();
  });

  test('sign in with the personal key; the login link works once', async () => {
    admin = await signIn(adminKey);
    assert.match(admin.page.url(), new RegExp(`/ui/t/${team}/flags$`));
    assert.equal(await admin.page.locator('[data-testid=flags-table] tbody tr').count(), 4);
    assert.equal(await admin.page.locator('[data-testid=new-flag]').count(), 1);
    // Cookie: HttpOnly, SameSite=Lax, scoped to the UI.
    const [cookie] = await admin.ctx.cookies();
    assert.equal(cookie.name, 'vexil_session');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    assert.equal(cookie.path, '/ui/');

    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(loginLink);
    await click(page, 'button[type=submit]');
    assert.match(page.url(), new RegExp(`/ui/t/${team}/flags$`));
    const again = await (await browser.newContext()).newPage();
    await again.goto(loginLink);
    const resp = await click(again, 'button[type=submit]');
    assert.equal(resp.status(), 401);
    assert.match(await again.locator('.err').innerText(), /already used or has expired/);
    await ctx.close();
  });

  test('keyboard: the first Tab reaches "Skip to content"', async () => {
    const { page } = admin;
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await assertContrast(page, 'skip link focused');
  });

  test('create a flag targeting users with plan = pro AND companies with employees > 100, 30%', async () => {
    const { page } = admin;
    await page.goto(`${T}/flags/new`);
    await page.fill('#key', FLAG);
    await page.fill('#name', 'Pro users and big companies');
    await action(page, 'add-filter:0');
    await byId(page, 'c0.f0.key').fill('plan');
    await byId(page, 'c0.f0.value').fill('pro');
    await byId(page, 'c0.rollout').fill('30');
    await action(page, 'add-condition');
    await submit(page, () => byId(page, 'c1.target').selectOption('g0'));
    await action(page, 'add-filter:1');
    await byId(page, 'c1.f0.key').fill('employees');
    await submit(page, () => byId(page, 'c1.f0.op').selectOption('gt'));
    assert.equal(await byId(page, 'c1.f0.value').getAttribute('type'), 'number');
    await byId(page, 'c1.f0.value').fill('100');

    // Bad input is refused with the field named in place; nothing is lost.
    await byId(page, 'c1.rollout').fill('130');
    let resp = await action(page, 'review');
    assert.equal(resp.status(), 422);
    assert.match(await byId(page, 'c1.rollout-err').innerText(), /percentage from 0 to 100/);
    assert.equal(await byId(page, 'c1.rollout').getAttribute('aria-invalid'), 'true');
    assert.equal(await byId(page, 'c1.f0.value').inputValue(), '100');
    assert.equal(await byId(page, 'c0.f0.value').inputValue(), 'pro');
    assert.equal(await page.locator('#key').inputValue(), FLAG);
    await assertContrast(page, 'flag-edit refused');
    await byId(page, 'c1.rollout').fill('30');

    // A regex is checked as one types (through the server, htmx).
    await action(page, 'add-filter:0');
    await submit(page, () => byId(page, 'c0.f1.op').selectOption('regex'));
    await byId(page, 'c0.f1.key').fill('email');
    await byId(page, 'c0.f1.value').pressSequentially('([a-z');
    await page.locator('[id="c0.f1.value-check"] .err').waitFor();
    assert.match(await byId(page, 'c0.f1.value-check').innerText(), /not a valid regular expression/);
    await action(page, 'remove-filter:0:1');
    assert.equal(await byId(page, 'c0.f1.key').count(), 0);

    // Review: the diff and the blast radius from the management API.
    resp = await action(page, 'review');
    assert.equal(resp.status(), 200);
    const preview = page.locator('[data-testid=preview]');
    assert.match(await preview.innerText(), /filters\.groups\[1\]\.properties\[0\]\.key/);
    await page.locator('[data-testid=blast-changed]').waitFor({ timeout: 120000 });
    // 300 persons: 75 on pro, about 30% of them in the rollout; the
    // company condition sees no group in the blast radius.
    let want = 0;
    for (let i = 0; i < 300; i++) if (expected(i)) want++;
    assert.equal(Number(await page.locator('[data-testid=blast-changed]').innerText()), want);
    await shoot(page, 'flag-edit');
    await preview.screenshot({ path: `${shots}review-1280.png` });

    resp = await action(page, 'save');
    assert.equal(resp.status(), 200);
    assert.match(page.url(), new RegExp(`/ui/t/${team}/flags/\\d+$`));
    flagURL = page.url();
    flagID = Number(flagURL.split('/').pop());
    const plain = await page.locator('[data-testid=plain-conditions]').innerText();
    assert.match(plain, /Set 1: persons whose plan equals one of pro — 30% of them/);
    assert.match(plain, /Set 2: companies whose employees is greater than 100 — 30% of them/);
    // Usage statistics are on: a new flag has no evaluation yet.
    assert.match(await page.locator('[data-testid=usage-total]').innerText(), /^0 evaluations and 0 unique ids/);
  });

  test('payloads, dates and versions are checked as they are typed', async () => {
    const { page } = admin;
    await page.goto(`${T}/flags/new`);
    const payload = page.locator('#payload_true');
    const check = page.locator('#payload_true + .check');
    await payload.pressSequentially('{"plan": ');
    assert.match(await check.innerText(), /^not valid JSON/);
    assert.equal(await payload.getAttribute('aria-invalid'), 'true');
    await assertContrast(page, 'payload refused as typed');
    await payload.pressSequentially('"pro"}');
    assert.equal(await check.innerText(), 'valid JSON');
    assert.equal(await payload.getAttribute('aria-invalid'), null);

    await action(page, 'add-filter:0');
    for (const [op, bad, good] of [['is_date_after', '31/01/2026', '-7d'], ['semver_gte', 'one.two', '1.2.3']]) {
      await submit(page, () => byId(page, 'c0.f0.op').selectOption(op));
      const value = byId(page, 'c0.f0.value');
      await value.fill('');
      await value.pressSequentially(bad);
      assert.equal(await value.getAttribute('aria-invalid'), 'true', `${op} ${bad}`);
      await value.fill('');
      await value.pressSequentially(good);
      assert.equal(await value.getAttribute('aria-invalid'), null, `${op} ${good}`);
    }
  });

  test('/flags from posthog-node answers as the UI said', async () => {
    const { page } = admin;
    // Wait until the published companies are projected (a company over
    // 100 employees inside the rollout, with a person outside it).
    const k = [...Array(40).keys()].find((k) => k > 10 && hash(FLAG, `company-${k}`) <= 0.3);
    const i0 = [...Array(300).keys()].find((i) => plans[i % 4] === 'free');
    let sdkCalls = 0; // every /flags request posthog-node sends, for the usage count below
    for (let n = 0; n < 600; n++) {
      sdkCalls++;
      const v = await posthog.getFeatureFlag(FLAG, `user-${i0}`, { groups: { company: `company-${k}` }, onlyEvaluateLocally: false, sendFeatureFlagEvents: false });
      if (v === true) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const cases = [[i0, k], [i0, 5], [i0, 39], [i0, undefined]];
    for (let i = 0; i < 40; i++) if (plans[i % 4] === 'pro') cases.push([i, i % 3 === 0 ? 3 : undefined]);
    let on = 0;
    for (const [i, c] of cases) {
      await page.goto(flagURL);
      await page.fill('#distinct_id', `user-${i}`);
      if (c !== undefined) await byId(page, 'group.company').fill(`company-${c}`);
      await click(page, '[data-testid=explain]');
      const ui = (await page.locator('[data-testid=explain-answer]').getAttribute('data-enabled')) === 'true';
      const groups = c === undefined ? {} : { company: `company-${c}` };
      sdkCalls++;
      const sdk = await posthog.getFeatureFlag(FLAG, `user-${i}`, { groups, onlyEvaluateLocally: false, sendFeatureFlagEvents: false });
      assert.equal(sdk === true, ui, `user-${i} company-${c}: posthog-node ${sdk}, the UI said ${ui}`);
      assert.equal(ui, expected(i, c), `user-${i} company-${c}: the UI said ${ui}`);
      if (ui) on++;
    }
    assert.ok(on > 0 && on < cases.length, `${on} of ${cases.length} on: both answers are exercised`);
    await assertContrast(page, 'explain');
    // The flag page's usage counts those /flags requests once the node
    // flushed its counters (every 10 s): exactly one evaluation each.
    let total = '';
    for (let n = 0; n < 120; n++) {
      await page.goto(flagURL);
      total = await page.locator('[data-testid=usage-total]').innerText();
      if (total.startsWith(`${sdkCalls} `)) break; // a flush may come in the middle of the requests
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.match(total, new RegExp(`^${sdkCalls} evaluations and \\d+ unique ids in the last 24 hours; last evaluated`), total);
    // The charts are drawn (uPlot: evaluations, unique ids, values), and
    // the values table adds up to the same evaluations.
    await page.locator('.chart .uplot canvas').nth(2).waitFor();
    assert.equal(await page.locator('.chart .uplot canvas').count(), 3);
    const counts = await page.locator('[data-testid=usage-variants] tbody tr td:nth-child(2)').allInnerTexts();
    assert.equal(counts.reduce((a, n) => a + Number(n), 0), sdkCalls, `values ${counts}`);
    await page.goto(`${T}/flags`);
    const row = page.locator('[data-testid=flags-table] tr', { hasText: FLAG }).first();
    assert.match(await row.locator('[data-testid=last-evaluated]').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d$/);
    await page.goto(flagURL);
    await shoot(page, 'flag');
  });

  test('edit a condition in two browser sessions at once: the second sees the conflict', async () => {
    const a = admin.page;
    const b = await signIn(adminKey);
    await a.goto(`${flagURL}/edit`);
    await b.page.goto(`${flagURL}/edit`);
    await byId(a, 'c0.rollout').fill('40');
    await action(a, 'review');
    let resp = await action(a, 'save');
    assert.equal(resp.status(), 200);

    await byId(b.page, 'c0.f0.value').fill('pro, enterprise');
    await action(b.page, 'review');
    resp = await action(b.page, 'save');
    assert.equal(resp.status(), 409);
    const conflict = await b.page.locator('[data-testid=conflict]').innerText();
    assert.match(conflict, /filters\.groups\[0\]\.rollout_percentage/);
    assert.match(conflict, /30/);
    assert.match(conflict, /40/);
    assert.equal(await byId(b.page, 'c0.f0.value').inputValue(), 'pro, enterprise', 'the edits are kept');
    await shoot(b.page, 'conflict');
    resp = await action(b.page, 'save');
    assert.equal(resp.status(), 200);
    assert.match(await b.page.locator('[data-testid=plain-conditions]').innerText(), /plan equals one of pro, enterprise — 30% of them/);
    await b.ctx.close();
  });

  test('upload a static cohort CSV', async () => {
    const { page } = admin;
    await page.goto(`${T}/cohorts`);
    await page.fill('#cname', 'Beta testers');
    await click(page, '[data-testid=create-cohort]');
    assert.match(page.url(), /\/cohorts\/\d+$/);
    await page.setInputFiles('#csv', { name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('distinct_id\n') });
    let resp = await click(page, '[data-testid=upload-csv]');
    assert.equal(resp.status(), 422);
    assert.match(await page.locator('[data-testid=csv-error]').innerText(), /^csv: no distinct ids/);
    await page.setInputFiles('#csv', { name: 'members.csv', mimeType: 'text/csv', buffer: Buffer.from('distinct_id,note\nuser-1,a\nuser-2,b\n"user-3",c\n') });
    resp = await click(page, '[data-testid=upload-csv]');
    assert.equal(resp.status(), 200);
    assert.match(await page.locator('[data-testid=csv-added]').innerText(), /^3 member\(s\) added/);
    assert.deepEqual(await page.locator('[data-testid=members] li').allInnerTexts(), ['user-1', 'user-2', 'user-3']);
    await shoot(page, 'cohort');
  });

  test('variants with payloads, a cohort filter, a variant override, an override and experience continuity', async () => {
    const { page } = admin;
    const KEY = 'ui-variants';
    await page.goto(`${T}/flags/new`);
    await page.fill('#key', KEY);
    await page.fill('#tags', 'checkout, beta');
    await page.check('input[name=continuity]');
    await action(page, 'add-variant');
    await action(page, 'add-variant');
    for (const [i, key, color] of [[0, 'control', 'blue'], [1, 'test', 'green']]) {
      await byId(page, `v${i}.key`).fill(key);
      await byId(page, `v${i}.rollout`).fill('50');
      await byId(page, `v${i}.payload`).fill(JSON.stringify({ color }));
    }
    // Set 1: the static cohort "Beta testers" (user-1..3), all of it, on variant "test".
    await action(page, 'add-filter:0');
    await submit(page, () => byId(page, 'c0.f0.kind').selectOption('cohort'));
    await byId(page, 'c0.f0.key').selectOption({ label: 'Beta testers' });
    await byId(page, 'c0.rollout').fill('100');
    await byId(page, 'c0.variant').selectOption('test');
    await action(page, 'add-override');
    await byId(page, 'o0.ids').fill('user-200');
    await byId(page, 'o0.value').fill('control');
    let resp = await action(page, 'review');
    assert.equal(resp.status(), 200, await page.locator('main').innerText());
    resp = await action(page, 'save');
    assert.equal(resp.status(), 200, await page.locator('main').innerText());
    const id = Number(page.url().split('/').pop());

    const f = await api('GET', `/api/projects/${team}/feature_flags/${id}`);
    assert.deepEqual(f.filters.multivariate.variants.map((v) => [v.key, v.rollout_percentage]), [['control', 50], ['test', 50]]);
    assert.deepEqual(Object.fromEntries(Object.entries(f.filters.payloads).map(([k, v]) => [k, typeof v === 'string' ? JSON.parse(v) : v])),
      { control: { color: 'blue' }, test: { color: 'green' } });
    assert.equal(f.filters.groups[0].variant, 'test');
    assert.equal(f.filters.groups[0].properties[0].type, 'cohort');
    assert.equal(f.ensure_experience_continuity, true);
    assert.deepEqual([...f.tags].sort(), ['beta', 'checkout']);

    // What /flags answers: the cohort's member gets "test" with its
    // payload, the override wins for user-200, anyone else is off.
    const ask = (distinctId) => posthog.getFeatureFlag(KEY, distinctId, { onlyEvaluateLocally: false, sendFeatureFlagEvents: false });
    assert.equal(await ask('user-1'), 'test');
    assert.deepEqual(await posthog.getFeatureFlagPayload(KEY, 'user-1', 'test', { onlyEvaluateLocally: false }), { color: 'green' });
    assert.equal(await ask('user-200'), 'control');
    assert.equal(await ask('user-50'), false);
    await shoot(page, 'flag-variants');
  });

  test('archive is refused while a dependent exists', async () => {
    const { page } = admin;
    await page.goto(`${T}/flags/new`);
    await page.fill('#key', 'ui-depends-on-base');
    await action(page, 'add-filter:0');
    await submit(page, () => byId(page, 'c0.f0.kind').selectOption('flag'));
    await byId(page, 'c0.f0.key').selectOption(FLAG);
    await byId(page, 'c0.f0.value').fill('true');
    await action(page, 'review');
    let resp = await action(page, 'save');
    assert.equal(resp.status(), 200);

    await page.goto(flagURL);
    assert.deepEqual(await page.locator('[data-testid=dependents] li').allInnerTexts(), ['ui-depends-on-base']);
    resp = await click(page, '[data-testid=archive]');
    assert.equal(resp.status(), 409);
    assert.match(await page.locator('[data-testid=flag-problem]').innerText(), /Archive refused/);
    assert.equal(await page.locator('[data-testid=flag-status]').innerText(), 'active');
  });

  test('a key without write scope sees no write controls; a forged write is 403; another team\'s flag is 404', async () => {
    const { page } = admin;
    // Keys: create (shown once).
    await page.goto(`${T}/keys`);
    await page.fill('#label', 'read only');
    for (const s of ['flag:read', 'team:read', 'cohort:read']) await page.check(`input[name=scopes][value="${s}"]`);
    await click(page, '[data-testid=create-key]');
    const secret = await page.locator('[data-testid=secret]').innerText();
    assert.match(secret, /^phx_/);
    await shoot(page, 'keys');
    await page.goto(`${T}/keys`);
    assert.equal(await page.locator('[data-testid=secret]').count(), 0, 'the secret is shown once');

    const other = await api('POST', '/api/projects', { name: 'Other project' });
    const otherTeam = other.team.id;
    const otherFlag = await api('POST', `/api/projects/${otherTeam}/feature_flags`, { key: 'other-team-flag', active: true, filters: { groups: [] } });

    const ro = await signIn(secret);
    assert.equal(await ro.page.locator('[data-testid=flags-table] tbody tr').count(), 7); // the demo's 4 and the 3 made above
    assert.equal(await ro.page.locator('[data-testid=new-flag]').count(), 0);
    await ro.page.goto(flagURL);
    assert.equal(await ro.page.locator('[data-testid=edit-flag]').count(), 0);
    assert.equal(await ro.page.locator('[data-testid=archive]').count(), 0);
    // Nor on the other pages it can read.
    await ro.page.goto(`${T}/cohorts`);
    assert.match(await ro.page.locator('[data-testid=cohorts-table]').innerText(), /Beta testers/);
    assert.equal(await ro.page.locator('[data-testid=create-cohort]').count(), 0);
    await ro.page.goto(`${T}/settings`);
    assert.match(await ro.page.locator('#gt-h + table').innerText(), /0\s+company/);
    assert.equal(await ro.page.locator('form[action$="/settings/group-types"]').count(), 0);
    assert.equal((await ro.page.goto(`${T}/early-access`)).status(), 403, 'no early_access:read scope');
    await ro.page.goto(flagURL);
    const csrf = await csrfOf(ro.page);
    let resp = await ro.page.request.post(`${flagURL}/state`, { form: { csrf, op: 'disable', version: '3' }, headers: { Origin: url }, maxRedirects: 0 });
    assert.equal(resp.status(), 403);
    resp = await ro.page.request.post(`${T}/flags/new`, {
      form: { csrf, action: 'save', key: 'forged', conds: '0', variants: '0', overrides: '0', active: 'on' }, headers: { Origin: url }, maxRedirects: 0,
    });
    assert.equal(resp.status(), 403);
    // Without the CSRF token even the admin's write is refused.
    resp = await page.request.post(`${flagURL}/state`, { form: { op: 'disable', version: '3' }, headers: { Origin: url }, maxRedirects: 0 });
    assert.equal(resp.status(), 403);

    const r404 = await ro.page.goto(`${url}/ui/t/${otherTeam}/flags/${otherFlag.id}`);
    assert.equal(r404.status(), 404);
    await assertContrast(ro.page, 'not found');
    const admin404 = await page.goto(`${url}/ui/t/${otherTeam}/flags/${otherFlag.id}`);
    assert.equal(admin404.status(), 200, 'the instance-wide key reaches the other team');

    // Revoke: its session ends.
    await page.goto(`${T}/keys`);
    await click(page, 'button[aria-label^="Revoke read only"]');
    await ro.page.goto(`${T}/flags`);
    assert.match(ro.page.url(), /\/ui\/login/);
    await ro.ctx.close();
  });

  test('early access features move through their stages', async () => {
    const { page } = admin;
    await page.goto(`${T}/early-access`);
    await click(page, 'form[action$="/early-access"] button[type=submit]');
    assert.match(await byId(page, 'name-err').innerText(), /name of 1 to 400 characters/);
    await page.fill('#ea-name', 'New editor');
    await page.fill('#ea-flag', 'new-editor');
    await page.selectOption('#ea-stage', { label: 'beta' });
    let resp = await click(page, 'form[action$="/early-access"] button[type=submit]');
    assert.equal(resp.status(), 200);
    const stage = page.locator('select[id^="stage-"]');
    assert.equal(await stage.locator('option:checked').innerText(), 'beta');
    await stage.selectOption({ label: 'general availability' });
    resp = await click(page, 'select[id^="stage-"] ~ button');
    assert.equal(await page.locator('select[id^="stage-"] option:checked').innerText(), 'general availability');
    const feats = await api('GET', `/api/early_access_features?token=${token}`);
    assert.deepEqual(feats.earlyAccessFeatures.map((f) => [f.flagKey, f.stage]), [['new-editor', 'general-availability']]);
  });

  test('group types, precompute status and the team activity with diffs', async () => {
    const { page } = admin;
    await page.goto(`${T}/settings`);
    assert.match(await page.locator('#gt-h + table').innerText(), /0\s+company/);
    await page.fill('#gt-index', '1');
    await page.fill('#gt-name', 'workspace');
    await click(page, 'form[action$="/settings/group-types"] button');
    assert.match(await page.locator('#gt-h + table').innerText(), /1\s+workspace/);
    // Renamed, then removed (an empty name).
    await page.fill('#gt-index', '1');
    await page.fill('#gt-name', 'workspaces');
    await click(page, 'form[action$="/settings/group-types"] button');
    assert.match(await page.locator('#gt-h + table').innerText(), /1\s+workspaces/);
    await page.fill('#gt-index', '1');
    await page.fill('#gt-name', '');
    await click(page, 'form[action$="/settings/group-types"] button');
    const types = await page.locator('#gt-h + table').innerText();
    assert.match(types, /0\s+company/);
    assert.doesNotMatch(types, /workspace/);
    assert.match(await page.locator('#pc-h').locator('..').innerText(), /rows|No precompute run yet/);
    await page.goto(`${T}/activity?scope=flag`);
    const text = await page.locator('ol.activity').innerText();
    assert.match(text, /updated flag/);
    assert.match(text, /created flag/);
    await page.locator('ol.activity details').first().locator('summary').click();
    assert.match(await page.locator('ol.activity details').first().innerText(), /before\s+after/);
    await assertContrast(page, 'activity with a diff open');
    assert.match(await page.locator('ol.activity').textContent(), /filters\.groups\[0\]\.rollout_percentage\s*30\s*40/);
    // The flag's own history, on its page.
    await page.goto(flagURL);
    const history = page.locator('section[aria-labelledby=activity-h]');
    assert.match(await history.innerText(), /created flag/);
    assert.match(await history.textContent(), /filters\.groups\[0\]\.rollout_percentage\s*30\s*40/);
    assert.doesNotMatch(await history.textContent(), /ui-depends-on-base|early access/i, 'only this flag\'s entries');
  });

  test('a behavioural cohort created in the UI: a flag targeting it turns on after the events', async () => {
    const { page } = admin;
    const EVENT = 'ui-checkout';
    const filter = { type: 'behavioral', key: EVENT, event_type: 'events', value: 'performed_event_multiple',
      operator: 'gte', operator_value: 3, time_value: 2, time_interval: 'hour' };
    await page.goto(`${T}/cohorts`);
    await page.fill('#cname', 'Checked out 3 times');
    await page.check('input[name=kind][value=behavioral]');
    await page.fill('#cfilters', JSON.stringify({ properties: { type: 'OR', values: [filter] } }));
    const resp = await click(page, '[data-testid=create-cohort]');
    assert.equal(resp.status(), 200);
    assert.match(page.url(), /\/cohorts\/\d+$/);
    const cohortID = Number(page.url().split('/').pop());
    await shoot(page, 'cohort-behavioural');

    // The management API holds it with the filter typed in the UI.
    const cohort = await api('GET', `/api/projects/${team}/cohorts/${cohortID}`);
    assert.equal(cohort.name, 'Checked out 3 times');
    assert.equal(cohort.is_static, false);
    const values = cohort.filters.properties.values;
    assert.equal(values.length, 1, JSON.stringify(cohort.filters));
    for (const [k, v] of Object.entries(filter)) assert.equal(values[0][k], v, `filters.properties.values[0].${k}`);

    const flag = await api('POST', `/api/projects/${team}/feature_flags`, { key: 'ui-checked-out', active: true,
      filters: { groups: [{ properties: [{ key: 'id', type: 'cohort', value: cohortID }], rollout_percentage: 100 }] } });
    const ask = (id) => posthog.getFeatureFlag(flag.key, id, { onlyEvaluateLocally: false, sendFeatureFlagEvents: false });
    // Demo persons: user-7 will check out 3 times, user-8 twice.
    assert.equal(await ask('user-7'), false, 'no event yet');

    // A backfill of the new cohort marks where live counting of its event
    // starts (it is refused until the cohort's change reaches the
    // projector), so every event published after it counts live.
    let bf;
    for (let n = 0; n < 300; n++) {
      const r = await fetch(`${url}/api/projects/${team}/cohorts/${cohortID}/backfill`, { method: 'POST', headers: { Authorization: `Bearer ${adminKey}` } });
      bf = { status: r.status, body: await r.text() };
      if (r.status === 200) break;
      assert.match(bf.body, /failed_precondition|FAILED_PRECONDITION/, `backfill: ${bf.status} ${bf.body}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(bf.status, 200, `backfill: ${bf.body}`);
    for (let n = 0; n < 300; n++) {
      const st = await api('GET', `/api/projects/${team}/cohorts/${cohortID}/backfill`);
      if (st.state === 'done') break;
      assert.notEqual(st.state, 'failed', JSON.stringify(st));
      await new Promise((r) => setTimeout(r, 100));
    }

    // user-8's two events are on the ingest stream before user-7's three
    // (each flush returns once the node has published), and the projector
    // applies the stream in order: when user-7 is on, user-8's two count.
    const capture = async (id, times) => {
      for (let i = 0; i < times; i++) posthog.capture({ distinctId: id, event: EVENT, properties: { n: i } });
      await posthog.flush();
    };
    const turnsOn = async (id) => {
      for (let n = 0; n < 600; n++) {
        if ((await ask(id)) === true) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    };
    await capture('user-8', 2);
    await capture('user-7', 3);
    assert.equal(await turnsOn('user-7'), true, 'user-7 checked out 3 times: the flag is on');
    assert.equal(await ask('user-8'), false, 'user-8 checked out twice: the flag stays off');
    assert.equal(await ask('user-9'), false, 'user-9 did not check out');
    await capture('user-8', 1);
    assert.equal(await turnsOn('user-8'), true, 'user-8 checked out a third time: the flag is on');
  });

  test('screenshots of the main pages at 1280 and 390 px', async () => {
    const { page } = admin;
    for (const [name, path] of [['flags', '/flags'], ['cohorts', '/cohorts'], ['early-access', '/early-access'],
      ['activity', '/activity'], ['settings', '/settings']]) {
      const resp = await page.goto(`${T}${path}`);
      assert.equal(resp.status(), 200, name);
      await shoot(page, name);
    }
  });

  test('sign out', async () => {
    const { page } = admin;
    await page.goto(`${T}/flags`);
    await click(page, 'form[action="/ui/logout"] button');
    assert.match(page.url(), /\/ui\/login$/);
    await shoot(page, 'login');
    await page.goto(`${T}/flags`);
    assert.match(page.url(), /\/ui\/login\?next=/);
    await admin.ctx.close();
  });

  test('keyboard only: sign in, create a flag, review, save and disable it', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(`${url}/`);
    await tabTo(page, '#key');
    await page.keyboard.type(adminKey);
    await submit(page, () => page.keyboard.press('Enter'));
    assert.match(page.url(), new RegExp(`/ui/t/${team}/flags$`));
    await tabTo(page, '[data-testid=new-flag]');
    await submit(page, () => page.keyboard.press('Enter'));
    await tabTo(page, '#key');
    await page.keyboard.type('ui-keyboard-only');
    await tabTo(page, '[id="c0.rollout"]');
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.type('25');
    await tabTo(page, 'button[name=action][value=review]:not(.default-action)');
    let resp = await submit(page, () => page.keyboard.press('Enter'));
    assert.equal(resp.status(), 200);
    assert.equal(await page.locator('[data-testid=preview]').count(), 1);
    await tabTo(page, 'button[name=action][value=save]:not(.default-action)');
    resp = await submit(page, () => page.keyboard.press('Enter'));
    assert.equal(resp.status(), 200);
    assert.match(page.url(), /\/flags\/\d+$/);
    assert.match(await page.locator('[data-testid=plain-conditions]').innerText(), /25% of them/);
    await tabTo(page, 'button[name=op][value=disable]');
    await submit(page, () => page.keyboard.press('Enter'));
    assert.equal(await page.locator('[data-testid=flag-status]').innerText(), 'disabled');
    await ctx.close();
  });
});
