"""Merge posthog-python's answers with posthog-node's into the vector files.

Usage: python3 merge.py INPUTS_DIR WORK_DIR OUT_DIR

INPUTS_DIR holds the committed inputs; WORK_DIR the output of gen_py.py
(hash.py.json, operators.py.json, flags.py.json) and gen_node.js
(node.json). Writes hash.json, operators.json and flags.json to OUT_DIR.
posthog-python's answer is the expectation; where posthog-node answers
otherwise, the row records node's answer under "disagree". A hash on which
the two SDKs differ stops the merge: bucketing must be bit-identical.
Plain Python 3, no packages needed.
"""

import json
import os
import sys

FORMULA = "int(sha1(flag_key + '.' + distinct_id + salt).hex[:15], 16) / 0xFFFFFFFFFFFFFFF"


def load(*parts):
    with open(os.path.join(*parts), encoding="utf-8") as f:
        return json.load(f)


def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def same_length(name, *lists):
    if len({len(x) for x in lists}) != 1:
        sys.exit(f"{name}: inputs and results differ in length: {[len(x) for x in lists]}")


def merge_hash(inputs, py, node, node_source):
    same_length("hash", inputs, py, node)
    rows = []
    for i, (r, p, n) in enumerate(zip(inputs, py, node)):
        if p["hash"] != n:
            sys.exit(f"hash row {i} {r}: posthog-python {p['hash']} != posthog-node {n}")
        row = {"flag_key": r["flag_key"], "distinct_id": r["distinct_id"], "salt": r["salt"]}
        if "separator" in r:
            row["separator"] = r["separator"]
        row["hash"] = p["hash"]
        if "near" in r:
            row["near"] = r["near"]
        row["hex15"] = p["hex15"]
        row["checked_by"] = ["posthog-python", "posthog-node"]
        rows.append(row)
    return {
        "generated_by": f"posthog-python feature_flags._hash, cross-checked with {node_source}",
        "formula": FORMULA,
        "rows": rows,
    }


def merge_operators(inputs, py, node, py_source, node_source):
    same_length("operators", inputs, py, node)
    rows = []
    for r, p, n in zip(inputs, py, node):
        row = dict(r)
        row["expected"] = p["expected"]
        if "inconclusive_reason" in p:
            row["inconclusive_reason"] = p["inconclusive_reason"]
        row["source"] = py_source
        same = n["value"] == p["expected"] and (
            n["value"] != "inconclusive" or n.get("reason") == p.get("inconclusive_reason")
        )
        if not same:
            row["disagree"] = {"posthog-node": n["value"]}
            if n["value"] == "inconclusive":
                row["disagree"]["posthog-node_reason"] = n.get("reason")
        rows.append(row)
    return {
        "generated_by": "posthog-python feature_flags.match_property (property_matching_version 1 "
        "unless the row says 2); posthog-node result recorded under 'disagree' when it differs",
        "node_version": node_source,
        "rows": rows,
    }


def node_agrees(expected, n):
    if expected.get("inconclusive"):
        return n["value"] == "inconclusive" and n.get("reason") == expected["reason"]
    value = expected["variant"] if expected["variant"] is not None else expected["enabled"]
    payload = expected["payload"]
    if isinstance(payload, str):
        # posthog-node parses a payload string as JSON and keeps the text
        # when it does not parse.
        try:
            payload = json.loads(payload)
        except ValueError:
            pass
    return n["value"] == value and n.get("payload") == payload


def merge_flags(inputs, py, node, py_source, node_source):
    same_length("flags", inputs, py, node)
    cases = []
    for c, p, n in zip(inputs, py, node):
        case = dict(c)
        case["expected"] = p["expected"]
        case["source"] = py_source
        if not node_agrees(p["expected"], n):
            d = {"posthog-node": n["value"]}
            if "reason" in n:
                d["posthog-node_reason"] = n["reason"]
            if "payload" in n:
                d["posthog-node_payload"] = n["payload"]
            case["disagree"] = d
        cases.append(case)
    return {
        "generated_by": "posthog-python Client local evaluation (distinct_id and $group_key injected "
        "as the SDK does); posthog-node result recorded under 'disagree' when it differs",
        "node_version": node_source,
        "cases": cases,
    }


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: merge.py INPUTS_DIR WORK_DIR OUT_DIR")
    inputs, work, out = sys.argv[1:]
    node = load(work, "node.json")
    hpy = load(work, "hash.py.json")
    opy = load(work, "operators.py.json")
    fpy = load(work, "flags.py.json")
    os.makedirs(out, exist_ok=True)
    dump(
        merge_hash(load(inputs, "hash.json")["rows"], hpy["rows"], node["hash"], node["source"]),
        os.path.join(out, "hash.json"),
    )
    dump(
        merge_operators(
            load(inputs, "operators.json")["rows"], opy["rows"], node["operators"], opy["source"], node["source"]
        ),
        os.path.join(out, "operators.json"),
    )
    dump(
        merge_flags(load(inputs, "flags.json")["cases"], fpy["cases"], node["flags"], fpy["source"], node["source"]),
        os.path.join(out, "flags.json"),
    )


if __name__ == "__main__":
    main()
