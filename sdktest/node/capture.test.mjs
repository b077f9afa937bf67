// posthog-node 5.70 sends events and person, alias and group updates to
// Vexil's capture endpoints (scripts/sdk-node.sh runs it against `vexil
// serve --demo`); Vexil publishes them on its ingest stream, and /flags then
// answers with the new properties, and a behavioural cohort's flag flips
// once the person performed the event.
//
// The team is made here through the management API, so nothing else writes
// to it: a person flag, a group flag, and a flag on a behavioural cohort
// ("performed checkout in the last day").
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { PostHog } from 'posthog-node';

const url = need('VEXIL_URL');
const personalKey = need('VEXIL_PERSONAL_KEY');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/sdk-node.sh`);
  return v;
}

async function api(method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${personalKey}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function flagsFor(token, distinctId, groups) {
  const res = await fetch(`${url}/flags?v=2`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token, distinct_id: distinctId, ...(groups ? { groups } : {}) }),
  });
  assert.equal(res.status, 200, `/flags for ${distinctId}`);
  const body = await res.json();
  return Object.fromEntries(Object.entries(body.flags).map(([k, v]) => [k, v.variant ?? v.enabled]));
}

// until polls /flags until check(flags) holds: the ingest stream and the
// projector are asynchronous. The bound is a hang guard, not a timing
// assertion; the failure says what /flags last answered.
async function until(what, token, distinctId, groups, check) {
  let last;
  for (let i = 0; i < 600; i++) {
    last = await flagsFor(token, distinctId, groups);
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: /flags for ${distinctId} still answers ${JSON.stringify(last)}`);
}

let token;
let client;
const sdkErrors = [];

before(async () => {
  const created = await api('POST', '/api/projects', { name: 'posthog-node capture' });
  const team = created.team;
  token = team.api_token;
  await api('PUT', `/api/projects/${team.id}/group_types/0`, { group_type: 'company', version: team.version });
  const cohort = await api('POST', `/api/projects/${team.id}/cohorts/`, {
    name: 'checked out today', is_static: false,
    filters: { properties: { type: 'AND', values: [{ key: 'checkout', type: 'behavioral', value: 'performed_event', time_value: 1, time_interval: 'day' }] } },
  });
  const flag = (key, filters) => api('POST', `/api/projects/${team.id}/feature_flags/`, { key, name: key, active: true, filters });
  await flag('pro-plan', { groups: [{ properties: [{ key: 'plan', type: 'person', operator: 'exact', value: ['pro'] }], rollout_percentage: 100 }] });
  await flag('big-company', { aggregation_group_type_index: 0, groups: [{ properties: [{ key: 'seats', type: 'group', group_type_index: 0, operator: 'gte', value: 100 }], rollout_percentage: 100 }] });
  await flag('checkout-cohort', { groups: [{ properties: [{ key: 'id', type: 'cohort', value: cohort.id }], rollout_percentage: 100 }] });
  client = new PostHog(token, { host: url, flushAt: 1, flushInterval: 0, disableGeoip: true, requestTimeout: 10000, fetchRetryCount: 0 });
  client.on('error', (e) => sdkErrors.push(e?.message ?? String(e)));
});

after(async () => {
  await client?.shutdown();
});

describe('posthog-node capture, identify, groupIdentify and alias feed /flags', () => {
  test('identify sets person properties', async () => {
    client.identify({ distinctId: 'node-1', properties: { plan: 'pro', email: 'node-1@example.com' } });
    await client.flush();
    assert.deepEqual(sdkErrors, []);
    const f = await until('identify', token, 'node-1', null, (f) => f['pro-plan'] === true);
    assert.equal(f['checkout-cohort'], false);
  });

  test('alias puts a second distinct id on the person', async () => {
    client.alias({ distinctId: 'node-1', alias: 'node-1-device' });
    await client.flush();
    assert.deepEqual(sdkErrors, []);
    await until('alias', token, 'node-1-device', null, (f) => f['pro-plan'] === true);
  });

  test('groupIdentify sets group properties', async () => {
    client.groupIdentify({ groupType: 'company', groupKey: 'acme', properties: { seats: 500 } });
    client.groupIdentify({ groupType: 'company', groupKey: 'tiny', properties: { seats: 3 } });
    await client.flush();
    assert.deepEqual(sdkErrors, []);
    await until('groupIdentify', token, 'node-1', { company: 'acme' }, (f) => f['big-company'] === true);
    const tiny = await flagsFor(token, 'node-1', { company: 'tiny' });
    assert.equal(tiny['big-company'], false);
  });

  test('capture flips a behavioural cohort flag; $set on an event changes a property', async () => {
    client.capture({ distinctId: 'node-1', event: 'checkout', properties: { amount: 30 } });
    await client.flush();
    assert.deepEqual(sdkErrors, []);
    await until('capture', token, 'node-1', null, (f) => f['checkout-cohort'] === true);
    // Event counters live in the row of the distinct id that performed the
    // event (docs/cohorts.md), so the alias's row does not count it; its
    // person properties are the person's.
    assert.equal((await flagsFor(token, 'node-1-device'))['pro-plan'], true);
    client.capture({ distinctId: 'node-1', event: 'downgrade', properties: { $set: { plan: 'free' } } });
    await client.flush();
    await until('$set', token, 'node-1', null, (f) => f['pro-plan'] === false);
    // Through the SDK's own remote evaluation too.
    assert.equal(await client.getFeatureFlag('checkout-cohort', 'node-1', { sendFeatureFlagEvents: false }), true);
    assert.equal(await client.getFeatureFlag('pro-plan', 'node-1', { sendFeatureFlagEvents: false }), false);
  });
});
