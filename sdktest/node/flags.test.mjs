// posthog-node 5.70 against a running `vexil serve --demo` (scripts/sdk-node.sh
// starts it and passes VEXIL_URL, VEXIL_PROJECT_TOKEN, VEXIL_PERSONAL_KEY).
//
// Every expectation is computed here, independently of Vexil and of
// posthog-node, from the demo's data as cmd/vexil/demo.go writes it and from
// the rules of its four flags; the percentage rollouts use PostHog's hash
// (docs/posthog-compat.md §4) through node:crypto.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PostHog } from 'posthog-node';

const url = need('VEXIL_URL');
const token = need('VEXIL_PROJECT_TOKEN');
const personalKey = need('VEXIL_PERSONAL_KEY');
const demoPersons = Number(process.env.VEXIL_DEMO_PERSONS ?? 300);

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/sdk-node.sh`);
  return v;
}

// ---- the demo's data (cmd/vexil/demo.go, publishDemoPersons) ----

const plans = ['free', 'free', 'pro', 'enterprise'];
const countries = ['US', 'US', 'DE', 'FR', 'GB', 'BR', 'JP'];

function person(i) {
  return {
    distinctId: `user-${i}`,
    props: {
      email: i % 50 === 0 ? `user-${i}@vexil.dev` : `user-${i}@example.com`,
      plan: plans[i % plans.length],
      country: countries[i % countries.length],
    },
  };
}

function company(k) {
  return { key: `company-${k}`, props: { name: `Company ${k}`, plan: plans[k % plans.length], seats: (k * 37) % 1000 } };
}

// ---- PostHog's bucketing (docs/posthog-compat.md §4) ----

const LONG_SCALE = 0xfffffffffffffff; // a float64: rounds to 2^60, as in every SDK

function hash(key, id, salt = '', sep = '.') {
  const hex = createHash('sha1').update(`${key}${sep}${id}${salt}`, 'utf8').digest('hex');
  // 15 hex digits (60 bits) rounded to the nearest float64.
  return Number(BigInt('0x' + hex.slice(0, 15))) / LONG_SCALE;
}

function inRollout(key, id, pct) {
  return hash(key, id) <= pct / 100;
}

function variantFor(key, id, variants) {
  const h = hash(key, id, 'variant');
  let min = 0;
  for (const [v, pct] of variants) {
    const max = min + pct / 100;
    if (h >= min && h < max) return v;
    min = max;
  }
  return true; // past the last variant: enabled without one
}

// ---- the demo's flags (demoFlags in cmd/vexil/demo.go), evaluated here ----

const checkoutVariants = [['control', 34], ['one-click', 33], ['express', 33]];
const prices = { control: 10, 'one-click': 9, express: 12 };

// expected(p, c) -> {flag: {value, payload}} for person p and company c (or null: no groups).
function expected(p, c) {
  const out = {};
  // beta-dashboard: plan in (pro, enterprise) at 100%, else 20% of everyone.
  const beta = ['pro', 'enterprise'].includes(p.props.plan) || inRollout('beta-dashboard', p.distinctId, 20);
  out['beta-dashboard'] = { value: beta, payload: beta ? { layout: 'grid' } : null };
  // checkout-experiment: country exact US at 100%, three variants.
  const checkout = p.props.country === 'US' ? variantFor('checkout-experiment', p.distinctId, checkoutVariants) : false;
  out['checkout-experiment'] = { value: checkout, payload: typeof checkout === 'string' ? { price: prices[checkout] } : null };
  // sso-login: group flag on company, company plan exact enterprise.
  out['sso-login'] = { value: c !== null && c.props.plan === 'enterprise', payload: null };
  // new-billing: email icontains @vexil.dev, OR (company condition) seats > 500.
  const billing = p.props.email.toLowerCase().includes('@vexil.dev') || (c !== null && c.props.seats > 500);
  out['new-billing'] = { value: billing, payload: null };
  return out;
}

const flagKeys = ['beta-dashboard', 'checkout-experiment', 'sso-login', 'new-billing'];
// Flags the SDK evaluates itself; new-billing mixes person and group
// conditions, which Vexil serves with ensure_experience_continuity so that
// the SDK asks the server.
const localKeys = ['beta-dashboard', 'checkout-experiment', 'sso-login'];
const serverOnlyKeys = ['new-billing'];

// ---- the cases: persons spread over plans, countries and internal emails,
// each with a company (spread over plans and seat counts) and without one ----

const personIdx = new Set();
for (let i = 0; i < demoPersons; i += 7) personIdx.add(i);
for (let i = 0; i < demoPersons; i += 50) personIdx.add(i); // every @vexil.dev person
personIdx.add(demoPersons - 1);
const cases = [];
for (const i of [...personIdx].sort((a, b) => a - b)) {
  const p = person(i);
  cases.push({ p, c: company((i * 13 + 5) % 200) });
  cases.push({ p, c: null });
}

function options(c, extra = {}) {
  return { ...(c ? { groups: { company: c.key } } : {}), sendFeatureFlagEvents: false, ...extra };
}

function localOptions(p, c, extra = {}) {
  return options(c, {
    personProperties: p.props,
    ...(c ? { groupProperties: { company: c.props } } : {}),
    ...extra,
  });
}

// posthog-node lists an enabled flag whose payload is null with the value
// undefined in featureFlagPayloads; a reader cannot tell that from absent.
function defined(obj) {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

function label(p, c) {
  return `${p.distinctId}${c ? ` in ${c.key}` : ' (no groups)'}`;
}

// ---- clients; a fetch wrapper records what each one asked the server ----

function recordingFetch(log) {
  return async (input, init) => {
    const u = new URL(typeof input === 'string' ? input : input.url);
    log.push(`${init?.method ?? 'GET'} ${u.pathname}`);
    return fetch(input, init);
  };
}

const remoteCalls = [];
const localCalls = [];
const common = {
  host: url,
  flushAt: 1000,
  flushInterval: 0,
  sendFeatureFlagEvent: false,
  disableGeoip: true,
  featureFlagsPollingInterval: 60000,
  requestTimeout: 10000,
};
let remote;
let local;
const sdkErrors = [];

after(async () => {
  await Promise.all([remote?.shutdown(5000), local?.shutdown(5000)]);
});

describe('demo data', () => {
  test("the test's hash matches the SDK vectors (flags/testdata/posthog/hash.json)", () => {
    const vectors = JSON.parse(readFileSync(new URL('../../flags/testdata/posthog/hash.json', import.meta.url), 'utf8'));
    assert.ok(vectors.rows.length > 400);
    for (const r of vectors.rows) assert.equal(hash(r.flag_key, r.distinct_id, r.salt, r.separator ?? '.'), r.hash, JSON.stringify(r));
  });

  test(`covers every kind of case (${cases.length} cases, ${personIdx.size} persons)`, () => {
    assert.ok(personIdx.size >= 30);
    const values = {};
    for (const { p, c } of cases) {
      for (const [k, e] of Object.entries(expected(p, c))) (values[k] ??= new Set()).add(String(e.value));
    }
    assert.deepEqual([...values['beta-dashboard']].sort(), ['false', 'true']);
    assert.deepEqual([...values['checkout-experiment']].sort(), ['control', 'express', 'false', 'one-click']);
    assert.deepEqual([...values['sso-login']].sort(), ['false', 'true']);
    assert.deepEqual([...values['new-billing']].sort(), ['false', 'true']);
    // beta-dashboard through its 20% rollout alone, both ways.
    const rollout = cases.filter(({ p }) => p.props.plan === 'free').map(({ p }) => inRollout('beta-dashboard', p.distinctId, 20));
    assert.ok(rollout.includes(true) && rollout.includes(false));
    // new-billing by email only, and by company only.
    assert.ok(cases.some(({ p, c }) => p.props.email.endsWith('@vexil.dev') && (c === null || c.props.seats <= 500)));
    assert.ok(cases.some(({ p, c }) => !p.props.email.endsWith('@vexil.dev') && c !== null && c.props.seats > 500));
  });
});

describe('remote evaluation (POST /flags, no personal key)', () => {
  before(() => {
    remote = new PostHog(token, { ...common, fetch: recordingFetch(remoteCalls) });
    remote.on('error', (e) => sdkErrors.push(`remote: ${e?.message ?? e}`));
  });

  test('getFeatureFlag and getFeatureFlagPayload', async () => {
    for (const { p, c } of cases) {
      const want = expected(p, c);
      for (const key of flagKeys) {
        assert.deepEqual(await remote.getFeatureFlag(key, p.distinctId, options(c)), want[key].value,
          `getFeatureFlag ${key} for ${label(p, c)}`);
        assert.deepEqual(await remote.getFeatureFlagPayload(key, p.distinctId, undefined, options(c)), want[key].payload,
          `getFeatureFlagPayload ${key} for ${label(p, c)}`);
      }
    }
  });

  test('getAllFlags and getAllFlagsAndPayloads', async () => {
    for (const { p, c } of cases) {
      const want = expected(p, c);
      const wantFlags = Object.fromEntries(flagKeys.map((k) => [k, want[k].value]));
      const wantPayloads = Object.fromEntries(flagKeys.filter((k) => want[k].payload !== null).map((k) => [k, want[k].payload]));
      assert.deepEqual(await remote.getAllFlags(p.distinctId, options(c)), wantFlags, `getAllFlags for ${label(p, c)}`);
      const both = await remote.getAllFlagsAndPayloads(p.distinctId, options(c));
      assert.deepEqual({ ...both, featureFlagPayloads: defined(both.featureFlagPayloads) }, { featureFlags: wantFlags, featureFlagPayloads: wantPayloads },
        `getAllFlagsAndPayloads for ${label(p, c)}`);
    }
  });

  test('evaluateFlags: one POST /flags per person, every flag', async () => {
    const before = remoteCalls.length;
    for (const { p, c } of cases) {
      const want = expected(p, c);
      const ev = await remote.evaluateFlags(p.distinctId, options(c));
      assert.deepEqual([...ev.keys].sort(), [...flagKeys].sort(), `evaluateFlags keys for ${label(p, c)}`);
      for (const key of flagKeys) {
        assert.deepEqual(ev.getFlag(key), want[key].value, `evaluateFlags getFlag ${key} for ${label(p, c)}`);
        assert.deepEqual(ev.getFlagPayload(key) ?? null, want[key].payload, `evaluateFlags getFlagPayload ${key} for ${label(p, c)}`);
      }
    }
    assert.equal(remoteCalls.length - before, cases.length);
  });

  test('went to the server: POST /flags/ only', () => {
    assert.ok(remoteCalls.length > 0);
    assert.deepEqual([...new Set(remoteCalls)], ['POST /flags/']);
  });
});

describe('local evaluation (personal key, definitions downloaded)', () => {
  before(async () => {
    local = new PostHog(token, { ...common, personalApiKey: personalKey, fetch: recordingFetch(localCalls) });
    local.on('error', (e) => sdkErrors.push(`local: ${e?.message ?? e}`));
    assert.equal(await local.waitForLocalEvaluationReady(15000), true,
      `posthog-node could not load the flag definitions from ${url}/flags/definitions: ${sdkErrors.join('; ')}`);
  });

  test('definitions mark the mixed user+group flag server-only', async () => {
    const res = await fetch(`${url}/flags/definitions?token=${encodeURIComponent(token)}&send_cohorts`, {
      headers: { Authorization: `Bearer ${personalKey}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    const defs = await res.json();
    const byKey = Object.fromEntries(defs.flags.map((f) => [f.key, f]));
    assert.deepEqual(Object.keys(byKey).sort(), [...flagKeys].sort());
    for (const k of localKeys) assert.equal(byKey[k].ensure_experience_continuity, false, k);
    for (const k of serverOnlyKeys) assert.equal(byKey[k].ensure_experience_continuity, true, k);
    assert.deepEqual(defs.group_type_mapping, { 0: 'company' });
  });

  test('getFeatureFlag and getFeatureFlagPayload, onlyEvaluateLocally, without a request', async () => {
    const before = localCalls.length;
    for (const { p, c } of cases) {
      const want = expected(p, c);
      for (const key of localKeys) {
        const o = localOptions(p, c, { onlyEvaluateLocally: true });
        assert.deepEqual(await local.getFeatureFlag(key, p.distinctId, o), want[key].value,
          `local getFeatureFlag ${key} for ${label(p, c)}`);
        assert.deepEqual(await local.getFeatureFlagPayload(key, p.distinctId, undefined, o), want[key].payload,
          `local getFeatureFlagPayload ${key} for ${label(p, c)}`);
      }
      // The server-only flag cannot be decided locally.
      for (const key of serverOnlyKeys) {
        assert.equal(await local.getFeatureFlag(key, p.distinctId, localOptions(p, c, { onlyEvaluateLocally: true })), undefined,
          `local-only ${key} for ${label(p, c)} must be undecided`);
      }
    }
    assert.deepEqual(localCalls.slice(before), [], 'local evaluation asked the server');
  });

  test('getAllFlags, onlyEvaluateLocally: every locally evaluable flag, no request', async () => {
    const before = localCalls.length;
    for (const { p, c } of cases) {
      const want = expected(p, c);
      const wantFlags = Object.fromEntries(localKeys.map((k) => [k, want[k].value]));
      assert.deepEqual(await local.getAllFlags(p.distinctId, localOptions(p, c, { onlyEvaluateLocally: true })), wantFlags,
        `local getAllFlags for ${label(p, c)}`);
    }
    assert.deepEqual(localCalls.slice(before), [], 'local evaluation asked the server');
  });

  test('new-billing falls back to the server and gets the right value', async () => {
    const before = localCalls.length;
    let asked = 0;
    for (const { p, c } of cases) {
      const want = expected(p, c);
      for (const key of serverOnlyKeys) {
        assert.deepEqual(await local.getFeatureFlag(key, p.distinctId, localOptions(p, c)), want[key].value,
          `fallback getFeatureFlag ${key} for ${label(p, c)}`);
        assert.deepEqual(await local.getFeatureFlagPayload(key, p.distinctId, undefined, localOptions(p, c)), want[key].payload,
          `fallback getFeatureFlagPayload ${key} for ${label(p, c)}`);
        asked += 2;
      }
    }
    assert.deepEqual(localCalls.slice(before), Array(asked).fill('POST /flags/'), 'each server-only lookup is one POST /flags/');
  });

  test('getAllFlags and getAllFlagsAndPayloads without onlyEvaluateLocally: local values plus the server for new-billing', async () => {
    for (const { p, c } of cases) {
      const want = expected(p, c);
      const wantFlags = Object.fromEntries(flagKeys.map((k) => [k, want[k].value]));
      const wantPayloads = Object.fromEntries(flagKeys.filter((k) => want[k].payload !== null).map((k) => [k, want[k].payload]));
      assert.deepEqual(await local.getAllFlags(p.distinctId, localOptions(p, c)), wantFlags, `getAllFlags for ${label(p, c)}`);
      const both = await local.getAllFlagsAndPayloads(p.distinctId, localOptions(p, c));
      assert.deepEqual({ ...both, featureFlagPayloads: defined(both.featureFlagPayloads) },
        { featureFlags: wantFlags, featureFlagPayloads: wantPayloads }, `getAllFlagsAndPayloads for ${label(p, c)}`);
    }
  });

  test('evaluateFlags: local values, and new-billing from the server unless onlyEvaluateLocally', async () => {
    for (const { p, c } of cases) {
      const want = expected(p, c);
      let before = localCalls.length;
      const only = await local.evaluateFlags(p.distinctId, localOptions(p, c, { onlyEvaluateLocally: true }));
      assert.deepEqual(localCalls.slice(before), [], `evaluateFlags onlyEvaluateLocally asked the server for ${label(p, c)}`);
      assert.deepEqual([...only.keys].sort(), [...localKeys].sort());
      assert.deepEqual({ ...only.unresolvedFlags }, { 'new-billing': 'experience_continuity' });
      before = localCalls.length;
      const ev = await local.evaluateFlags(p.distinctId, localOptions(p, c));
      assert.deepEqual(localCalls.slice(before), ['POST /flags/'], `evaluateFlags for ${label(p, c)}`);
      for (const key of flagKeys) {
        if (localKeys.includes(key)) {
          assert.deepEqual(only.getFlag(key), want[key].value, `local evaluateFlags getFlag ${key} for ${label(p, c)}`);
          assert.deepEqual(only.getFlagPayload(key) ?? null, want[key].payload, `local evaluateFlags getFlagPayload ${key} for ${label(p, c)}`);
        } else {
          assert.equal(only.getFlag(key), undefined, `${key} for ${label(p, c)} must be undecided locally`);
        }
        assert.deepEqual(ev.getFlag(key), want[key].value, `evaluateFlags getFlag ${key} for ${label(p, c)}`);
        assert.deepEqual(ev.getFlagPayload(key) ?? null, want[key].payload, `evaluateFlags getFlagPayload ${key} for ${label(p, c)}`);
      }
    }
  });

  test('asked the server only for definitions and /flags', () => {
    assert.ok(localCalls.includes('GET /flags/definitions'), localCalls.join(', '));
    assert.deepEqual([...new Set(localCalls)].sort(), ['GET /flags/definitions', 'POST /flags/']);
  });
});

describe('client health', () => {
  test('no SDK errors, and no events sent (shut down, queues flushed)', async () => {
    await Promise.all([remote?.shutdown(5000), local?.shutdown(5000)]);
    assert.deepEqual(sdkErrors, []);
    const sent = [...remoteCalls, ...localCalls].filter((c) => !['POST /flags/', 'GET /flags/definitions'].includes(c));
    assert.deepEqual(sent, []);
  });
});
