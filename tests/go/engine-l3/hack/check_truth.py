#!/usr/bin/env python3
"""Checks an engine-l3 truth file: python3 hack/check_truth.py SCENARIO FILE.

Well-formedness (end last, required keys), per-record consistency (digest format,
hit_route only on hits, exec_goid on miss/join/uncached, waiters), ref accounting
(session_close leaked = refs_taken > refs_released) and the scenario's intended mix.
Prints a summary; exits 1 on a failed check."""
import collections
import json
import re
import sys

DIG = re.compile(r'^xxh3:[0-9a-f]{16}$')


def main():
    scenario, path = sys.argv[1], sys.argv[2]
    recs = [json.loads(l) for l in open(path) if l.strip()]
    errs = []
    if not recs or recs[-1]['kind'] != 'end':
        errs.append('end record is not last')
    end = recs[-1]
    kinds = collections.Counter(r['kind'] for r in recs)
    outcomes = collections.Counter()
    routes = collections.Counter()
    max_waiters = 0
    joined_errors = 0
    for r in recs:
        k = r['kind']
        if k == 'call':
            o = r['outcome']
            outcomes[o] += 1
            if r['digest'] is not None and not DIG.match(r['digest']):
                errs.append(f'bad digest {r}')
            if r['engine_outcome'] is not None or r['engine_hit_route'] is not None:
                errs.append(f'engine_* not null on L3: {r}')
            if o == 'hit':
                if r['hit_route'] not in ('recipe', 'digest', 'structural'):
                    errs.append(f'hit without route {r}')
                routes[r['hit_route']] += 1
                if r['result_id'] is None:
                    errs.append(f'hit without result_id {r}')
            elif r['hit_route'] is not None:
                errs.append(f'route on non-hit {r}')
            if o in ('miss', 'join', 'uncached') and r['exec_goid'] is None:
                errs.append(f'{o} without exec_goid {r}')
            if o == 'miss' and r['waiters'] != 1:
                errs.append(f'miss with waiters {r["waiters"]}')
            if o == 'join' and r['waiters'] < 2:
                errs.append(f'join with waiters {r["waiters"]}')
            if o == 'error' and r['waiters'] >= 2:
                joined_errors += 1
            if o in ('hit', 'miss', 'join') and r['result_id'] is None:
                errs.append(f'{o} without result_id {r}')
            max_waiters = max(max_waiters, r['waiters'])
        elif k == 'session_close':
            if r['leaked'] != (r['refs_taken'] > r['refs_released']):
                errs.append(f'leaked flag wrong {r}')
        elif k == 'load_hit':
            if r['via'] not in ('request', 'digests') or r['hit_route'] not in ('recipe', 'digest', 'structural'):
                errs.append(f'bad load_hit {r}')
    if sum(outcomes.values()) != end['calls']:
        errs.append(f'call records {sum(outcomes.values())} != end.calls {end["calls"]}')
    anomalies = collections.Counter(r['type'] for r in recs if r['kind'] == 'anomaly')
    if scenario == 'mixed':
        for o in ('hit', 'miss', 'join', 'uncached', 'error', 'recursive'):
            if not outcomes[o]:
                errs.append(f'mixed: no {o}')
        for rt in ('recipe', 'digest', 'structural'):
            if not routes[rt]:
                errs.append(f'mixed: no {rt} hit')
        if max_waiters < 3:
            errs.append('mixed: no join with 3+ waiters')
        if not joined_errors:
            errs.append('mixed: no joined error')
        vias = collections.Counter(r['via'] for r in recs if r['kind'] == 'load_hit')
        if not vias['request'] or not vias['digests']:
            errs.append(f'mixed: load hits {dict(vias)}')
        arb = collections.Counter(r['outcome'] for r in recs if r['kind'] == 'arbitrary')
        for o in ('new', 'join', 'hit'):
            if not arb[o]:
                errs.append(f'mixed: no arbitrary {o}')
        ch = collections.Counter(r['outcome'] for r in recs if r['kind'] == 'change')
        if not (ch['new'] and ch['join'] and ch['hit'] and kinds['conflict']):
            errs.append(f'mixed: filesync {dict(ch)} conflicts {kinds["conflict"]}')
        if anomalies:
            errs.append(f'mixed: anomalies {dict(anomalies)}')
        if any(r['leaked'] for r in recs if r['kind'] == 'session_close'):
            errs.append('mixed: leaked session')
    if scenario == 'anomalies':
        for t in ('negative_count', 'owned_after_release', 'unknown_session_release'):
            if not anomalies[t]:
                errs.append(f'anomalies: no {t}')
    print(f'{path}: {dict(kinds)}')
    print(f'outcomes {dict(outcomes)} routes {dict(routes)} max_waiters {max_waiters} joined_errors {joined_errors} anomalies {dict(anomalies)}')
    for e in errs[:20]:
        print('FAIL', e)
    sys.exit(1 if errs else 0)


main()
