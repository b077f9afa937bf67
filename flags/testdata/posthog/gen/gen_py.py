"""Run posthog-python over the committed inputs and record its answers.

Usage: python gen_py.py INPUTS_DIR WORK_DIR

Reads hash.json, operators.json and flags.json from INPUTS_DIR (inputs only,
no expectations) and writes hash.py.json, operators.py.json and
flags.py.json to WORK_DIR. It needs the posthog package from PyPI (the
version regen.sh pins) and makes no network calls: the Client gets its
definitions assigned in memory and points at a closed loopback port.
"""

import hashlib
import json
import os
import sys
from importlib.metadata import version

from posthog import Client
from posthog.feature_flags import (
    InconclusiveMatchError,
    RequiresServerEvaluation,
    _hash,
    match_property,
)

SOURCE = "posthog-python " + version("posthog")

# The "near" rows: ids searched over user-0 ... user-(NEAR_SEARCH-1).
NEAR_SEARCH = 200_000


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def reason_of(err):
    r = getattr(err, "reason", None)
    return getattr(r, "value", r)


def gen_hash(rows):
    out = []
    for r in rows:
        sep = r.get("separator", ".")
        h = _hash(r["flag_key"], r["distinct_id"], r["salt"], sep)
        # The first 15 hex digits of the SHA-1, for readers who check the
        # float conversion on their own; it must give the SDK's float.
        text = f"{r['flag_key']}{sep}{r['distinct_id']}{r['salt']}"
        hex15 = hashlib.sha1(text.encode("utf-8")).hexdigest()[:15]
        if float(int(hex15, 16)) / float(0xFFFFFFFFFFFFFFF) != h:
            sys.exit(f"hash row {r}: hex15 {hex15} does not give {h}")
        out.append({"hash": h, "hex15": hex15})
    check_near(rows)
    return out


def near_target(f):
    """The rollout fraction a "near" value stands for: thirds are recorded
    rounded to six digits (0.333333 is 1/3)."""
    for t in (1 / 3, 2 / 3):
        if round(t, 6) == f:
            return t
    return f


def check_near(rows):
    """Each row with "near" must hold the id whose hash is the closest one at
    or below that fraction, or the closest one above it, over the search
    range. Fails loudly otherwise, so a changed input cannot pass unnoticed."""
    by_pair = {}
    for r in rows:
        if "near" in r:
            by_pair.setdefault((r["flag_key"], r["salt"]), []).append(r)
    for (key, salt), near_rows in by_pair.items():
        fractions = sorted({near_target(r["near"]) for r in near_rows})
        below = {f: (None, -1.0) for f in fractions}
        above = {f: (None, 2.0) for f in fractions}
        for i in range(NEAR_SEARCH):
            did = f"user-{i}"
            h = _hash(key, did, salt)
            for f in fractions:
                if h <= f:
                    if h > below[f][1]:
                        below[f] = (did, h)
                elif h < above[f][1]:
                    above[f] = (did, h)
        for r in near_rows:
            f = near_target(r["near"])
            if r["distinct_id"] not in (below[f][0], above[f][0]):
                sys.exit(
                    f"near row {key!r} salt {salt!r} near {f}: {r['distinct_id']} is not "
                    f"the closest id (below {below[f][0]}, above {above[f][0]})"
                )


def gen_operators(rows):
    out = []
    for r in rows:
        prop = {"key": "p", "operator": r["operator"], "value": r["value"], "type": "person"}
        values = {"p": r["property_value"]} if "property_value" in r else {}
        pmv = r.get("property_matching_version", 1)
        try:
            res = {"expected": bool(match_property(prop, values, pmv))}
        except (InconclusiveMatchError, RequiresServerEvaluation) as e:
            res = {"expected": "inconclusive", "inconclusive_reason": reason_of(e)}
        out.append(res)
    return out


def new_client():
    # No personal API key: no poller, no request. Definitions are assigned
    # per case below.
    return Client(
        "phc_vectors",
        host="http://127.0.0.1:9",
        send=False,
        sync_mode=True,
        enable_local_evaluation=True,
        disable_geoip=True,
    )


def gen_flags(cases):
    client = new_client()
    out = []
    for c in cases:
        flag = c["flag"]
        client.feature_flags = [flag] + c.get("other_flags", [])
        client.group_type_mapping = c.get("group_type_mapping", {})
        client.cohorts = c.get("cohorts", {})
        client._property_matching_version = 1
        distinct_id = c["distinct_id"]
        groups = c.get("groups", {})
        # What both SDKs add before local evaluation: distinct_id as a person
        # property (the caller's own value wins) and $group_key per group.
        person = {"distinct_id": distinct_id, **c.get("person_properties", {})}
        _, group_props = client._add_local_person_and_group_properties(
            groups, person, c.get("group_properties", {})
        )
        try:
            value = client._compute_flag_locally(
                flag,
                distinct_id,
                groups=groups,
                person_properties=person,
                group_properties=group_props,
                warn_on_unknown_groups=False,
            )
        except (InconclusiveMatchError, RequiresServerEvaluation) as e:
            out.append({"expected": {"inconclusive": True, "reason": reason_of(e)}})
            continue
        payload = None
        if value is not False and value is not None:
            payload = client._compute_payload_locally(flag["key"], value)
        out.append(
            {
                "expected": {
                    "enabled": bool(value),
                    "variant": value if isinstance(value, str) else None,
                    "payload": payload,
                }
            }
        )
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_py.py INPUTS_DIR WORK_DIR")
    inputs, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    hash_rows = load(os.path.join(inputs, "hash.json"))["rows"]
    op_rows = load(os.path.join(inputs, "operators.json"))["rows"]
    cases = load(os.path.join(inputs, "flags.json"))["cases"]
    dump({"source": SOURCE, "rows": gen_hash(hash_rows)}, os.path.join(work, "hash.py.json"))
    dump({"source": SOURCE, "rows": gen_operators(op_rows)}, os.path.join(work, "operators.py.json"))
    dump({"source": SOURCE, "cases": gen_flags(cases)}, os.path.join(work, "flags.py.json"))


if __name__ == "__main__":
    main()
