#!/usr/bin/env python3
"""Checks that one server answers the peers' workload (BENCHMARKS.md "The
peers"): FLAGS flags, the even ones boolean at 50% on the user id, the odd
ones multivariate 34/33/33 for country US and off elsewhere.

  peers-equivalence.py NAME ofrep URL [TOKEN]   POST URL/ofrep/v1/evaluate/flags
  peers-equivalence.py NAME edge  URL TOKEN     GET URL/api/frontend/all
  peers-equivalence.py NAME vexil URL TOKEN     POST URL (/flags?v=2)

FLAGS (default 50) is the number of flags; USERS (default 300) the contexts
asked, user-0.. with country cycling US/DE/FR. The servers hash differently,
so it compares distributions, not per-user answers: the share of boolean
flags on, and for US users the share of each variant. Prints one line and
exits 1 when an answer is off the workload.
"""
import json
import os
import re
import sys
import urllib.request

COUNTRIES = ("US", "DE", "FR")


def fetch(req):
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def kind_of(key):
    """(index, 'bool'|'mv') from a key of any server's naming, or None for
    flags outside the workload (Vexil's demo keeps its own 4 beside it)."""
    m = re.fullmatch(r"(?:bool|mv|bench)-0*(\d+)", key)
    if not m:
        return None
    i = int(m.group(1))
    return i, ("bool" if i % 2 == 0 else "mv")


def answers(mode, url, token, user, country):
    """{key: value}: a boolean flag's value is True or False, a
    multivariate's the variant's name or None when it is off."""
    out = {}
    if mode == "ofrep":
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        body = json.dumps({"context": {"targetingKey": user, "country": country}}).encode()
        doc = fetch(urllib.request.Request(url + "/ofrep/v1/evaluate/flags", data=body, headers=headers))
        for f in doc["flags"]:
            if "errorCode" in f:
                raise SystemExit(f"{f['key']} for {user}: {f['errorCode']} {f.get('errorDetails', '')}")
            v = f.get("value")
            # OFREP carries the value: a boolean, or the variant's string,
            # where "off" (flagd, GO Feature Flag) or false (Vexil) is off.
            out[f["key"]] = v if isinstance(v, bool) else (None if v in ("off", "") else v)
    elif mode == "edge":
        req = urllib.request.Request(f"{url}/api/frontend/all?userId={user}&country={country}",
                                     headers={"Authorization": token})
        for t in fetch(req)["toggles"]:
            var = t.get("variant") or {}
            out[t["name"]] = (t["enabled"], var.get("name") if t["enabled"] and var.get("enabled") else None)
    elif mode == "vexil":
        body = json.dumps({"token": token, "distinct_id": user, "person_properties": {"country": country}}).encode()
        for k, f in fetch(urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}))["flags"].items():
            out[k] = (f["enabled"], f.get("variant") if f["enabled"] else None)
    else:
        raise SystemExit(f"unknown mode {mode!r}: ofrep, edge or vexil")
    return out


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    name, mode, url = sys.argv[1:4]
    token = sys.argv[4] if len(sys.argv) > 4 else ""
    nflags = int(os.environ.get("FLAGS", "50"))
    users = int(os.environ.get("USERS", "300"))
    want = {"bool": (nflags + 1) // 2, "mv": nflags // 2}
    bool_on = bool_all = 0
    variants = {}
    us_mv = 0
    errors = []
    for u in range(users):
        user, country = f"user-{u}", COUNTRIES[u % 3]
        got = answers(mode, url, token, user, country)
        seen = {"bool": 0, "mv": 0}
        for key, v in got.items():
            k = kind_of(key)
            if k is None:
                continue
            seen[k[1]] += 1
            if mode != "ofrep":
                # Edge and Vexil say enabled and the variant apart.
                enabled, variant = v
                v = enabled if k[1] == "bool" else variant
            if k[1] == "bool":
                if not isinstance(v, bool):
                    errors.append(f"{key} for {user}: {v!r} is not a boolean")
                    continue
                bool_all += 1
                bool_on += v
            elif country != "US":
                if v not in (None, False):
                    errors.append(f"{key} for {user} in {country}: {v!r}, not off")
            else:
                if not isinstance(v, str):
                    errors.append(f"{key} for {user} in US: {v!r}, not a variant")
                    continue
                us_mv += 1
                variants[v] = variants.get(v, 0) + 1
        if seen != want:
            errors.append(f"{user}: {seen['bool']} boolean and {seen['mv']} multivariate flags, want {want['bool']} and {want['mv']}")
        if len(errors) > 5:
            break
    share = bool_on / max(bool_all, 1)
    split = sorted((n / max(us_mv, 1) for n in variants.values()), reverse=True)
    if not errors:
        # 25 flags x 300 users: a share's standard error is about 0.006 for
        # the booleans and 0.016 for the variants; these bounds are wide
        # enough never to fail by chance and narrow enough to catch a
        # wrong percentage or a variant missing.
        if not 0.45 <= share <= 0.55:
            errors.append(f"boolean flags on {share:.3f}, want about 0.5")
        if len(variants) != 3 or not all(0.27 <= s <= 0.40 for s in split):
            errors.append(f"US variants {variants}, want three at about 1/3 each")
    line = (f"equivalence {name}: boolean flags on {share:.3f} (want 0.5), US variants "
            + " / ".join(f"{s:.3f}" for s in split) + f" (want 1/3 each), {users} contexts")
    if errors:
        print(line + ": FAILED", file=sys.stderr)
        for e in errors[:6]:
            print("  " + e, file=sys.stderr)
        sys.exit(1)
    print(line + ": ok")


if __name__ == "__main__":
    main()
