#!/usr/bin/env python3
"""Checks a case file's SDK-side expectations against posthog-python.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install posthog==7.91.1
    /tmp/venv/bin/python check_sdk.py unparsable_filters.json case_and_semver.json

Contexts marked "partial" are evaluated with the SDK's local evaluation
(what Context.Partial means); the others are evaluated too when every
property they name is given, since the SDK then decides as the server does
(a context whose answer is the server's alone says so in its "sdk": false).
Flag filters get the dependency_chain that Vexil's definitions payload adds.
It prints one line per difference and exits 1 when there is one. No network:
the client points at a closed port and its definitions are set in place.
"""
import json
import sys

from posthog import Client
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation


def chains(flags):
    by_key = {f["key"]: f for f in flags}

    def deps(key, seen):
        out = []
        for g in by_key.get(key, {}).get("filters", {}).get("groups", []):
            for p in g.get("properties", []):
                if p.get("type") == "flag" and p["key"] not in seen:
                    out += deps(p["key"], seen | {p["key"]}) + [p["key"]]
        return list(dict.fromkeys(out))

    for f in flags:
        for g in f.get("filters", {}).get("groups", []):
            for p in g.get("properties", []):
                if p.get("type") == "flag":
                    p["dependency_chain"] = deps(p["key"], {p["key"]}) + [p["key"]]


def main(paths):
    bad = 0
    for path in paths:
        with open(path) as fh:
            case = json.load(fh)
        defs = case["definitions"]
        flags = [f for f in defs["flags"] if not f.get("deleted")]
        chains(flags)
        client = Client("phc_test", secret_key="phx_test", host="http://127.0.0.1:9", send=False)
        client.feature_flags = flags
        client.cohorts = defs.get("cohorts", {})
        client.group_type_mapping = defs.get("group_type_mapping", {})
        by_key = {f["key"]: f for f in flags}
        for ctx in case["contexts"]:
            if ctx.get("sdk") is False:
                continue
            props = dict(ctx.get("person_properties") or {})
            props.setdefault("distinct_id", ctx["distinct_id"])
            for key, want in sorted(ctx["expect"].items()):
                try:
                    got = client._compute_flag_locally(by_key[key], ctx["distinct_id"], person_properties=props)
                    got = {"value": got}
                except (InconclusiveMatchError, RequiresServerEvaluation) as e:
                    got = {"error": e.reason.value}
                if ctx.get("partial"):
                    exp = {"error": want["error"]} if "error" in want else {"value": want.get("value")}
                elif "error" in got:
                    continue  # the SDK defers; the server's answer is the case's
                else:
                    exp = {"value": want.get("value")}
                # Vexil reports a failed dependency as dependency_failed; the
                # SDK names the dependency's own reason.
                if exp.get("error") == "dependency_failed" and "error" in got:
                    continue
                if got != exp:
                    bad += 1
                    print(f"{path}: {ctx['name']}: {key}: SDK {got}, case {exp}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
