package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// sessionCalls: highrate rotates each worker's session after this many calls (0: one
// session per worker for the whole run, to measure a cache call without session churn).
var sessionCalls = flag.Int("session-calls", 500, "highrate: calls per worker session before it is released and a new one opened (0: never)")

// scenario runs one round; rounds repeat until -duration (when given) is over.
type scenario struct {
	name        string
	defaultDur  time.Duration // 0: one round
	minSessions int
	round       func(e *env, ctx context.Context, round int, deadline time.Time)
}

var scenarios = map[string]scenario{
	"mixed":    {name: "mixed", minSessions: 4, round: mixedRound},
	"highrate": {name: "highrate", defaultDur: 5 * time.Second, minSessions: 1, round: highrateRound},
}

func pool(prefix string, k int, extra map[string]string) map[string]string {
	args := map[string]string{"k": prefix + strconv.Itoa(k)}
	for n, v := range extra {
		args[n] = v
	}
	return args
}

// mixed: every outcome kind of L1.
func mixedRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)

	// A: concurrent calls over a small pool (misses, hits, joins within a client,
	// nested deps; results shared across sessions)
	e.parallel(sessions, 3, func(w *worker) {
		for i := 0; i < 15; i++ {
			k := w.rng.Intn(8)
			extra := map[string]string{"sleep": "3"}
			if k%3 == 0 {
				extra["nest"], extra["childsleep"] = "2", "1"
			}
			_, _ = w.sel("container", pool(r+"pool-", k, extra))
		}
	})

	// B: join burst: 5 callers of one client on one slow call (ConcurrencyKey =
	// client ID, so joins happen within a session)
	e.burst(sessions[:1], 5, "container", map[string]string{"k": r + "burst", "sleep": "60"})

	w0, w1 := e.newWorker(sessions[0], 0), e.newWorker(sessions[1], 0)

	// C: content-digest hit: another recipe with the same content
	_, _ = w0.sel("file", map[string]string{"path": "a.txt", "content": r + "hello", "k": r + "file"})
	_, _ = w1.sel("file", map[string]string{"path": "b.txt", "content": r + "hello", "k": r + "file"})

	// chained selection on a result (receiver IDs), then the same chain again (hit)
	if res, err := w0.sel("container", pool(r+"pool-", 1, map[string]string{"sleep": "3"})); err == nil {
		_, _ = w0.selOnResult(res, "dep", map[string]string{"k": r + "chained"})
		_, _ = w1.selOnResult(res, "dep", map[string]string{"k": r + "chained"})
	}

	// D: uncached, errors (alone and joined), recursion
	_, _ = w0.sel("now", map[string]string{"k": r + "now"})
	_, _ = w1.sel("now", map[string]string{"k": r + "now"})
	_, _ = w0.sel("container", map[string]string{"k": r + "boom", "fail": "resolver failed: boom"})
	e.burst(sessions[1:2], 3, "container", map[string]string{"k": r + "fail-burst", "sleep": "30", "fail": "exit code 2"})
	_, _ = w0.sel("container", map[string]string{"k": r + "self", "recurse": "1"})

	// E: forced no-cache retry: the first call fails (noCacheNext is marked), the
	// next one in the same session runs uncached and is re-inserted through
	// ValueFunc; another session then hits it
	flaky := map[string]string{"k": r + "flaky", "failonce": "1"}
	_, _ = w0.sel("container", flaky)
	_, _ = w0.sel("container", flaky)
	_, _ = w1.sel("container", flaky)

	// F: TTL: no DB row (session-scoped storage key, persistToDB func1), then a
	// second session finds the persisted row (hit)
	_, _ = w0.sel("ttlLong", map[string]string{"k": r + "ttl"})
	_, _ = w1.sel("ttlLong", map[string]string{"k": r + "ttl"})

	// G: arbitrary values (new, join, hit)
	e.parallel(sessions, 1, func(w *worker) {
		_ = w.arbitrary(r+"module-source", 20*time.Millisecond)
		_ = w.arbitrary(r+"module-source", 0)
	})

	// H: filesync
	filesyncRound(e, sessions, round)

	e.closeSessions(sessions)
	// I: a call on a closed session
	_, _ = w0.sel("container", pool(r+"pool-", 0, nil))
}

// highrate: sustained fast calls, mostly hits; sessions rotate every 500 calls.
func highrateRound(e *env, ctx context.Context, round int, deadline time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	e.parallel(e.openSessions(ctx, e.nSessions), 1, func(w *worker) {
		ss := w.sess
		n := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			k := w.rng.Intn(256)
			args := pool(r+"hr-", k, nil)
			if w.rng.Intn(50) == 0 {
				args["k"] = fmt.Sprintf("%shr-miss-%d-%d", r, ss.idx, n)
			}
			_, _ = w.sel("container", args)
			n++
			if *sessionCalls > 0 && n%*sessionCalls == 0 {
				e.closeSession(ss)
				ss = e.openSession(ctx)
				w = e.newWorker(ss, n)
			}
		}
		e.closeSession(ss)
	})
}
