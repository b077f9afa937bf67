"""posthog-python's local evaluation as an oracle, for Vexil's randomized
differential test (flags/posthogdiff). No network: the definitions come
with each case.

Reads JSON lines from stdin, one case each:

  {"id": 1, "definitions": {flags, group_type_mapping, cohorts, ...},
   "distinct_id": "...", "groups": {...}, "person_properties": {...},
   "group_properties": {...}, "device_id": "..."?}

and writes one JSON line per case:

  {"id": 1, "flags": {"<key>": {"value": true|false|"variant", "payload": "<raw>"|null,
                                "inconclusive_conditions": [0, ...],
                                "guessed_dependencies": ["<key>", ...]}
                      | {"inconclusive": "<reason>"} | {"error": "<exception>"}}}

Each flag is evaluated as the SDK's public calls (evaluate_flags,
get_feature_flag, get_all_flags) do it with only_evaluate_locally=True:
"$group_key" added to each group's properties
(Client._add_local_person_and_group_properties), "distinct_id" added to the
person properties unless the caller gave one
(Client._person_properties_for_local_evaluation), then
Client._compute_flag_locally and Client._compute_payload_locally.

inconclusive_conditions lists the flag's own conditions (0-based, in the
payload's order) that raised InconclusiveMatchError before the SDK decided.
posthog-python then goes on to the next condition and returns the first
one that matches, an answer PostHog's server, which knows the whole person,
need not give (it may match the earlier condition). The list is recorded by
wrapping posthog.feature_flags._match_flag_conditions and
_match_flag_condition; the wrappers pass every argument, result and
exception through unchanged, so the SDK decides exactly as it does
unwrapped. Conditions of the flags a dependency evaluates are recorded in
their own frame; guessed_dependencies names the dependencies (direct or
not) that the SDK decided that way, so that a flag reading one reads a guess
too.
"""

import json
import logging
import sys
import warnings

from posthog import Posthog
from posthog import feature_flags
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation

warnings.filterwarnings("ignore")

# One frame per _match_flag_conditions call in progress: the flag being
# evaluated first, then the dependencies it evaluates, innermost last.
_frames = []
# The outermost frame of the last flag evaluated.
_top = None


def _traced_conditions(original):
    def traced(flag, *args, **kwargs):
        global _top
        frame = {"next": 0, "inconclusive": [], "guessed": set()}
        _frames.append(frame)
        try:
            value = original(flag, *args, **kwargs)
        finally:
            _frames.pop()
            if not _frames:
                _top = frame
        if _frames and (frame["inconclusive"] or frame["guessed"]):
            # A dependency decided after an inconclusive condition (its own
            # or one of its dependencies'): the flag that reads it reads a guess.
            _frames[-1]["guessed"] |= frame["guessed"] | {flag.get("key")}
        return value

    return traced


def _traced_condition(original):
    def traced(*args, **kwargs):
        frame = _frames[-1]
        index = frame["next"]
        frame["next"] += 1
        try:
            return original(*args, **kwargs)
        except InconclusiveMatchError:
            # RequiresServerEvaluation is not a subclass: the SDK stops there.
            frame["inconclusive"].append(index)
            raise

    return traced


feature_flags._match_flag_conditions = _traced_conditions(feature_flags._match_flag_conditions)
feature_flags._match_flag_condition = _traced_condition(feature_flags._match_flag_condition)


def main():
    global _top
    # No personal key: no poller, no requests; send=False: no event queue.
    client = Posthog("phc_oracle", host="http://127.0.0.1:9", send=False, disable_geoip=True)
    logging.getLogger("posthog").setLevel(logging.CRITICAL + 1)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        defs = case["definitions"]
        distinct_id = case["distinct_id"]
        client._update_flag_state(defs)
        snapshot = client._local_evaluation_snapshot()
        person, groups_props = client._add_local_person_and_group_properties(
            case.get("groups") or {}, case.get("person_properties") or {}, case.get("group_properties") or {}
        )
        person = client._person_properties_for_local_evaluation(distinct_id, person)
        answers = {}
        for flag in defs["flags"]:
            key = flag["key"]
            _top = None
            try:
                value = client._compute_flag_locally(
                    flag,
                    distinct_id,
                    groups=case.get("groups") or {},
                    person_properties=person,
                    group_properties=groups_props,
                    warn_on_unknown_groups=False,
                    device_id=case.get("device_id"),
                    _definition_snapshot=snapshot,
                )
            except (InconclusiveMatchError, RequiresServerEvaluation) as e:
                reason = getattr(e, "reason", None)
                answers[key] = {"inconclusive": getattr(reason, "value", str(reason))}
                continue
            except Exception as e:  # the SDK failed on this definition
                answers[key] = {"error": f"{type(e).__name__}: {e}"}
                continue
            if _frames:
                raise RuntimeError(f"oracle: {len(_frames)} condition frames left after flag {key}")
            payload = None
            if value:
                payload = client._compute_payload_locally(key, value, _definition_snapshot=snapshot)
            answers[key] = {
                "value": value,
                "payload": payload,
                "inconclusive_conditions": _top["inconclusive"] if _top else [],
                "guessed_dependencies": sorted(_top["guessed"]) if _top else [],
            }
        out.write(json.dumps({"id": case["id"], "flags": answers}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
