// OpenFeature's official OFREP provider (@openfeature/ofrep-provider with
// @openfeature/server-sdk) and OFREP client (@openfeature/ofrep-core's
// OFREPApi, for the bulk endpoint) against a running `vexil serve --demo`
// (scripts/sdk-ofrep.sh starts it and passes VEXIL_URL, VEXIL_PROJECT_TOKEN).
//
// The expectations are computed here from the demo's data (cmd/vexil/demo.go)
// and the rules of its four flags, with PostHog's hash through node:crypto,
// as sdktest/node does; the evaluation context carries the targeting key
// (and the company as context.groups) only: Vexil reads the stored person
// and group.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OFREPApi } from '@openfeature/ofrep-core';
import { cases, contextOf, expected, label, person, prices } from './demo.mjs';

const url = need('VEXIL_URL');
const token = need('VEXIL_PROJECT_TOKEN');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/sdk-ofrep.sh`);
  return v;
}

let client;
before(async () => {
  await OpenFeature.setProviderAndWait('vexil', new OFREPProvider({ baseUrl: url, headers: { Authorization: `Bearer ${token}` } }));
  client = OpenFeature.getClient('vexil');
});
after(async () => {
  await OpenFeature.close();
});

describe('@openfeature/ofrep-provider: single flag evaluation', () => {
  test('boolean flags, from the stored person and group', async () => {
    for (const { p, c } of cases) {
      const want = expected(p, c);
      for (const key of ['beta-dashboard', 'sso-login', 'new-billing']) {
        const d = await client.getBooleanDetails(key, !want[key], contextOf(p, c));
        assert.equal(d.value, want[key], `${key} for ${label(p, c)}: ${JSON.stringify(d)}`);
        assert.equal(d.errorCode, undefined, `${key} for ${label(p, c)}: ${JSON.stringify(d)}`);
        assert.equal(d.reason, want[key] ? 'TARGETING_MATCH' : 'DEFAULT', `${key} for ${label(p, c)}`);
        assert.equal(typeof d.flagMetadata.flagId, 'number');
      }
    }
  });

  test('a multivariate flag: the variant as a string, the payload in the metadata', async () => {
    let seen = 0;
    for (const { p, c } of cases) {
      const want = expected(p, c)['checkout-experiment'];
      const d = await client.getStringDetails('checkout-experiment', 'none', contextOf(p, c));
      if (typeof want === 'string') {
        seen++;
        assert.equal(d.value, want, label(p, c));
        assert.equal(d.variant, want);
        assert.equal(d.reason, 'TARGETING_MATCH');
        assert.deepEqual(JSON.parse(d.flagMetadata.payload), { price: prices[want] });
      } else {
        // Disabled: false is not a string; the caller's default.
        assert.equal(d.value, 'none', label(p, c));
        assert.equal(d.errorCode, 'TYPE_MISMATCH');
      }
    }
    assert.ok(seen > 0);
  });

  test('context properties override the stored ones', async () => {
    const p = person(0); // free plan in the store
    const d = await client.getBooleanDetails('beta-dashboard', false, { targetingKey: 'someone-new', plan: 'enterprise' });
    assert.equal(d.value, true, JSON.stringify(d));
    assert.equal(d.flagMetadata.posthogReason, 'condition_match');
    assert.ok(p);
  });

  test("OFREP's error codes", async () => {
    let d = await client.getBooleanDetails('no-such-flag', true, { targetingKey: 'user-1' });
    assert.equal(d.value, true);
    assert.equal(d.errorCode, 'FLAG_NOT_FOUND');
    d = await client.getBooleanDetails('beta-dashboard', true, { plan: 'pro' });
    assert.equal(d.errorCode, 'TARGETING_KEY_MISSING');
    d = await client.getBooleanDetails('beta-dashboard', true, { targetingKey: 'user-1', groups: ['company-1'] });
    assert.equal(d.errorCode, 'INVALID_CONTEXT');
  });

  test('a wrong token gives the default', async () => {
    await OpenFeature.setProviderAndWait('wrong', new OFREPProvider({ baseUrl: url, headers: { Authorization: 'Bearer phc_wrong' } }));
    const d = await OpenFeature.getClient('wrong').getBooleanDetails('beta-dashboard', true, { targetingKey: 'user-2' });
    assert.equal(d.value, true);
    assert.equal(d.reason, 'ERROR');
  });
});

describe('@openfeature/ofrep-core: bulk evaluation', () => {
  const api = new OFREPApi(url);
  const headers = { Authorization: `Bearer ${token}` };

  test('every flag for a person; If-None-Match with the ETag gives 304', async () => {
    const { p, c } = cases[0];
    const want = expected(p, c);
    const res = await api.postBulkEvaluateFlags({ context: contextOf(p, c) }, { headers });
    assert.equal(res.httpStatus, 200);
    const got = Object.fromEntries(res.value.flags.map((f) => [f.key, f.value]));
    assert.deepEqual(got, Object.fromEntries(Object.entries(want).map(([k, v]) => [k, v])));
    const etag = res.httpResponse.headers.get('ETag');
    assert.match(etag, /^"[0-9a-f]{16}"$/);
    const again = await api.postBulkEvaluateFlags({ context: contextOf(p, c) }, { headers: { ...headers, 'If-None-Match': etag } });
    assert.equal(again.httpStatus, 304);
    assert.equal(again.value, undefined);
  });

  test('a bulk refusal has the bulk failure shape', async () => {
    const res = await api.postBulkEvaluateFlags({ context: {} }, { headers });
    assert.equal(res.httpStatus, 400);
    assert.equal(res.value.errorCode, 'TARGETING_KEY_MISSING');
  });
});
