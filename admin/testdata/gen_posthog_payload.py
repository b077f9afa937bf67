#!/usr/bin/env python3
"""Writes posthog_local_eval.json: a team's definitions shaped the way
PostHog's server writes its local-evaluation payload (GET
/api/feature_flag/local_evaluation?send_cohorts): a list of flags with ids,
team_id, version, filters (groups, multivariate, payloads as JSON-encoded
strings, aggregation_group_type_index), flag dependencies with their
dependency_chain, group_type_mapping with string keys, and the dynamic
cohorts referenced, by id. Dependent flags come before the flags they
depend on, as nothing in PostHog orders them. Run it again after a change:
python3 admin/testdata/gen_posthog_payload.py > admin/testdata/posthog_local_eval.json
"""
import json

TEAM = 2
flags = []
next_id = [1000]


def flag(key, groups, multivariate=None, payloads=None, agg=None, active=True, name=None, **extra):
    next_id[0] += 1
    f = {
        "id": next_id[0], "team_id": TEAM, "name": name or key.replace("-", " ").capitalize(), "key": key,
        "filters": {"groups": groups, "multivariate": multivariate, "payloads": payloads or {},
                    "aggregation_group_type_index": agg},
        "deleted": False, "active": active, "ensure_experience_continuity": False,
        "has_encrypted_payloads": False, "version": 3, "evaluation_runtime": "all",
        "bucketing_identifier": "distinct_id", "evaluation_tags": [],
    }
    f.update(extra)
    flags.append(f)
    return f


def cond(props, rollout=100, variant=None, **extra):
    c = {"properties": props, "rollout_percentage": rollout, "variant": variant}
    c.update(extra)
    return c


def person(key, op, value):
    return {"key": key, "type": "person", "value": value, "operator": op}


def group(key, op, value, gti):
    return {"key": key, "type": "group", "value": value, "operator": op, "group_type_index": gti}


# One flag per person operator (and then some).
ops = [
    ("exact", "email", ["ada@corp.com", "bob@corp.com"]),
    ("exact", "plan", "pro"),
    ("is_not", "plan", ["free"]),
    ("is_set", "email", "is_set"),
    ("is_not_set", "churned_at", "is_not_set"),
    ("icontains", "email", "@corp.com"),
    ("not_icontains", "email", "@competitor.com"),
    ("starts_with", "country", "U"),
    ("not_starts_with", "country", "X"),
    ("ends_with", "email", ".com"),
    ("not_ends_with", "email", ".invalid"),
    ("icontains_multi", "browser", ["chrome", "firefox"]),
    ("not_icontains_multi", "browser", ["ie"]),
    ("regex", "email", "^[a-z]+@corp\\.com$"),
    ("not_regex", "email", "@(spam|junk)\\."),
    ("gt", "age", "21"),
    ("gte", "age", 18),
    ("lt", "age", 65),
    ("lte", "logins", "100"),
    ("between", "age", [18, 65]),
    ("not_between", "age", [0, 12]),
    ("is_date_before", "signup_date", "2024-06-01"),
    ("is_date_after", "signup_date", "-30d"),
    ("is_date_exact", "signup_date", "2024-01-15T00:00:00Z"),
    ("semver_eq", "app_version", "2.4.0"),
    ("semver_neq", "app_version", "1.0.0"),
    ("semver_gt", "app_version", "2.0.0"),
    ("semver_gte", "app_version", "2.1.0"),
    ("semver_lt", "app_version", "3.0.0"),
    ("semver_lte", "app_version", "2.9.9"),
    ("semver_tilde", "app_version", "2.4.0"),
    ("semver_caret", "app_version", "2.4.0"),
    ("semver_wildcard", "app_version", "2.*"),
]
for i, (op, key, value) in enumerate(ops):
    flag(f"op-{op.replace('_', '-')}" + ("-list" if isinstance(value, list) and op == "exact" else ""),
         [cond([person(key, op, value)], rollout=[100, 50, 30][i % 3])])

# Cohorts: 501 is a property group, 502 nests 501 and negates a filter, 503
# is a behavioural-free OR of two groups.
cohorts = {
    "501": {"type": "OR", "values": [{"type": "AND", "values": [
        person("email", "icontains", "@corp.com")]}]},
    "502": {"type": "AND", "values": [
        {"type": "AND", "values": [{"key": "id", "type": "cohort", "value": 501, "negation": False}]},
        {"type": "OR", "values": [{"key": "country", "type": "person", "value": ["US", "CA"], "operator": "exact", "negation": True}]}]},
    "503": {"type": "OR", "values": [
        {"type": "AND", "values": [person("plan", "exact", ["enterprise"])]},
        {"type": "AND", "values": [person("seats", "gte", "50")]}]},
}
flag("cohort-in", [cond([{"key": "id", "type": "cohort", "value": 501}])])
flag("cohort-not-in", [cond([{"key": "id", "type": "cohort", "value": 502, "operator": "not_in"}])])
flag("cohort-nested", [cond([{"key": "id", "type": "cohort", "value": 502, "operator": "in"}], rollout=40)])
flag("cohort-and-person", [cond([{"key": "id", "type": "cohort", "value": 503}, person("country", "exact", ["US"])])])

# Multivariate with payloads and a condition forcing a variant.
flag("checkout-experiment", [
    cond([person("email", "icontains", "@corp.com")], variant="test"),
    cond([], rollout=50)],
    multivariate={"variants": [
        {"key": "control", "name": "Control", "rollout_percentage": 34},
        {"key": "test", "name": "Test", "rollout_percentage": 33},
        {"key": "test-2", "name": "Second test", "rollout_percentage": 33}]},
    payloads={"control": "{\"price\": 10}", "test": "{\"price\": 9}", "test-2": "{\"price\": 8.50}"})
flag("boolean-with-payload", [cond([], rollout=25)], payloads={"true": "{\"banner\": \"hello\"}"})
flag("inactive-flag", [cond([])], active=False)
flag("continuity-flag", [cond([], rollout=10)], ensure_experience_continuity=True)
flag("holdout-experiment", [cond([])], multivariate={"variants": [
    {"key": "control", "rollout_percentage": 50}, {"key": "test", "rollout_percentage": 50}]})
flags[-1]["filters"]["holdout"] = {"id": 7, "exclusion_percentage": 10}
flag("early-access-editor", [cond([], rollout=0)],
     name="New editor (early access)")
flags[-1]["filters"]["super_groups"] = [cond([person("$feature_enrollment/early-access-editor", "exact", ["true"])])]

# Group flags: companies (0) and projects (1).
flag("company-enterprise", [cond([group("plan", "exact", ["enterprise"], 0)]),
                            cond([group("seats", "gt", "100", 0)], rollout=50)], agg=0)
flag("company-rollout", [cond([], rollout=20)], agg=0)
flag("project-beta", [cond([group("name", "icontains", "beta", 1)])], agg=1)
flag("project-variant", [cond([group("tier", "exact", "gold", 1)], variant="b")], agg=1,
     multivariate={"variants": [{"key": "a", "rollout_percentage": 50}, {"key": "b", "rollout_percentage": 50}]})
# Mixed targeting: a person condition and a company condition.
flag("mixed-targeting", [cond([person("email", "icontains", "@corp.com")], aggregation_group_type_index=None),
                         cond([group("plan", "exact", ["enterprise"], 0)], aggregation_group_type_index=0)])

# Flag dependencies, dependents first: chain-c depends on chain-b, which
# depends on chain-a; fan-in depends on two.
def dep(key, chain, value=True):
    return {"key": key, "type": "flag", "value": value, "operator": "flag_evaluates_to", "dependency_chain": chain}

flag("chain-c", [cond([dep("chain-b", ["chain-a", "chain-b"])])])
flag("fan-in", [cond([dep("chain-a", ["chain-a"]), dep("checkout-experiment", ["checkout-experiment"], "test")])])
flag("chain-b", [cond([dep("chain-a", ["chain-a"]), person("plan", "exact", ["pro"])])])
flag("chain-a", [cond([person("country", "exact", ["US", "CA"])], rollout=60)])
flag("not-dependency", [cond([dep("inactive-flag", ["inactive-flag"], False)])])

# Person metadata, several conditions, a fractional rollout, many filters.
flag("metadata-created", [cond([{"key": "created_at", "type": "person_metadata", "value": "2024-01-01", "operator": "is_date_after"}])])
flag("multi-condition", [cond([person("plan", "exact", ["pro"])], rollout=100),
                         cond([person("country", "exact", ["DE"])], rollout=33.5),
                         cond([], rollout=5)])
flag("many-filters", [cond([person("plan", "exact", ["pro", "enterprise"]), person("age", "gte", "18"),
                            person("email", "not_icontains", "test"), person("app_version", "semver_gte", "2.0.0")])])
flag("empty-flag", [])
flag("full-rollout", [cond([])])
flag("zero-rollout", [cond([], rollout=0)])
flag("numeric-exact", [cond([person("org_id", "exact", 12345678901234567890)])])
flag("float-exact", [cond([person("score", "exact", 5.0)])])

payload = {"flags": flags, "group_type_mapping": {"0": "company", "1": "project"}, "cohorts": cohorts}
print(json.dumps(payload, indent=1))
