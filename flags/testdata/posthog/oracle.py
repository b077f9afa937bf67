"""posthog-python's local evaluation as an oracle, for Vexil's randomized
differential test (flags/posthogdiff). No network: the definitions come
with each case.

Reads JSON lines from stdin, one case each:

  {"id": 1, "definitions": {flags, group_type_mapping, cohorts, ...},
   "distinct_id": "...", "groups": {...}, "person_properties": {...},
   "group_properties": {...}, "device_id": "..."?}

and writes one JSON line per case:

  {"id": 1, "flags": {"<key>": {"value": true|false|"variant", "payload": "<raw>"|null}
                      | {"inconclusive": "<reason>"} | {"error": "<exception>"}}}

Each flag is evaluated as the SDK's public calls do it with
only_evaluate_locally=True: person and group properties as passed, plus
"$group_key" in each group's properties (Client._add_local_person_and_group_properties),
then Client._compute_flag_locally and Client._compute_payload_locally.
"""

import json
import logging
import sys
import warnings

from posthog import Posthog
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation

warnings.filterwarnings("ignore")


def main():
    # No personal key: no poller, no requests; send=False: no event queue.
    client = Posthog("phc_oracle", host="http://127.0.0.1:9", send=False, disable_geoip=True)
    logging.getLogger("posthog").setLevel(logging.CRITICAL + 1)
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        defs = case["definitions"]
        client._update_flag_state(defs)
        snapshot = client._local_evaluation_snapshot()
        person, groups_props = client._add_local_person_and_group_properties(
            case.get("groups") or {}, case.get("person_properties") or {}, case.get("group_properties") or {}
        )
        answers = {}
        for flag in defs["flags"]:
            key = flag["key"]
            try:
                value = client._compute_flag_locally(
                    flag,
                    case["distinct_id"],
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
            payload = None
            if value:
                payload = client._compute_payload_locally(key, value, _definition_snapshot=snapshot)
            answers[key] = {"value": value, "payload": payload}
        out.write(json.dumps({"id": case["id"], "flags": answers}) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
