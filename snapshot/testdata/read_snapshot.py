"""Independent reader: checks a Vexil snapshot with DuckDB, not Vexil's code.

Usage: read_snapshot.py SNAPSHOT_DIR EXPECT_JSON [WHATIF_PARQUET]

EXPECT_JSON holds {"counts": {table: rows}, "rows": [sample rows of the rows
table: team, distinct_id, person_id, properties (an object)],
"whatif": {"rows": N, "enabled": M, "sample": [{distinct_id, enabled, reason}]}}.
The manifest's row counts and SHA-256 sums are checked against the files too.
Exits non-zero with a message on the first difference.
"""
import hashlib
import json
import os
import sys

import duckdb


def fail(msg):
    print("read_snapshot: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    snap, expect_path = sys.argv[1], sys.argv[2]
    whatif = sys.argv[3] if len(sys.argv) > 3 else None
    with open(expect_path) as f:
        expect = json.load(f)
    with open(os.path.join(snap, "manifest.json")) as f:
        manifest = json.load(f)
    if manifest["format_version"] != 1:
        fail("format_version %r" % manifest["format_version"])
    con = duckdb.connect()
    for table in manifest["tables"]:
        name = table["name"]
        for part in table["parts"]:
            path = os.path.join(snap, part["file"])
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            if digest != part["sha256"]:
                fail("%s: sha256 %s, manifest %s" % (part["file"], digest, part["sha256"]))
            n = con.execute("select count(*) from read_parquet(?)", [path]).fetchone()[0]
            if n != part["rows"]:
                fail("%s: %d rows, manifest %d" % (part["file"], n, part["rows"]))
        if table["parts"]:
            glob = os.path.join(snap, name, "*.parquet")
            n = con.execute("select count(*) from read_parquet(?)", [glob]).fetchone()[0]
        else:
            n = 0
        want = expect["counts"].get(name)
        if want is not None and n != want:
            fail("table %s: duckdb counts %d rows, want %d" % (name, n, want))
        if n != table["rows"]:
            fail("table %s: duckdb counts %d rows, manifest %d" % (name, n, table["rows"]))
    rows_glob = os.path.join(snap, "rows", "*.parquet")
    for want in expect["rows"]:
        got = con.execute(
            "select team, distinct_id, person_id, properties from read_parquet(?) where team = ? and distinct_id = ?",
            [rows_glob, want["team"], want["distinct_id"]],
        ).fetchall()
        if len(got) != 1:
            fail("row %r: %d matches" % (want["distinct_id"], len(got)))
        team, did, pid, props = got[0]
        if pid != want["person_id"] or json.loads(props) != want["properties"]:
            fail("row %r: got %r %r, want %r %r" % (did, pid, props, want["person_id"], want["properties"]))
    # A query an analyst would write: persons per plan, from the JSON column.
    plans = con.execute(
        "select json_extract_string(properties, '$.plan') as plan, count(*) from read_parquet(?) group by plan order by plan",
        [rows_glob],
    ).fetchall()
    if expect.get("plans") is not None and [list(p) for p in plans] != expect["plans"]:
        fail("plans %r, want %r" % (plans, expect["plans"]))
    if whatif:
        w = expect["whatif"]
        n, enabled = con.execute(
            "select count(*), count(*) filter (where enabled) from read_parquet(?)", [whatif]
        ).fetchone()
        if (n, enabled) != (w["rows"], w["enabled"]):
            fail("whatif: %d rows, %d enabled; want %d, %d" % (n, enabled, w["rows"], w["enabled"]))
        for s in w["sample"]:
            got = con.execute(
                "select enabled, reason from read_parquet(?) where distinct_id = ?", [whatif, s["distinct_id"]]
            ).fetchall()
            if got != [(s["enabled"], s["reason"])]:
                fail("whatif %s: %r, want %r" % (s["distinct_id"], got, s))
    print("read_snapshot: ok (%d tables)" % len(manifest["tables"]))


main()
