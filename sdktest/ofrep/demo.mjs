// The demo's data (cmd/vexil/demo.go) and the expected values of its four
// flags, computed here with PostHog's hash through node:crypto, as
// sdktest/node does; shared by the OFREP suites.
import { createHash } from 'node:crypto';

export const demoPersons = Number(process.env.VEXIL_DEMO_PERSONS ?? 300);

// ---- the demo's data (cmd/vexil/demo.go) ----

const plans = ['free', 'free', 'pro', 'enterprise'];
const countries = ['US', 'US', 'DE', 'FR', 'GB', 'BR', 'JP'];
export const person = (i) => ({
  distinctId: `user-${i}`,
  email: i % 50 === 0 ? `user-${i}@vexil.dev` : `user-${i}@example.com`,
  plan: plans[i % plans.length],
  country: countries[i % countries.length],
});
export const company = (k) => ({ key: `company-${k}`, plan: plans[k % plans.length], seats: (k * 37) % 1000 });

// ---- PostHog's bucketing (docs/posthog-compat.md §4) ----

const LONG_SCALE = 0xfffffffffffffff;
function hash(key, id, salt = '') {
  const hex = createHash('sha1').update(`${key}.${id}${salt}`, 'utf8').digest('hex');
  return Number(BigInt('0x' + hex.slice(0, 15))) / LONG_SCALE;
}
function variantFor(key, id, variants) {
  const h = hash(key, id, 'variant');
  let min = 0;
  for (const [v, pct] of variants) {
    const max = min + pct / 100;
    if (h >= min && h < max) return v;
    min = max;
  }
  return true;
}
const checkoutVariants = [['control', 34], ['one-click', 33], ['express', 33]];
export const prices = { control: 10, 'one-click': 9, express: 12 };

export function expected(p, c) {
  const beta = ['pro', 'enterprise'].includes(p.plan) || hash('beta-dashboard', p.distinctId) <= 0.2;
  const checkout = p.country === 'US' ? variantFor('checkout-experiment', p.distinctId, checkoutVariants) : false;
  return {
    'beta-dashboard': beta,
    'checkout-experiment': checkout,
    'sso-login': c !== null && c.plan === 'enterprise',
    'new-billing': p.email.includes('@vexil.dev') || (c !== null && c.seats > 500),
  };
}

export const cases = [];
for (let i = 0; i < demoPersons; i += 11) {
  const p = person(i);
  cases.push({ p, c: company((i * 13 + 5) % 200) }, { p, c: null });
}
export const contextOf = (p, c) => ({ targetingKey: p.distinctId, ...(c ? { groups: { company: c.key } } : {}) });
export const label = (p, c) => `${p.distinctId}${c ? ` in ${c.key}` : ''}`;

