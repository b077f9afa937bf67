// The official MCP TypeScript client v2 (@modelcontextprotocol/client,
// pinned in package.json) against a running Vexil in the 2026-07-28 era:
// no initialize handshake (server/discover), per-request _meta,
// subscriptions/listen, confirmation through a multi-round-trip request.
// The 1.x client (@modelcontextprotocol/sdk, mcp.test.mjs) speaks only the
// 2025 revisions, so each era is driven by the client that speaks it, over
// the same endpoints. Only what differs by era is repeated here: version
// negotiation, tools list and call, a resource subscription and its update,
// the confirmation flow, errors.
//
// The v2 client speaks 2025 unless told otherwise; versionNegotiation
// { pin: "2026-07-28" } makes connect() send server/discover and fail
// unless the server offers that revision, so a silent fallback to 2025
// cannot pass these tests.
//
// Same environment as mcp.test.mjs (scripts/sdk-mcp.sh runs both files in
// each phase).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client, ProtocolError, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { StdioClientTransport } from "@modelcontextprotocol/client/stdio";

const MODERN = "2026-07-28";
const url = process.env.VEXIL_URL;
const key = process.env.VEXIL_PERSONAL_KEY;
const phase = process.env.VEXIL_MCP_PHASE || "http";

// newClient builds a v2 client; elicit, when given, answers confirmation
// requests (the client then declares the elicitation capability).
function newClient(mode = { pin: MODERN }, elicit) {
  const opts = { versionNegotiation: { mode } };
  if (elicit) opts.capabilities = { elicitation: {} };
  const client = new Client({ name: "vexil-sdktest-2026", version: "0.0.0" }, opts);
  if (elicit) client.setRequestHandler("elicitation/create", elicit);
  return client;
}

function httpTransport(query, bearer = key) {
  return new StreamableHTTPClientTransport(new URL(`${url}/mcp${query}`), {
    requestInit: { headers: { Authorization: `Bearer ${bearer}` } },
  });
}

function assertModern(client) {
  assert.equal(client.getNegotiatedProtocolVersion(), MODERN);
  assert.equal(client.getProtocolEra(), "modern");
}

async function call(client, name, args = {}, allowError = false) {
  const res = await client.callTool({ name, arguments: args });
  const texts = res.content.filter((c) => c.type === "text").map((c) => c.text);
  if (res.isError && !allowError) {
    assert.fail(`${name}(${JSON.stringify(args)}): ${texts.join(" ")}`);
  }
  let out;
  try {
    out = JSON.parse(texts[0]);
  } catch {
    out = undefined; // schema validation errors are plain text
  }
  return { out, texts, isError: !!res.isError };
}

async function rest(method, path, body) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

// updates resolves with the first notifications/resources/updated for uri
// (or "timeout": a hang guard, not a timing assertion).
function updates(client, uri) {
  let resolve;
  const got = new Promise((r) => (resolve = r));
  client.setNotificationHandler("notifications/resources/updated", (n) => {
    if (n.params.uri === uri) resolve(n.params.uri);
  });
  const timer = setTimeout(() => resolve("timeout"), 30000);
  return got.finally(() => clearTimeout(timer));
}

// subscribeAndChange listens to a flag's resource, renames the flag over
// REST (someone else), and checks the update reaches the client.
async function subscribeAndChange(client, team, flagKey) {
  const uri = `vexil://flags/${flagKey}`;
  const flag = (await call(client, "flag_get", { key: flagKey })).out;
  const got = updates(client, uri);
  const sub = await client.listen({ resourceSubscriptions: [uri] });
  try {
    assert.deepEqual(sub.honoredFilter.resourceSubscriptions, [uri]);
    const t0 = Date.now();
    await rest("PATCH", `/api/projects/${team}/feature_flags/${flag.id}`, { name: "renamed over REST", version: flag.version });
    assert.equal(await got, uri);
    console.log(`${MODERN}: resources/updated ${Date.now() - t0} ms after the REST change returned`);
    const res = await client.readResource({ uri }, { cacheMode: "bypass" });
    assert.match(res.contents[0].text, /renamed over REST/);
  } finally {
    await sub.close();
  }
}

// confirmDelete: a delete asks for confirmation through an input_required
// result, which the client fulfils with its elicitation handler and retries;
// a decline changes nothing, an accept deletes.
async function confirmDelete(connect, flagKey) {
  let answer = "decline";
  const asked = [];
  const client = await connect(async (req) => {
    asked.push(req.params.message);
    return answer === "accept" ? { action: "accept", content: { confirm: true } } : { action: answer };
  });
  try {
    await call(client, "flag_create", { key: flagKey });
    const declined = await call(client, "flag_delete", { key: flagKey }, true);
    assert.equal(declined.isError, true);
    assert.match(declined.texts[0], /not confirmed/);
    assert.equal((await call(client, "flag_get", { key: flagKey })).out.key, flagKey);
    answer = "accept";
    const deleted = (await call(client, "flag_delete", { key: flagKey })).out;
    assert.equal(deleted.flag.key, flagKey);
    assert.equal(asked.length, 2);
    assert.match(asked[0], new RegExp(`deletes ${flagKey}`));
    const gone = await call(client, "flag_get", { key: flagKey }, true);
    assert.equal(gone.isError, true);
    assert.equal(gone.out.code, "not_found");
  } finally {
    await client.close();
  }
}

if (phase === "http") {
  const team = (await rest("GET", "/api/projects/")).teams[0].id;
  const connectHTTP = async (mode, elicit, query = `?team_id=${team}`) => {
    const client = newClient(mode, elicit);
    await client.connect(httpTransport(query));
    return client;
  };

  test(`version negotiation on /mcp: pinned and auto give ${MODERN}, legacy 2025-11-25, a bad key 401`, async () => {
    for (const mode of [{ pin: MODERN }, "auto"]) {
      const client = await connectHTTP(mode);
      assertModern(client);
      assert.ok(client.getDiscoverResult().supportedVersions.includes(MODERN));
      assert.ok(client.getDiscoverResult().capabilities.resources.subscribe);
      await client.close();
    }
    // The same client without negotiation: the 2025 handshake, same endpoint.
    const legacy = await connectHTTP("legacy");
    assert.equal(legacy.getNegotiatedProtocolVersion(), "2025-11-25");
    assert.equal(legacy.getProtocolEra(), "legacy");
    await legacy.close();
    const bad = newClient();
    await assert.rejects(bad.connect(httpTransport(`?team_id=${team}`, "phx_not_a_key")), /401/);
  });

  test(`${MODERN} over streamable HTTP: tools, a subscription told of a REST change, errors`, async () => {
    const client = await connectHTTP();
    try {
      assertModern(client);
      const byName = Object.fromEntries((await client.listTools()).tools.map((t) => [t.name, t]));
      assert.equal(byName.flags_list.annotations.readOnlyHint, true);
      assert.equal(byName.flag_delete.annotations.destructiveHint, true);
      const created = (await call(client, "flag_create", { key: "ts26-http" })).out.flag;
      assert.equal(created.status, "INACTIVE");
      const rolled = (await call(client, "rollout_set", { key: "ts26-http", index: 0, rollout_percentage: 10 })).out.flag;
      assert.match(rolled.rollout, /^everyone @ 10%/);
      assert.equal((await call(client, "flag_enable", { key: "ts26-http" })).out.flag.status, "ACTIVE");
      // A jump to 100% from a client that cannot be asked: a token, nothing changed.
      const ask = (await call(client, "rollout_set", { key: "ts26-http", index: 0, rollout_percentage: 100 })).out;
      assert.match(ask.confirm_token, /^cfm_/);
      assert.equal((await call(client, "flag_get", { key: "ts26-http" })).out.filters.groups[0].rollout_percentage, 10);
      const done = (await call(client, "rollout_set", { key: "ts26-http", index: 0, rollout_percentage: 100, confirm_token: ask.confirm_token })).out.flag;
      assert.match(done.rollout, /^everyone @ 100%/);
      const list = (await call(client, "flags_list", {})).out;
      assert.ok(list.flags.some((f) => f.key === "ts26-http"), JSON.stringify(list));

      await subscribeAndChange(client, team, "ts26-http");

      // Errors: a service error is a tool result with its stable code, bad
      // arguments a tool error, an unknown tool a JSON-RPC error.
      const missing = await call(client, "flag_get", { key: "ts26-missing" }, true);
      assert.equal(missing.isError, true);
      assert.equal(missing.out.code, "not_found");
      const badArgs = await call(client, "flag_create", { key: 12 }, true);
      assert.equal(badArgs.isError, true);
      assert.match(badArgs.texts[0], /key/);
      await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }), (e) => e instanceof ProtocolError && /unknown tool/.test(e.message));
    } finally {
      await client.close();
    }
  });

  test(`${MODERN} over streamable HTTP: narrowing, and a delete confirmed by a multi-round-trip request`, async () => {
    const narrow = await connectHTTP({ pin: MODERN }, undefined, `?team_id=${team}&features=cohorts`);
    const names = (await narrow.listTools()).tools.map((t) => t.name);
    await narrow.close();
    assert.ok(names.length > 0);
    for (const n of names) assert.match(n, /^cohort/);
    await confirmDelete((elicit) => connectHTTP({ pin: MODERN }, elicit), "ts26-doomed");
  });

  test(`${MODERN} through vexil mcp --url: stdio relayed to the node, subscription and confirmation included`, async () => {
    const connectBridge = async (elicit) => {
      const client = newClient({ pin: MODERN }, elicit);
      await client.connect(new StdioClientTransport({
        command: process.env.VEXIL_BIN,
        args: ["mcp", "--url", url, "--key", key, "--team", String(team)],
        stderr: "inherit",
      }));
      assertModern(client);
      return client;
    };
    const client = await connectBridge();
    try {
      await call(client, "flag_create", { key: "ts26-bridged" });
      await subscribeAndChange(client, team, "ts26-bridged");
    } finally {
      await client.close();
    }
    await confirmDelete(connectBridge, "ts26-bridged-doomed");
  });
}

if (phase === "stdio") {
  const stdio = () => new StdioClientTransport({
    command: process.env.VEXIL_BIN,
    args: ["mcp", "--data-dir", process.env.VEXIL_DATA_DIR, "--key", key, "--team", process.env.VEXIL_TEAM || "1"],
    stderr: "inherit",
  });

  test(`${MODERN} over stdio: vexil mcp on the stopped node's data directory`, async () => {
    const client = newClient();
    await client.connect(stdio());
    try {
      assertModern(client);
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(names.includes("flags_list"));
      const list = (await call(client, "flags_list", { status: "ALL" })).out;
      const row = list.flags.find((f) => f.key === "ts26-http");
      assert.ok(row, JSON.stringify(list));
      assert.match(row.rollout, /^everyone @ 100%/);
      await call(client, "flag_create", { key: "ts26-stdio" });
      assert.equal((await call(client, "flag_get", { key: "ts26-stdio" })).out.active, false);
      // The stopped node's store keeps the signal inbox: the rollout
      // signals of the HTTP phase (copied from NATS while the node ran).
      const summaries = [];
      for (let cursor = 0, more = true; more; ) {
        const page = (await call(client, "signals_list", cursor ? { cursor } : {})).out;
        summaries.push(...page.signals.map((s) => `${s.kind}: ${s.summary}`));
        more = page.more;
        cursor = page.next_cursor;
      }
      assert.ok(summaries.some((s) => s.startsWith("rollout: ") && s.includes("created flag ts26-http ")), JSON.stringify(summaries));
    } finally {
      await client.close();
    }
  });

  // "auto" on the client's own stdio transport probes with server/discover
  // in a short-lived sibling process, then starts the session's: two
  // processes opening the data directory one after the other.
  test(`${MODERN} over stdio, negotiated with "auto"`, async () => {
    const client = newClient("auto");
    await client.connect(stdio());
    try {
      assertModern(client);
      assert.ok((await call(client, "flags_list", {})).out.flags.some((f) => f.key === "ts26-stdio"));
    } finally {
      await client.close();
    }
  });
}
