// The public status page in a real browser: playwright-core drives Debian's
// headless chromium against a running `vexil serve --demo`
// (scripts/status-test.sh starts it and passes VEXIL_URL,
// VEXIL_PROJECT_TOKEN, VEXIL_PERSONAL_KEY, VEXIL_CHROMIUM). The test sends
// remote (/flags, /decide) and local (definitions polls, 200 then 304)
// evaluation requests, opens /status without any key, and checks that the
// page renders with its charts and that every number it shows for the
// current window equals what the node's /metrics says: request counts,
// availability, and p50/p90/p99 as Prometheus' histogram_quantile computes
// them from vexil_evalsvc_request_seconds' buckets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const url = need('VEXIL_URL');
const token = need('VEXIL_PROJECT_TOKEN');
const personalKey = need('VEXIL_PERSONAL_KEY');
const executablePath = need('VEXIL_CHROMIUM');

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run scripts/status-test.sh`);
  return v;
}

const SERIES = { flags: 'remote', decide: 'remote', evaluate: 'remote', definitions: 'local' };

// parseMetrics reads vexil_evalsvc_request_seconds and
// vexil_evalsvc_requests_total from Prometheus' text format, summed by
// series: { remote: { buckets: Map(le -> cumulative), count, errors, clientErrors } }.
function parseMetrics(text) {
  const out = {};
  const get = (s) => (out[s] ??= { buckets: new Map(), count: 0, errors: 0, clientErrors: 0 });
  for (const line of text.split('\n')) {
    const m = line.match(/^(vexil_evalsvc_request_seconds_bucket|vexil_evalsvc_request_seconds_count|vexil_evalsvc_requests_total)\{([^}]*)\} (\S+)$/);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const series = SERIES[labels.endpoint];
    if (!series) continue;
    const s = get(series);
    const v = Number(m[3]);
    if (m[1].endsWith('_bucket')) {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      s.buckets.set(le, (s.buckets.get(le) ?? 0) + v);
    } else if (m[1].endsWith('_count')) {
      s.count += v;
    } else if (labels.code === '5xx') {
      s.errors += v;
    } else if (labels.code === '4xx') {
      s.clientErrors += v;
    }
  }
  return out;
}

// histogramQuantile is Prometheus' histogram_quantile over cumulative
// buckets, written from its definition (not from Vexil's code).
function histogramQuantile(q, buckets) {
  const bs = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = bs[bs.length - 1][1];
  if (!total) return NaN;
  let rank = q * total;
  let b = bs.findIndex(([, c]) => c >= rank);
  if (bs[b][0] === Infinity) return bs[bs.length - 2][0];
  let start = 0;
  let count = bs[b][1];
  if (b > 0) {
    start = bs[b - 1][0];
    count -= bs[b - 1][1];
    rank -= bs[b - 1][1];
  }
  return start + (bs[b][0] - start) * (rank / count);
}

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
});
after(async () => {
  await browser?.close();
});

test('traffic, then the status page renders and matches /metrics', async () => {
  for (let i = 0; i < 40; i++) {
    const r = await fetch(`${url}/flags/?v=2`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token, distinct_id: `user-${i}` }) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  for (let i = 0; i < 10; i++) {
    const r = await fetch(`${url}/decide/?v=3`, { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token, distinct_id: `user-${i}` }) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  let etag;
  for (let i = 0; i < 6; i++) {
    const headers = { Authorization: `Bearer ${personalKey}` };
    if (etag) headers['If-None-Match'] = etag;
    const r = await fetch(`${url}/api/feature_flag/local_evaluation/?token=${token}`, { headers });
    assert.equal(r.status, i === 0 ? 200 : 304);
    etag = r.headers.get('etag');
    await r.arrayBuffer();
  }

  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } }); // no key, no cookie
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const resp = await page.goto(`${url}/status`);
  assert.equal(resp.status(), 200);
  await page.waitForSelector('body[data-charts]');
  assert.equal(await page.getAttribute('body', 'data-charts'), 'drawn');
  assert.deepEqual(errors, []);
  // Three charts per series (latency by minute and by hour, availability
  // by hour), each a uPlot canvas.
  assert.equal(await page.locator('.uplot canvas').count(), 6);

  const metrics = parseMetrics(await (await fetch(`${url}/metrics`)).text());
  for (const series of ['remote', 'local']) {
    const row = page.locator(`#series-${series} tr[data-window="5m"]`);
    const cell = async (cls) => (await row.locator(`td.${cls}`).textContent()).trim();
    const m = metrics[series];
    assert.ok(m, `/metrics has no ${series} requests`);
    assert.equal(Number(await cell('requests')), m.count, `${series} requests`);
    for (const [cls, q] of [['p50', 0.5], ['p90', 0.9], ['p99', 0.99]]) {
      const want = (histogramQuantile(q, m.buckets) * 1000).toFixed(3);
      assert.equal(await cell(cls), want, `${series} ${cls}`);
    }
    const avail = (100 * (1 - m.errors / (m.count - m.clientErrors))).toFixed(4);
    assert.equal(await cell('availability'), avail, `${series} availability`);
  }
  // The 40 + 10 and 6 requests of this test are among them.
  assert.ok(metrics.remote.count >= 50 && metrics.local.count >= 6);
  await ctx.close();
});
