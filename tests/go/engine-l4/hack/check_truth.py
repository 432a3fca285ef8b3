#!/usr/bin/env python3
"""Checks an L4 stand-in truth file: python3 hack/check_truth.py SCENARIO FILE.

Well-formedness (end last, record kinds), consistency of the CacheDecision fields with
the outcomes, and the scenario's intended mix (STANDINS.md)."""
import collections
import json
import sys

scenario, path = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(path)]
errs = []


def need(cond, msg):
    if not cond:
        errs.append(msg)


need(recs and recs[-1]['kind'] == 'end', 'end record is not last')
end = recs[-1]
need(end.get('code_line') == 'L4', 'code_line != L4')
variant = end.get('variant')
calls = [r for r in recs if r['kind'] == 'call']
need(len(calls) == end['calls'], 'calls count mismatch %d vs %d' % (len(calls), end['calls']))
outc = collections.Counter(r['outcome'] for r in calls)
routes = collections.Counter(r['hit_route'] for r in calls if r['outcome'] == 'hit')
ev_map = {'hit': {'hit'}, 'miss': {'executed'}, 'join': {'joined'}, 'uncached': {'uncached'},
          'error': {'executed', 'joined', 'uncached', None}, 'recursive': {None}}
for r in calls:
    if variant in ('beta4', 'unknown'):
        need(r['engine_outcome'] is None, 'engine_outcome in %s build' % variant)
    elif r['engine_outcome'] is not None:
        need(r['engine_outcome'] in ev_map[r['outcome']], 'engine_outcome %s for %s' % (r['engine_outcome'], r['outcome']))
        if r['outcome'] == 'hit':
            need(r['engine_hit_route'] == r['hit_route'], 'engine_hit_route != hit_route')
    if r['outcome'] == 'miss':
        need(r['waiters'] == 1 and r['exec_goid'] is not None, 'miss without waiters=1/exec_goid')
    if r['outcome'] == 'join':
        need(r['waiters'] >= 2 and r['exec_goid'] is not None, 'join without waiters>=2/exec_goid')
    if r['outcome'] == 'hit':
        need(r['hit_route'] in ('recipe', 'digest', 'structural') and r['result_id'], 'hit without route/result')
    if r['outcome'] not in ('uncached',) and r['outcome'] != 'error':
        need(r['digest'] is not None or r['outcome'] == 'recursive', 'missing digest')
closes = [r for r in recs if r['kind'] == 'session_close']
anoms = collections.Counter(r['type'] for r in recs if r['kind'] == 'anomaly')
loads = collections.Counter((r['via'], r['hit_route']) for r in recs if r['kind'] == 'load_hit')
arb = collections.Counter(r['outcome'] for r in recs if r['kind'] == 'arbitrary')
chg = collections.Counter(r['outcome'] for r in recs if r['kind'] == 'change')

if scenario == 'mixed':
    for o in ('hit', 'miss', 'join', 'uncached', 'error', 'recursive'):
        need(outc[o] > 0, 'no %s' % o)
    for rt in ('recipe', 'digest', 'structural'):
        need(routes[rt] > 0, 'no %s hit' % rt)
    need(max(r['waiters'] for r in calls) >= 4, 'no join with 3+ joiners')
    need(any(r['outcome'] == 'error' and r['engine_outcome'] == 'joined' or (r['outcome'] == 'error' and r['waiters'] >= 2) for r in calls), 'no joined error')
    need(any(v == 'request' for v, _ in loads) and any(v == 'digests' for v, _ in loads), 'load hits %s' % loads)
    need(all(arb[o] > 0 for o in ('new', 'hit', 'join')), 'arbitrary %s' % arb)
    need(all(chg[o] > 0 for o in ('new', 'join', 'hit')), 'changes %s' % chg)
    need(any(r['kind'] == 'conflict' for r in recs), 'no conflict')
    need(not anoms, 'anomalies in mixed: %s' % anoms)
    need(not any(r['leaked'] for r in closes), 'leaked session in mixed')
    need(end['cache_entries'] == 0, 'cache not empty after mixed')
elif scenario == 'anomalies':
    for t in ('negative_count', 'owned_after_release', 'unknown_session_release'):
        need(anoms[t] > 0, 'no %s anomaly' % t)
elif scenario == 'highrate':
    need(len(calls) > 1000, 'few calls')
    need(0 < outc['miss'] / max(1, len(calls)) < 0.05, 'miss ratio %.3f' % (outc['miss'] / max(1, len(calls))))

print('%s %s: calls=%d outcomes=%s routes=%s loads=%s arbitrary=%s changes=%s anomalies=%s sessions=%d cache_entries=%d'
      % (variant, scenario, len(calls), dict(outc), dict(routes), dict(loads), dict(arb), dict(chg), dict(anoms), end['sessions'], end['cache_entries']))
for e in errs:
    print('FAIL:', e)
sys.exit(1 if errs else 0)
