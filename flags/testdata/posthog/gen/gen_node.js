// Run posthog-node over the committed inputs and record its answers, to
// cross-check posthog-python's.
//
// Usage: node gen_node.js INPUTS_DIR WORK_DIR   (from a directory where
// posthog-node and @posthog/core are installed; regen.sh pins the versions)
//
// Writes node.json to WORK_DIR. No network: each case gets its own client
// whose fetch is a stub serving that case's definitions; the host is a
// closed loopback port.
'use strict'

const fs = require('fs')
const path = require('path')
const { PostHog } = require('posthog-node')
const core = require('@posthog/core')

function version(pkg) {
  const main = require.resolve(pkg)
  let dir = path.dirname(main)
  while (!fs.existsSync(path.join(dir, 'package.json')) || JSON.parse(fs.readFileSync(path.join(dir, 'package.json'))).name !== pkg) {
    dir = path.dirname(dir)
  }
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'))).version
}

function load(dir, name) {
  return JSON.parse(fs.readFileSync(path.join(dir, name), 'utf8'))
}

// A result as JSON can hold it: "inconclusive" with the SDK's reason, or the
// value.
function inconclusive(e) {
  if (e instanceof core.InconclusiveMatchError || (e && e.name === 'RequiresServerEvaluation')) {
    return { value: 'inconclusive', reason: e.reason ?? null }
  }
  return { value: 'error', reason: String(e) }
}

async function genHash(rows) {
  const out = []
  for (const r of rows) {
    out.push(await core.getFeatureFlagHash(r.flag_key, r.distinct_id, r.salt, r.separator ?? '.'))
  }
  return out
}

function genOperators(rows) {
  return rows.map((r) => {
    const prop = { key: 'p', operator: r.operator, value: r.value, type: 'person' }
    const values = 'property_value' in r ? { p: r.property_value } : {}
    try {
      const m = core.matchFeatureFlagProperty(prop, values, {
        propertyMatchingVersion: r.property_matching_version ?? 1,
      })
      return { value: Boolean(m) }
    } catch (e) {
      return inconclusive(e)
    }
  })
}

async function genFlag(c) {
  const definitions = {
    flags: [c.flag, ...(c.other_flags ?? [])],
    group_type_mapping: c.group_type_mapping ?? {},
    cohorts: c.cohorts ?? {},
  }
  const stub = async (url) => {
    if (String(url).includes('/flags/definitions')) {
      return new Response(JSON.stringify(definitions), {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
      })
    }
    return new Response('{}', { status: 200, headers: { 'Content-Type': 'application/json' } })
  }
  const client = new PostHog('phc_vectors', {
    host: 'http://127.0.0.1:9',
    personalApiKey: 'phx_vectors',
    fetch: stub,
    featureFlagsPollingInterval: 3600 * 1000,
    disableGeoip: true,
    flushAt: 1000,
  })
  client.on('error', () => {})
  try {
    const opts = {
      onlyEvaluateLocally: true,
      sendFeatureFlagEvents: false,
      groups: c.groups ?? {},
      personProperties: c.person_properties ?? {},
      groupProperties: c.group_properties ?? {},
    }
    const value = await client.getFeatureFlag(c.flag.key, c.distinct_id, opts)
    const res = { value: value === undefined ? 'inconclusive' : value }
    if (value === undefined) {
      // getFeatureFlag does not say why; the poller's bulk path does.
      const adjusted = client.addLocalPersonAndGroupProperties(c.distinct_id, opts.groups, opts.personProperties, opts.groupProperties)
      const ctx = client.createFeatureFlagEvaluationContext(
        c.distinct_id,
        opts.groups,
        client.personPropertiesForLocalEvaluation(c.distinct_id, adjusted.allPersonProperties),
        adjusted.allGroupProperties
      )
      const all = await client.featureFlagsPoller.getAllFlagsAndPayloads(ctx, [c.flag.key])
      res.reason = all.unresolved[c.flag.key] ?? null
    } else if (value !== false) {
      const payload = await client.getFeatureFlagPayload(c.flag.key, c.distinct_id, value, opts)
      res.payload = payload === undefined ? null : payload
    } else {
      res.payload = null
    }
    return res
  } finally {
    await client.shutdown()
  }
}

async function main() {
  if (process.argv.length !== 4) {
    console.error('usage: node gen_node.js INPUTS_DIR WORK_DIR')
    process.exit(2)
  }
  const [inputs, work] = process.argv.slice(2)
  fs.mkdirSync(work, { recursive: true })
  const hashRows = load(inputs, 'hash.json').rows
  const opRows = load(inputs, 'operators.json').rows
  const cases = load(inputs, 'flags.json').cases
  const flags = []
  for (const c of cases) {
    flags.push(await genFlag(c))
  }
  const out = {
    source: `posthog-node ${version('posthog-node')} (@posthog/core ${version('@posthog/core')})`,
    hash: await genHash(hashRows),
    operators: genOperators(opRows),
    flags,
  }
  fs.writeFileSync(path.join(work, 'node.json'), JSON.stringify(out, null, 1) + '\n')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
