"""posthog-python 7.91.1 against a running `vexil serve --demo`.

scripts/sdk-python.sh starts the server and passes VEXIL_URL,
VEXIL_PROJECT_TOKEN, VEXIL_PERSONAL_KEY and VEXIL_DEMO_PERSONS; it runs this
file with the standard library's unittest in a venv holding the pinned SDK.

Two teams:

- the demo team (cmd/vexil/demo.go): every expectation is computed here,
  independently of Vexil and of the SDK, from the demo's data and the rules
  of its four flags, with PostHog's hash (hashlib);
- a team this test creates through the management API (cohorts, one nested
  in the other and one used with not_in, flag dependencies, a multivariate
  flag with overrides, a group flag, an inactive flag): there the oracle is
  Vexil's remote answer, and every flag the SDK decides locally must equal
  it, value and payload.
"""

import hashlib
import json
import logging
import os
import time
import unittest
import urllib.request
import warnings
from pathlib import Path

import requests

import posthog
import posthog.request
from posthog import Posthog


def need(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit(f"{name} is not set: run scripts/sdk-python.sh")
    return v


URL = need("VEXIL_URL")
TOKEN = need("VEXIL_PROJECT_TOKEN")
PERSONAL_KEY = need("VEXIL_PERSONAL_KEY")
DEMO_PERSONS = int(os.environ.get("VEXIL_DEMO_PERSONS", "300"))
REPO = Path(__file__).resolve().parents[2]

# The SDK's own deprecation notices (get_feature_flag, personal_api_key) are
# about its API, not about the server.
warnings.filterwarnings("ignore", category=DeprecationWarning)
# The SDK warns for each group flag asked without its group: expected here
# (each client resets the logger's level, so filter that one message).
logging.getLogger("posthog").addFilter(lambda r: "without group names passed in" not in r.getMessage())

# ---- every request the SDK makes, as "METHOD /path" ----

CALLS = []


class RecordingAdapter(requests.adapters.HTTPAdapter):
    def send(self, request, *args, **kwargs):
        path = requests.utils.urlparse(request.url).path
        CALLS.append(f"{request.method} {path}")
        return super().send(request, *args, **kwargs)


for _session in (posthog.request._session, posthog.request._flags_session):
    _session.mount("http://", RecordingAdapter())


def calls_since(n):
    return CALLS[n:]


# ---- the demo's data (cmd/vexil/demo.go, publishDemoPersons) ----

PLANS = ["free", "free", "pro", "enterprise"]
COUNTRIES = ["US", "US", "DE", "FR", "GB", "BR", "JP"]


def person(i):
    email = f"user-{i}@vexil.dev" if i % 50 == 0 else f"user-{i}@example.com"
    return {
        "id": f"user-{i}",
        "props": {"email": email, "plan": PLANS[i % len(PLANS)], "country": COUNTRIES[i % len(COUNTRIES)]},
    }


def company(k):
    return {"key": f"company-{k}", "props": {"name": f"Company {k}", "plan": PLANS[k % len(PLANS)], "seats": (k * 37) % 1000}}


# ---- PostHog's bucketing ----

LONG_SCALE = float(0xFFFFFFFFFFFFFFF)  # rounds to 2^60, as in every SDK


def phash(key, distinct_id, salt="", sep="."):
    digest = hashlib.sha1(f"{key}{sep}{distinct_id}{salt}".encode("utf-8")).hexdigest()
    return int(digest[:15], 16) / LONG_SCALE


def in_rollout(key, distinct_id, pct):
    return phash(key, distinct_id) <= pct / 100


def variant_for(key, distinct_id, variants):
    h = phash(key, distinct_id, "variant")
    lo = 0.0
    for v, pct in variants:
        hi = lo + pct / 100
        if lo <= h < hi:
            return v
        lo = hi
    return True


# ---- the demo's flags, evaluated here ----

CHECKOUT_VARIANTS = [("control", 34), ("one-click", 33), ("express", 33)]
PRICES = {"control": 10, "one-click": 9, "express": 12}
FLAG_KEYS = ["beta-dashboard", "checkout-experiment", "sso-login", "new-billing"]
# new-billing mixes person and group conditions: Vexil marks it
# ensure_experience_continuity so that the SDK asks the server.
LOCAL_KEYS = ["beta-dashboard", "checkout-experiment", "sso-login"]
SERVER_ONLY_KEYS = ["new-billing"]


def expected(p, c):
    """{flag: (value, payload)} for person p and company c (or None)."""
    props = p["props"]
    out = {}
    beta = props["plan"] in ("pro", "enterprise") or in_rollout("beta-dashboard", p["id"], 20)
    out["beta-dashboard"] = (beta, {"layout": "grid"} if beta else None)
    checkout = variant_for("checkout-experiment", p["id"], CHECKOUT_VARIANTS) if props["country"] == "US" else False
    out["checkout-experiment"] = (checkout, {"price": PRICES[checkout]} if isinstance(checkout, str) else None)
    out["sso-login"] = (c is not None and c["props"]["plan"] == "enterprise", None)
    billing = "@vexil.dev" in props["email"].lower() or (c is not None and c["props"]["seats"] > 500)
    out["new-billing"] = (billing, None)
    return out


def demo_cases():
    idx = set(range(0, DEMO_PERSONS, 7)) | set(range(0, DEMO_PERSONS, 50)) | {DEMO_PERSONS - 1}
    cases = []
    for i in sorted(idx):
        p = person(i)
        cases.append((p, company((i * 13 + 5) % 200)))
        cases.append((p, None))
    return cases


CASES = demo_cases()


def label(p, c):
    return f"{p['id']} in {c['key']}" if c else f"{p['id']} (no groups)"


def remote_opts(c):
    return {"groups": {"company": c["key"]}} if c else {}


def local_opts(p, c):
    o = {"person_properties": dict(p["props"])}
    if c:
        o["groups"] = {"company": c["key"]}
        o["group_properties"] = {"company": dict(c["props"])}
    return o


def client(personal_key=None):
    return Posthog(
        TOKEN,
        host=URL,
        personal_api_key=personal_key,
        disable_geoip=True,
        poll_interval=3600,
        feature_flags_request_timeout_seconds=10,
        flush_at=1000,
        flush_interval=3600,
    )


def parse_payload(p):
    """get_all_flags_and_payloads hands payloads back as stored (JSON text)."""
    return json.loads(p) if isinstance(p, str) else p


class DemoData(unittest.TestCase):
    def test_hash_matches_sdk_vectors(self):
        rows = json.loads((REPO / "flags/testdata/posthog/hash.json").read_text())["rows"]
        self.assertGreater(len(rows), 400)
        for r in rows:
            self.assertEqual(phash(r["flag_key"], r["distinct_id"], r["salt"], r.get("separator", ".")), r["hash"], r)

    def test_cases_cover_every_value(self):
        values = {}
        for p, c in CASES:
            for k, (v, _) in expected(p, c).items():
                values.setdefault(k, set()).add(str(v))
        self.assertEqual(values["beta-dashboard"], {"True", "False"})
        self.assertEqual(values["checkout-experiment"], {"control", "one-click", "express", "False"})
        self.assertEqual(values["sso-login"], {"True", "False"})
        self.assertEqual(values["new-billing"], {"True", "False"})
        rollout = {in_rollout("beta-dashboard", p["id"], 20) for p, _ in CASES if p["props"]["plan"] == "free"}
        self.assertEqual(rollout, {True, False})


class Remote(unittest.TestCase):
    """No personal key: every call is POST /flags/?v=4."""

    @classmethod
    def setUpClass(cls):
        cls.ph = client()

    @classmethod
    def tearDownClass(cls):
        cls.ph.shutdown()

    def test_get_feature_flag_and_payload(self):
        for p, c in CASES:
            want = expected(p, c)
            for key in FLAG_KEYS:
                got = self.ph.get_feature_flag(key, p["id"], send_feature_flag_events=False, **remote_opts(c))
                self.assertEqual(got, want[key][0], f"get_feature_flag {key} for {label(p, c)}")
                got = self.ph.get_feature_flag_payload(key, p["id"], send_feature_flag_events=False, **remote_opts(c))
                self.assertEqual(got, want[key][1], f"get_feature_flag_payload {key} for {label(p, c)}")

    def test_get_all_flags_and_payloads(self):
        for p, c in CASES:
            want = expected(p, c)
            flags = {k: v for k, (v, _) in want.items()}
            payloads = {k: pl for k, (_, pl) in want.items() if pl is not None}
            self.assertEqual(self.ph.get_all_flags(p["id"], **remote_opts(c)), flags, label(p, c))
            both = self.ph.get_all_flags_and_payloads(p["id"], **remote_opts(c))
            self.assertEqual(both["featureFlags"], flags, label(p, c))
            self.assertEqual({k: parse_payload(v) for k, v in both["featureFlagPayloads"].items()}, payloads, label(p, c))

    def test_evaluate_flags_one_request_each(self):
        before = len(CALLS)
        for p, c in CASES:
            want = expected(p, c)
            ev = self.ph.evaluate_flags(p["id"], **remote_opts(c))
            self.assertEqual(sorted(ev.keys), sorted(FLAG_KEYS), label(p, c))
            for key in FLAG_KEYS:
                self.assertEqual(ev.get_flag(key, send_feature_flag_events=False), want[key][0], f"{key} for {label(p, c)}")
                self.assertEqual(ev.get_flag_payload(key), want[key][1], f"payload {key} for {label(p, c)}")
        self.assertEqual(calls_since(before), ["POST /flags/"] * len(CASES))

    def test_v4_response_shape(self):
        # What the SDK asks for: /flags/?v=4 answers the v2 record shape.
        body = json.dumps({"api_key": TOKEN, "distinct_id": "user-0", "groups": {"company": "company-3"}}).encode()
        req = urllib.request.Request(f"{URL}/flags/?v=4", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as res:
            doc = json.load(res)
        self.assertIs(doc["errorsWhileComputingFlags"], False)
        self.assertIsInstance(doc["requestId"], str)
        self.assertIsInstance(doc["evaluatedAt"], int)
        self.assertEqual(sorted(doc["flags"]), sorted(FLAG_KEYS))
        rec = doc["flags"]["checkout-experiment"]
        self.assertEqual(rec["key"], "checkout-experiment")
        want = expected(person(0), company(3))["checkout-experiment"][0]
        self.assertEqual((rec["enabled"], rec["variant"]), (True, want))
        self.assertEqual(rec["reason"]["code"], "condition_match")
        self.assertIsInstance(rec["metadata"]["id"], int)
        self.assertIsInstance(rec["metadata"]["version"], int)
        self.assertEqual(json.loads(rec["metadata"]["payload"]), {"price": PRICES[want]})
        self.assertNotIn("failed", rec)


class Local(unittest.TestCase):
    """Personal key: definitions from GET /flags/definitions, evaluated in process."""

    @classmethod
    def setUpClass(cls):
        cls.ph = client(PERSONAL_KEY)
        cls.ph.load_feature_flags()

    @classmethod
    def tearDownClass(cls):
        cls.ph.shutdown()

    def test_definitions_loaded(self):
        self.assertEqual(sorted(f["key"] for f in self.ph.feature_flags), sorted(FLAG_KEYS))
        self.assertEqual(self.ph.group_type_mapping, {"0": "company"})
        self.assertEqual(self.ph.cohorts, {})
        by_key = {f["key"]: f for f in self.ph.feature_flags}
        for k in LOCAL_KEYS:
            self.assertIs(by_key[k]["ensure_experience_continuity"], False, k)
        for k in SERVER_ONLY_KEYS:
            self.assertIs(by_key[k]["ensure_experience_continuity"], True, k)

    def test_only_evaluate_locally_without_a_request(self):
        before = len(CALLS)
        for p, c in CASES:
            want = expected(p, c)
            o = local_opts(p, c)
            for key in LOCAL_KEYS:
                got = self.ph.get_feature_flag(key, p["id"], only_evaluate_locally=True, send_feature_flag_events=False, **o)
                self.assertEqual(got, want[key][0], f"local {key} for {label(p, c)}")
                got = self.ph.get_feature_flag_payload(key, p["id"], only_evaluate_locally=True, send_feature_flag_events=False, **o)
                self.assertEqual(got, want[key][1], f"local payload {key} for {label(p, c)}")
            for key in SERVER_ONLY_KEYS:
                got = self.ph.get_feature_flag(key, p["id"], only_evaluate_locally=True, send_feature_flag_events=False, **o)
                self.assertIsNone(got, f"{key} for {label(p, c)} must be undecided locally")
            flags = self.ph.get_all_flags(p["id"], only_evaluate_locally=True, **o)
            self.assertEqual(flags, {k: want[k][0] for k in LOCAL_KEYS}, f"local get_all_flags for {label(p, c)}")
        self.assertEqual(calls_since(before), [], "local evaluation asked the server")

    def test_server_only_flag_falls_back_to_flags(self):
        before = len(CALLS)
        for p, c in CASES:
            want = expected(p, c)
            o = local_opts(p, c)
            for key in SERVER_ONLY_KEYS:
                got = self.ph.get_feature_flag(key, p["id"], send_feature_flag_events=False, **o)
                self.assertEqual(got, want[key][0], f"fallback {key} for {label(p, c)}")
            both = self.ph.get_all_flags_and_payloads(p["id"], **o)
            self.assertEqual(both["featureFlags"], {k: v for k, (v, _) in want.items()}, label(p, c))
            self.assertEqual({k: parse_payload(v) for k, v in both["featureFlagPayloads"].items()},
                             {k: pl for k, (_, pl) in want.items() if pl is not None}, label(p, c))
        self.assertEqual(set(calls_since(before)), {"POST /flags/"})

    def test_evaluate_flags_local_and_remote(self):
        for p, c in CASES:
            want = expected(p, c)
            o = local_opts(p, c)
            before = len(CALLS)
            only = self.ph.evaluate_flags(p["id"], only_evaluate_locally=True, **o)
            self.assertEqual(calls_since(before), [], label(p, c))
            self.assertEqual(sorted(only.keys), sorted(LOCAL_KEYS))
            self.assertEqual(dict(only.unresolved_flags), {"new-billing": "experience_continuity"})
            ev = self.ph.evaluate_flags(p["id"], **o)
            for key in FLAG_KEYS:
                if key in LOCAL_KEYS:
                    self.assertEqual(only.get_flag(key, send_feature_flag_events=False), want[key][0], f"{key} for {label(p, c)}")
                    self.assertEqual(only.get_flag_payload(key), want[key][1], f"payload {key} for {label(p, c)}")
                self.assertEqual(ev.get_flag(key, send_feature_flag_events=False), want[key][0], f"{key} for {label(p, c)}")
                self.assertEqual(ev.get_flag_payload(key), want[key][1], f"payload {key} for {label(p, c)}")


# ---- a team with cohorts, dependencies and overrides, made through the
# management API ----


def api(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {PERSONAL_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode()}") from None


def prop(key, operator, value, typ="person", **kw):
    return {"key": key, "operator": operator, "value": value, "type": typ, **kw}


def make_team():
    created = api("POST", "/api/projects", {"name": "posthog-python"})
    team = created["team"]
    tid = team["id"]
    api("PUT", f"/api/projects/{tid}/group_types/0", {"group_type": "company", "version": team["version"]})

    def cohort(name, filters):
        # PostHog's cohort JSON, as its API takes it.
        body = {"name": name, "is_static": False, "filters": {"properties": filters}}
        return api("POST", f"/api/projects/{tid}/cohorts/", body)["id"]

    insiders = cohort("insiders", {"type": "OR", "values": [
        {"type": "AND", "values": [prop("email", "icontains", "@corp.example")]},
        {"type": "AND", "values": [prop("age", "gte", 40), prop("plan", "exact", ["pro", "enterprise"])]},
    ]})
    # Nested: insiders, and not in Germany (negation inside a cohort).
    insiders_abroad = cohort("insiders abroad", {"type": "AND", "values": [
        {"key": "id", "type": "cohort", "value": insiders},
        prop("country", "exact", ["DE"], negation=True),
    ]})

    def flag(key, filters, active=True, overrides=None):
        # PostHog's flag JSON: filters is an object.
        body = {"key": key, "name": key, "active": active, "filters": filters}
        if overrides:
            body["overrides"] = overrides
        api("POST", f"/api/projects/{tid}/feature_flags/", body)

    flag("cohort-gate", {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": insiders_abroad}], "rollout_percentage": 100}],
                         "payloads": {"true": json.dumps({"tier": "gold"})}})
    flag("outsiders", {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": insiders, "operator": "not_in"}], "rollout_percentage": 60}]})
    flag("experiment", {
        "groups": [{"properties": [prop("plan", "exact", ["pro", "enterprise"])], "rollout_percentage": 100, "variant": "test"},
                   {"properties": [prop("age", "lt", 30)], "rollout_percentage": 80}],
        "multivariate": {"variants": [{"key": "control", "rollout_percentage": 40}, {"key": "test", "rollout_percentage": 40},
                                      {"key": "holdback", "rollout_percentage": 20}]},
        "payloads": {"control": json.dumps({"price": 10}), "test": json.dumps({"price": 8}), "holdback": json.dumps({"price": 0})},
    }, overrides=[{"distinct_ids": ["p-3", "p-4"], "value": False}])
    # A forced variant is left to the server: the override becomes a leading
    # condition on distinct_id, which an SDK entry point that does not add
    # distinct_id to the person properties finds inconclusive (and then takes
    # a later condition), so Vexil marks the flag ensure_experience_continuity.
    flag("forced-variant", {"groups": [{"properties": [], "rollout_percentage": 100}],
                            "multivariate": {"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]}},
         overrides=[{"distinct_ids": ["p-1", "p-2"], "value": "b"}])
    flag("needs-test-variant", {"groups": [{"properties": [{"key": "experiment", "type": "flag", "operator": "flag_evaluates_to", "value": "test"}],
                                            "rollout_percentage": 100}], "payloads": {"true": json.dumps("yes")}})
    flag("no-gate-and-early", {"groups": [{"properties": [
        {"key": "cohort-gate", "type": "flag", "operator": "flag_evaluates_to", "value": False},
        prop("signup", "is_date_before", "2025-01-01")], "rollout_percentage": 100}]})
    flag("big-companies", {"aggregation_group_type_index": 0, "groups": [
        {"properties": [prop("seats", "gte", 100, typ="group", group_type_index=0)], "rollout_percentage": 50}],
        "payloads": {"true": json.dumps({"sla": "24h"})}})
    flag("switched-off", {"groups": [{"properties": [], "rollout_percentage": 100}]}, active=False)
    return tid, team["api_token"]


TEAM_FLAGS = ["cohort-gate", "outsiders", "experiment", "needs-test-variant", "no-gate-and-early", "big-companies", "switched-off"]
SERVER_ONLY_TEAM_FLAGS = ["forced-variant"]


def team_contexts():
    """Persons with varied properties; some lack one (the SDK cannot decide
    what needs it), some carry distinct_id (the overrides are conditions on it)."""
    emails = ["a@corp.example", "b@CORP.example", "c@example.com", "d@other.org"]
    out = []
    for i in range(160):
        props = {
            "email": emails[i % 4],
            "age": [25, 41, 39, "52", 60][i % 5],
            "plan": PLANS[(i // 3) % 4],
            "country": COUNTRIES[(i // 2) % 7],
            "signup": ["2024-06-01", "2025-03-01T10:00:00Z", "2023-12-31"][i % 3],
        }
        if i % 9 == 4:
            del props["age"]
        if i % 11 == 5:
            del props["country"]
        if i % 2 == 0:
            props["distinct_id"] = f"p-{i}"
        ctx = {"distinct_id": f"p-{i}", "person_properties": props}
        if i % 4 != 3:
            k = i % 13
            ctx["groups"] = {"company": f"acme-{k}"}
            ctx["group_properties"] = {"company": {"seats": (k * 41) % 300}}
        out.append(ctx)
    # The overridden persons, with everything the conditions need.
    for i in range(1, 5):
        out.append({"distinct_id": f"p-{i}", "person_properties": {"distinct_id": f"p-{i}", "plan": "pro", "age": 20,
                                                                     "email": "x@corp.example", "country": "FR", "signup": "2024-01-01"}})
    return out


class TeamWithCohortsAndDependencies(unittest.TestCase):
    """Local (only_evaluate_locally) == remote for every flag the SDK decides."""

    @classmethod
    def setUpClass(cls):
        cls.team, cls.token = make_team()
        cls.local = Posthog(cls.token, host=URL, personal_api_key=PERSONAL_KEY, disable_geoip=True, poll_interval=3600,
                            feature_flags_request_timeout_seconds=10)
        cls.remote = Posthog(cls.token, host=URL, disable_geoip=True, feature_flags_request_timeout_seconds=10)
        # The evaluation service picks up catalog changes asynchronously:
        # poll the definitions until every flag is there (bounded).
        deadline = time.monotonic() + 60
        while True:
            cls.local.load_feature_flags()
            keys = sorted(f["key"] for f in cls.local.feature_flags or [])
            if keys == sorted(TEAM_FLAGS + SERVER_ONLY_TEAM_FLAGS) and len(cls.local.cohorts or {}) == 2:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"definitions of team {cls.team} never held every flag: {keys}, cohorts {cls.local.cohorts}")
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.local.shutdown()
        cls.remote.shutdown()

    def test_definitions(self):
        by_key = {f["key"]: f for f in self.local.feature_flags}
        self.assertEqual(self.local.group_type_mapping, {"0": "company"})
        for k in TEAM_FLAGS:
            self.assertIs(by_key[k]["ensure_experience_continuity"], False, f"{k} should be locally evaluable")
        chain = by_key["needs-test-variant"]["filters"]["groups"][0]["properties"][0]["dependency_chain"]
        self.assertEqual(chain, ["experiment"])
        self.assertIs(by_key["switched-off"]["active"], False)
        for k in SERVER_ONLY_TEAM_FLAGS:
            self.assertIs(by_key[k]["ensure_experience_continuity"], True, k)

    def test_local_equals_remote(self):
        decided = {k: 0 for k in TEAM_FLAGS}
        values = {k: set() for k in TEAM_FLAGS}
        for ctx in team_contexts():
            did = ctx["distinct_id"]
            kw = {k: v for k, v in ctx.items() if k != "distinct_id"}
            before = len(CALLS)
            local = self.local.get_all_flags_and_payloads(did, only_evaluate_locally=True, **kw)
            self.assertEqual(calls_since(before), [], "only_evaluate_locally asked the server")
            remote = self.remote.get_all_flags_and_payloads(did, **kw)
            self.assertEqual(sorted(remote["featureFlags"]), sorted(TEAM_FLAGS + SERVER_ONLY_TEAM_FLAGS), did)
            self.assertFalse(set(local["featureFlags"]) & set(SERVER_ONLY_TEAM_FLAGS), did)
            for key, value in local["featureFlags"].items():
                decided[key] += 1
                values[key].add(str(value))
                self.assertEqual(value, remote["featureFlags"][key], f"{key} for {ctx}")
                self.assertEqual(parse_payload(local["featureFlagPayloads"].get(key)),
                                 parse_payload(remote["featureFlagPayloads"].get(key)), f"payload {key} for {ctx}")
                one = self.local.get_feature_flag(key, did, only_evaluate_locally=True, send_feature_flag_events=False, **kw)
                self.assertEqual(one, value, f"get_feature_flag {key} for {ctx}")
        n = len(team_contexts())
        for key in TEAM_FLAGS:
            self.assertGreater(decided[key], n // 4, f"{key} decided locally for only {decided[key]} of {n} persons")
        # Every flag took each of its values somewhere (the test is not trivial).
        self.assertEqual(values["cohort-gate"], {"True", "False"})
        self.assertEqual(values["outsiders"], {"True", "False"})
        self.assertEqual(values["experiment"], {"control", "test", "holdback", "False"})
        self.assertEqual(values["needs-test-variant"], {"True", "False"})
        self.assertEqual(values["no-gate-and-early"], {"True", "False"})
        self.assertEqual(values["big-companies"], {"True", "False"})
        self.assertEqual(values["switched-off"], {"False"})

    def test_overrides(self):
        for ctx in team_contexts()[-4:]:
            did = ctx["distinct_id"]
            kw = {k: v for k, v in ctx.items() if k != "distinct_id"}
            # Forced off: the SDK decides it (an is_not filter on distinct_id).
            if did in ("p-3", "p-4"):
                local = self.local.get_feature_flag("experiment", did, only_evaluate_locally=True, send_feature_flag_events=False, **kw)
                remote = self.remote.get_feature_flag("experiment", did, send_feature_flag_events=False, **kw)
                self.assertEqual((local, remote), (False, False), did)
            # A forced variant: the server answers, also through the local client.
            want = "b" if did in ("p-1", "p-2") else None
            remote = self.remote.get_feature_flag("forced-variant", did, send_feature_flag_events=False, **kw)
            fallback = self.local.get_feature_flag("forced-variant", did, send_feature_flag_events=False, **kw)
            self.assertIsNone(self.local.get_feature_flag("forced-variant", did, only_evaluate_locally=True, send_feature_flag_events=False, **kw))
            if want:
                self.assertEqual((remote, fallback), (want, want), did)
            else:
                self.assertEqual(fallback, remote, did)


def tearDownModule():
    # Nothing but flag requests: no events (send_feature_flag_events=False
    # everywhere), no other endpoint.
    extra = sorted(set(CALLS) - {"POST /flags/", "GET /flags/definitions"})
    if extra:
        raise AssertionError(f"the SDK called {extra}")
    if "GET /flags/definitions" not in CALLS or "POST /flags/" not in CALLS:
        raise AssertionError(f"the SDK never asked for definitions or /flags: {sorted(set(CALLS))}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
