"""posthog-python 7.91.1's capture, set, alias and group_identify against
Vexil's capture endpoints (scripts/sdk-python.sh runs it against `vexil serve
--demo`): Vexil publishes what the SDK sends on its ingest stream, and /flags
then answers with the new properties, and a behavioural cohort's flag flips
once the person performed the event.

The team is made here through the management API, so nothing else writes to
it. The client sends gzip-compressed batches to /batch/ (the SDK's default
wire, gzip=True).
"""

import json
import os
import time
import unittest
import urllib.error
import urllib.request

from posthog import Posthog


def need(name):
    v = os.environ.get(name)
    if not v:
        raise SystemExit(f"{name} is not set: run scripts/sdk-python.sh")
    return v


URL = need("VEXIL_URL")
PERSONAL_KEY = need("VEXIL_PERSONAL_KEY")


def call(method, path, body=None, headers=None):
    req = urllib.request.Request(URL + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.load(res)
    except urllib.error.HTTPError as e:
        raise AssertionError(f"{method} {path}: {e.code} {e.read().decode()}") from None


def api(method, path, body=None):
    return call(method, path, body, {"Authorization": f"Bearer {PERSONAL_KEY}"})


def flags_for(token, distinct_id, groups=None):
    body = {"token": token, "distinct_id": distinct_id}
    if groups:
        body["groups"] = groups
    out = call("POST", "/flags?v=2", body)
    return {k: (v.get("variant") or v["enabled"]) for k, v in out["flags"].items()}


def until(what, token, distinct_id, check, groups=None):
    """Polls /flags until check holds: ingest is asynchronous. The bound is a
    hang guard, not a timing assertion."""
    last = None
    for _ in range(600):
        last = flags_for(token, distinct_id, groups)
        if check(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: /flags for {distinct_id} still answers {last}")


class Capture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        team = api("POST", "/api/projects", {"name": "posthog-python capture"})["team"]
        tid = team["id"]
        cls.token = team["api_token"]
        api("PUT", f"/api/projects/{tid}/group_types/0", {"group_type": "company", "version": team["version"]})
        cohort = api("POST", f"/api/projects/{tid}/cohorts/", {"name": "checked out twice", "is_static": False, "filters": {"properties": {
            "type": "AND", "values": [{"key": "checkout", "type": "behavioral", "value": "performed_event_multiple",
                                       "operator": "gte", "operator_value": 2, "time_value": 1, "time_interval": "day"}]}}})

        def flag(key, filters):
            api("POST", f"/api/projects/{tid}/feature_flags/", {"key": key, "name": key, "active": True, "filters": filters})

        flag("pro-plan", {"groups": [{"properties": [{"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}], "rollout_percentage": 100}]})
        flag("big-company", {"aggregation_group_type_index": 0, "groups": [
            {"properties": [{"key": "seats", "type": "group", "group_type_index": 0, "operator": "gte", "value": 100}], "rollout_percentage": 100}]})
        flag("loyal", {"groups": [{"properties": [{"key": "id", "type": "cohort", "value": cohort["id"]}], "rollout_percentage": 100}]})
        cls.errors = []
        cls.client = Posthog(cls.token, host=URL, gzip=True, sync_mode=True, max_retries=0, disable_geoip=True,
                             on_error=lambda e, batch: cls.errors.append(str(e)))

    @classmethod
    def tearDownClass(cls):
        cls.client.shutdown()

    def test_flow(self):
        c, tok = self.client, self.token
        # set: person properties (a new distinct id: Vexil makes the person).
        c.set(distinct_id="py-1", properties={"plan": "pro", "email": "py-1@example.com"})
        f = until("set", tok, "py-1", lambda f: f["pro-plan"] is True)
        self.assertIs(f["loyal"], False)
        # alias: a second distinct id on the same person.
        c.alias(previous_id="py-1", distinct_id="py-1-phone")
        until("alias", tok, "py-1-phone", lambda f: f["pro-plan"] is True)
        # group_identify: group properties.
        c.group_identify("company", "globex", {"seats": 1200})
        until("group_identify", tok, "py-1", lambda f: f["big-company"] is True, groups={"company": "globex"})
        # capture twice: the cohort "checkout at least twice today" flips.
        c.capture("checkout", distinct_id="py-1", properties={"amount": 10})
        c.capture("checkout", distinct_id="py-1", properties={"amount": 20})
        until("capture", tok, "py-1", lambda f: f["loyal"] is True)
        # $set on an event.
        c.capture("downgrade", distinct_id="py-1", properties={"$set": {"plan": "free"}})
        until("$set", tok, "py-1", lambda f: f["pro-plan"] is False)
        self.assertEqual(c.get_feature_flag("loyal", "py-1", send_feature_flag_events=False), True)
        self.assertEqual(self.errors, [])


if __name__ == "__main__":
    unittest.main()
