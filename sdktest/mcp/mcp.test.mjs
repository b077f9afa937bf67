// The official MCP TypeScript client (@modelcontextprotocol/sdk, pinned in
// package.json) against a running Vexil: over streamable HTTP at /mcp, and
// over stdio through "vexil mcp --url" relaying to the node, and "vexil mcp"
// on the stopped server's data directory
// (scripts/sdk-mcp.sh runs both phases). The 1.x client speaks the 2025
// revisions (its latest is 2025-11-25); the 2026-07-28 revision is driven
// by the v2 client (@modelcontextprotocol/client) in mcp2026.test.mjs.
//
//   VEXIL_URL, VEXIL_PERSONAL_KEY   the running node (HTTP phase; VEXIL_BIN
//                                   for "vexil mcp --url")
//   VEXIL_MCP_PHASE=stdio           the stdio phase: VEXIL_BIN, VEXIL_DATA_DIR
import { test } from "node:test";
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const url = process.env.VEXIL_URL;
const key = process.env.VEXIL_PERSONAL_KEY;
const phase = process.env.VEXIL_MCP_PHASE || "http";
const LEGACY = "2025-11-25";

// stdioTransport starts vexil with args and records the protocol version
// the initialize handshake settled on: the 1.x client hands it to the
// transport and keeps no other accessor.
function stdioTransport(args) {
  const transport = new StdioClientTransport({ command: process.env.VEXIL_BIN, args, stderr: "inherit" });
  transport.setProtocolVersion = (v) => (transport.negotiated = v);
  return transport;
}

// call calls a tool and returns its JSON answer and its texts; a tool error
// fails the test unless allowed.
async function call(client, name, args = {}, allowError = false) {
  const res = await client.callTool({ name, arguments: args });
  const texts = res.content.filter((c) => c.type === "text").map((c) => c.text);
  if (res.isError && !allowError) {
    assert.fail(`${name}(${JSON.stringify(args)}): ${texts.join(" ")}`);
  }
  return { out: JSON.parse(texts[0]), texts, isError: !!res.isError };
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

async function httpClient(query, onUpdate) {
  const client = new Client({ name: "vexil-sdktest", version: "0.0.0" });
  if (onUpdate) {
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => onUpdate(n.params.uri));
  }
  const transport = new StreamableHTTPClientTransport(new URL(`${url}/mcp${query}`), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  assert.equal(transport.protocolVersion, LEGACY);
  return client;
}

if (phase === "http") {
  const teams = await rest("GET", "/api/projects/");
  const team = teams.teams[0].id;

  test("an agent's lifecycle over streamable HTTP: create, target a cohort and a group, 10%, archive", async () => {
    const client = await httpClient(`?team_id=${team}`);
    try {
      const tools = (await client.listTools()).tools;
      const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
      assert.equal(byName.flags_list.annotations.readOnlyHint, true);
      assert.equal(byName.flag_delete.annotations.destructiveHint, true);
      const cohort = (await call(client, "cohort_create", { name: "ts beta", kind: "static", is_static: true })).out.cohort;
      await call(client, "cohort_members_add", { cohort_id: cohort.id, distinct_ids: ["user-1", "user-2"] });
      const created = (await call(client, "flag_create", { key: "ts-lifecycle" })).out.flag;
      assert.equal(created.status, "INACTIVE");
      await call(client, "condition_add", {
        key: "ts-lifecycle",
        condition: { properties: [{ key: "id", type: "cohort", value: cohort.id }], rollout_percentage: 50 },
      });
      await call(client, "condition_add", {
        key: "ts-lifecycle",
        condition: { properties: [], group_type_index: 0, rollout_percentage: 10 },
      });
      const rolled = (await call(client, "rollout_set", { key: "ts-lifecycle", index: 0, rollout_percentage: 10 })).out.flag;
      assert.match(rolled.rollout, /^everyone @ 10%/);
      const enabled = (await call(client, "flag_enable", { key: "ts-lifecycle" })).out.flag;
      assert.equal(enabled.status, "ACTIVE");
      // A dry run of a jump to 100%: diff, blast radius over the demo's
      // persons, nothing saved.
      const dry = (await call(client, "rollout_set", { key: "ts-lifecycle", index: 0, rollout_percentage: 100, dry_run: true })).out;
      assert.equal(dry.dry_run, true);
      assert.ok(dry.needs_confirmation);
      assert.ok(dry.blast_radius.job_id);
      // Without confirmation: a token, nothing changed.
      const ask = (await call(client, "rollout_set", { key: "ts-lifecycle", index: 0, rollout_percentage: 100 })).out;
      assert.match(ask.confirm_token, /^cfm_/);
      const full = (await call(client, "flag_get", { key: "ts-lifecycle" })).out;
      assert.equal(full.filters.groups[0].rollout_percentage, 10);
      const archived = (await call(client, "flag_archive", { key: "ts-lifecycle" })).out.flag;
      assert.equal(archived.status, "ARCHIVED");
    } finally {
      await client.close();
    }
  });

  test("narrowing with ?features=", async () => {
    const client = await httpClient(`?team_id=${team}&features=cohorts`);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(names.length > 0);
      for (const n of names) assert.match(n, /^cohort/);
    } finally {
      await client.close();
    }
  });

  test("a subscribed client is told of a change made over REST by someone else", async () => {
    let resolve;
    const got = new Promise((r) => (resolve = r));
    const client = await httpClient(`?team_id=${team}`, (uri) => {
      if (uri === "vexil://flags/ts-watched") resolve(uri);
    });
    try {
      await call(client, "flag_create", { key: "ts-watched" });
      const flag = (await call(client, "flag_get", { key: "ts-watched" })).out;
      await client.subscribeResource({ uri: "vexil://flags/ts-watched" });
      const t0 = Date.now();
      await rest("PATCH", `/api/projects/${team}/feature_flags/${flag.id}`, { name: "changed over REST", version: flag.version });
      // Hang guard only; the time is printed, not asserted.
      const timer = setTimeout(() => resolve("timeout"), 30000);
      assert.equal(await got, "vexil://flags/ts-watched");
      clearTimeout(timer);
      console.log(`resources/updated ${Date.now() - t0} ms after the REST change returned`);
      const res = await client.readResource({ uri: "vexil://flags/ts-watched" });
      assert.match(res.contents[0].text, /changed over REST/);
    } finally {
      await client.close();
    }
  });

  test("vexil mcp --url relays a stdio session to the node, updates included", async () => {
    let resolve;
    const got = new Promise((r) => (resolve = r));
    const client = new Client({ name: "vexil-sdktest", version: "0.0.0" });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => {
      if (n.params.uri === "vexil://flags/ts-bridged") resolve(n.params.uri);
    });
    const transport = stdioTransport(["mcp", "--url", url, "--key", key, "--team", String(team)]);
    await client.connect(transport);
    assert.equal(transport.negotiated, LEGACY);
    try {
      await call(client, "flag_create", { key: "ts-bridged" });
      const flag = (await call(client, "flag_get", { key: "ts-bridged" })).out;
      await client.subscribeResource({ uri: "vexil://flags/ts-bridged" });
      await rest("PATCH", `/api/projects/${team}/feature_flags/${flag.id}`, { name: "changed over REST", version: flag.version });
      const timer = setTimeout(() => resolve("timeout"), 30000); // hang guard
      assert.equal(await got, "vexil://flags/ts-bridged");
      clearTimeout(timer);
    } finally {
      await client.close();
    }
  });
}

if (phase === "stdio") {
  test("vexil mcp over stdio", async () => {
    const client = new Client({ name: "vexil-sdktest", version: "0.0.0" });
    const transport = stdioTransport(["mcp", "--data-dir", process.env.VEXIL_DATA_DIR, "--key", key, "--team", process.env.VEXIL_TEAM || "1"]);
    await client.connect(transport);
    assert.equal(transport.negotiated, LEGACY);
    try {
      const names = (await client.listTools()).tools.map((t) => t.name);
      assert.ok(names.includes("flags_list"));
      const list = (await call(client, "flags_list", { status: "ALL" })).out;
      assert.ok(list.flags.some((f) => f.key === "ts-lifecycle" && f.status === "ARCHIVED"), JSON.stringify(list));
      await call(client, "flag_create", { key: "ts-stdio" });
      const got = (await call(client, "flag_get", { key: "ts-stdio" })).out;
      assert.equal(got.active, false);
      // The stopped node's store keeps the signal inbox: the rollout
      // signals of the HTTP phase (copied from NATS while the node ran).
      const summaries = [];
      for (let cursor = 0, more = true; more; ) {
        const page = (await call(client, "signals_list", cursor ? { cursor } : {})).out;
        summaries.push(...page.signals.map((s) => `${s.kind}: ${s.summary}`));
        more = page.more;
        cursor = page.next_cursor;
      }
      assert.ok(summaries.some((s) => s.startsWith("rollout: ") && s.includes("created flag ts-lifecycle ")), JSON.stringify(summaries));
    } finally {
      await client.close();
    }
  });
}
