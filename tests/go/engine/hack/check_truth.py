#!/usr/bin/env python3
"""Checks a -truth file of the stand-in engine: well-formed records, internal
consistency, and the outcome mix each scenario is meant to produce.
Usage: python3 hack/check_truth.py SCENARIO FILE"""
import collections
import json
import re
import sys

DIGEST = re.compile(r'^xxh3:[0-9a-f]{16}$')
OUTCOMES = {"hit", "hit_content", "miss", "join", "uncached", "error", "recursive"}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main(scenario, path):
    recs = []
    for n, line in enumerate(open(path), 1):
        try:
            recs.append(json.loads(line))
        except ValueError as e:
            fail(f"line {n}: not JSON: {e}")
    if not recs or recs[-1]["kind"] != "end":
        fail("last record is not kind=end")
    end = recs[-1]
    if sum(1 for r in recs if r["kind"] == "end") != 1:
        fail("more than one end record")
    calls = [r for r in recs if r["kind"] == "call"]
    opened, closed = {}, {}
    taken = collections.Counter()
    for r in recs:
        k = r["kind"]
        if k == "session_open":
            if r["session"] in opened:
                fail(f"session {r['session']} opened twice")
            opened[r["session"]] = r
            if not isinstance(r["sc"], int) or r["sc"] == 0:
                fail(f"bad sc {r}")
        elif k == "session_close":
            closed[r["session"]] = r
        elif k == "call":
            if r["outcome"] not in OUTCOMES:
                fail(f"bad outcome {r}")
            if r["session"] not in opened:
                fail(f"call of unopened session {r}")
            if r["digest"] is not None and not DIGEST.match(r["digest"]):
                fail(f"bad digest {r}")
            if r["digest"] is None and r["path"] != "nil_id":
                fail(f"null digest {r}")
            if r["outcome"] in ("miss", "join"):
                if not isinstance(r["exec_goid"], int) or r["exec_goid"] <= 0:
                    fail(f"missing exec_goid {r}")
            elif r["outcome"] == "uncached":
                if r["exec_goid"] != r["goid"]:
                    fail(f"uncached exec_goid != goid {r}")
            elif r["exec_goid"] is not None:
                fail(f"unexpected exec_goid {r}")
            if (r["outcome"] == "error") != (r["error"] is not None and r["path"] != "recursive"):
                fail(f"error/outcome mismatch {r}")
            if r["outcome"] == "recursive" and r["error"] != "recursive call detected":
                fail(f"recursive error text {r}")
            if r["start_ns"] > r["end_ns"]:
                fail(f"time goes backwards {r}")
            if r["db_written"] and not r["db_read"]:
                fail(f"db written without read {r}")
            if r["ref_taken"]:
                taken[r["session"]] += 1
        elif k == "release":
            if r["refcount_after"] < 0:
                fail(f"negative refcount {r}")
    for s, r in closed.items():
        if r["refs_taken"] != taken[s]:
            fail(f"{s}: refs_taken {r['refs_taken']} != calls with ref_taken {taken[s]}")
        if r["leaked"] != (r["refs_taken"] > r["refs_released"]):
            fail(f"{s}: leaked flag inconsistent {r}")
    out = collections.Counter(r["outcome"] for r in calls)
    if end["calls"] != len(calls):
        fail(f"end.calls {end['calls']} != {len(calls)} call records")
    for o, n in out.items():
        if end["outcomes"].get(o) != n:
            fail(f"end.outcomes[{o}] {end['outcomes'].get(o)} != {n}")
    rel = sum(1 for r in recs if r["kind"] == "release")
    if end["releases"] != rel:
        fail(f"end.releases {end['releases']} != {rel}")
    leaked = [s for s, r in closed.items() if r["leaked"]]
    changes = collections.Counter(r["outcome"] for r in recs if r["kind"] == "change")
    conflicts = sum(1 for r in recs if r["kind"] == "conflict")

    def want(cond, msg):
        if not cond:
            fail(f"{scenario}: {msg} (outcomes {dict(out)}, changes {dict(changes)})")

    if scenario != "leak":
        want(end["cache_entries"] == 0, "cache entries left")
        want(not leaked, "leaked session")
        want(set(opened) == set(closed), "sessions not closed")
    if scenario == "mixed":
        want(OUTCOMES <= set(out), "missing outcome kinds")
        want(changes["hit"] and changes["join"] and changes["new"] and conflicts, "filesync mix")
    elif scenario == "hits":
        want(out["hit"] > 0.8 * len(calls), "mostly hits")
    elif scenario == "joins":
        want(out["join"] > 0 and max(r["waiters"] for r in calls if r["outcome"] == "join") > 1, "joins with waiters>1")
    elif scenario == "ttl":
        want(any(r["db_read"] for r in calls) and any(r["db_written"] for r in calls), "db read and written")
        want(any(r["outcome"] == "hit" and r["db_read"] for r in calls), "ttl hit across sessions")
    elif scenario == "errors":
        want(out["error"] > 0 and out["recursive"] > 0, "errors and recursive")
    elif scenario == "leak":
        want(leaked and end["cache_entries"] > 0, "a leaked session holding entries")
    elif scenario == "filesync":
        want(changes["hit"] and changes["join"] and changes["new"] and conflicts, "filesync mix")
    elif scenario == "highrate":
        want(end["calls"] / (end["duration_ns"] / 1e9) > 1000, "thousands of calls per second")
    print(f"ok {scenario}: {len(recs)} records, calls {len(calls)} {dict(sorted(out.items()))}, "
          f"sessions {len(opened)} (leaked {leaked}), releases {rel}, changes {dict(changes)}, "
          f"conflicts {conflicts}, cache_entries {end['cache_entries']}")


main(sys.argv[1], sys.argv[2])
