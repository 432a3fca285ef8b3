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
	"mixed":    {name: "mixed", minSessions: 2, round: mixedRound},
	"hits":     {name: "hits", minSessions: 1, round: hitsRound},
	"joins":    {name: "joins", minSessions: 2, round: joinsRound},
	"ttl":      {name: "ttl", minSessions: 2, round: ttlRound},
	"errors":   {name: "errors", minSessions: 2, round: errorsRound},
	"leak":     {name: "leak", minSessions: 3, round: leakRound},
	"filesync": {name: "filesync", minSessions: 4, round: filesyncScenarioRound},
	"highrate": {name: "highrate", defaultDur: 5 * time.Second, minSessions: 1, round: highrateRound},
}

func pool(prefix string, k int, extra map[string]string) map[string]string {
	args := map[string]string{"k": prefix + strconv.Itoa(k)}
	for n, v := range extra {
		args[n] = v
	}
	return args
}

// mixed: every outcome kind.
func mixedRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)

	// A: concurrent calls over a small pool (misses, hits, joins, nested deps)
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

	// B: join burst on one slow call
	e.burst(sessions, 2, "container", map[string]string{"k": r + "burst", "sleep": "60"})

	w0, w1 := e.newWorker(sessions[0], 0), e.newWorker(sessions[1], 0)

	// C: content-addressed hit: same content, another recipe
	_, _ = w0.sel("file", map[string]string{"path": "a.txt", "content": r + "hello", "k": r + "file"})
	_, _ = w1.sel("file", map[string]string{"path": "b.txt", "content": r + "hello", "k": r + "file"})

	// chained selection on a result (receiver IDs), then the same chain again (hit)
	if res, err := w0.sel("container", pool(r+"pool-", 1, map[string]string{"sleep": "3"})); err == nil {
		_, _ = w0.selOnResult(res, "dep", map[string]string{"k": r + "chained"})
		_, _ = w1.selOnResult(res, "dep", map[string]string{"k": r + "chained"})
		// LoadType: a probe for a cached ID (hit) and for an unknown one (miss error)
		_, _ = w1.loadType(res.ID())
	}
	_, _ = w1.loadType(newUnknownID(r + "never-computed"))

	// D: uncached, errors, recursion, cancellation
	_, _ = w0.sel("now", map[string]string{"k": r + "now"})
	_, _ = w1.sel("now", map[string]string{"k": r + "now"})
	_, _ = w0.sel("container", map[string]string{"k": r + "boom", "fail": "resolver failed: boom"})
	_, _ = w0.sel("container", map[string]string{"k": r + "self", "recurse": "1"})
	_, _ = w1.selTimeout("container", map[string]string{"k": r + "slow-cancel", "sleep": "300"}, 10*time.Millisecond)
	_, _ = w1.sel("probe", map[string]string{"k": r + "probe"})
	_ = w0.nilIDCall()

	// E: TTL
	_, _ = w0.sel("ttlLong", map[string]string{"k": r + "ttl"})
	_, _ = w1.sel("ttlLong", map[string]string{"k": r + "ttl"})
	_, _ = w0.sel("ttlSession", map[string]string{"k": r + "ttl-session"})

	// F: arbitrary values
	e.parallel(sessions, 1, func(w *worker) {
		_ = w.arbitrary(r+"module-source", 20*time.Millisecond)
		_ = w.arbitrary(r+"module-source", 0)
	})

	// G: filesync
	filesyncRound(e, sessions, round)

	e.closeSessions(sessions)
	// H: a call on a closed session
	_, _ = w0.sel("container", pool(r+"pool-", 0, nil))
}

// hits: one session computes a pool, then everybody reads it.
func hitsRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)
	w0 := e.newWorker(sessions[0], 0)
	for k := 0; k < 20; k++ {
		_, _ = w0.sel("container", pool(r+"hot-", k, map[string]string{"sleep": "1"}))
	}
	e.parallel(sessions, 3, func(w *worker) {
		for i := 0; i < 40; i++ {
			_, _ = w.sel("container", pool(r+"hot-", w.rng.Intn(20), map[string]string{"sleep": "1"}))
		}
	})
	e.closeSessions(sessions)
}

// joins: bursts of identical slow calls from every session.
func joinsRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)
	for b := 0; b < 5; b++ {
		e.burst(sessions, 3, "container", map[string]string{"k": r + "burst-" + strconv.Itoa(b), "sleep": "40"})
	}
	// a burst without concurrency key: every caller executes (no join)
	e.burst(sessions, 1, "probe", map[string]string{"k": r + "probe-burst", "sleep": "20"})
	e.closeSessions(sessions)
}

// ttl: persisted metadata shared across sessions, expiry, session-scoped results.
func ttlRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	first := e.openSessions(ctx, 2)
	w0, w1 := e.newWorker(first[0], 0), e.newWorker(first[1], 0)
	for k := 0; k < 3; k++ {
		ks := strconv.Itoa(k)
		_, _ = w0.sel("ttlShort", map[string]string{"k": r + "short-" + ks})
		_, _ = w0.sel("ttlLong", map[string]string{"k": r + "long-" + ks})
	}
	_, _ = w0.sel("ttlSession", map[string]string{"k": r + "session"})
	for k := 0; k < 3; k++ {
		ks := strconv.Itoa(k)
		_, _ = w1.sel("ttlShort", map[string]string{"k": r + "short-" + ks})
		_, _ = w1.sel("ttlLong", map[string]string{"k": r + "long-" + ks})
	}
	_, _ = w1.sel("ttlSession", map[string]string{"k": r + "session"})
	// let the short TTLs expire (1 s)
	time.Sleep(1100 * time.Millisecond)
	later := e.openSession(ctx)
	w2 := e.newWorker(later, 0)
	for k := 0; k < 3; k++ {
		ks := strconv.Itoa(k)
		_, _ = w2.sel("ttlShort", map[string]string{"k": r + "short-" + ks})
		_, _ = w2.sel("ttlLong", map[string]string{"k": r + "long-" + ks})
	}
	e.closeSessions(append(first, later))
}

// errors: resolver errors (also joined), recursion, cancellation, nil ID, closed
// session, LoadType misses.
func errorsRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)
	w0, w1 := e.newWorker(sessions[0], 0), e.newWorker(sessions[1], 0)
	for i := 0; i < 3; i++ {
		_, _ = w0.sel("container", map[string]string{"k": r + "fail-" + strconv.Itoa(i), "fail": "exit code 1"})
	}
	e.burst(sessions, 2, "container", map[string]string{"k": r + "fail-burst", "sleep": "30", "fail": "exit code 2"})
	for i := 0; i < 3; i++ {
		_, _ = w1.sel("container", map[string]string{"k": r + "recurse-" + strconv.Itoa(i), "recurse": "1"})
	}
	_, _ = w0.sel("container", map[string]string{"k": r + "nested-fail", "nest": "1", "childsleep": "1"})
	_, _ = w0.selTimeout("container", map[string]string{"k": r + "cancel-alone", "sleep": "300"}, 10*time.Millisecond)
	// one caller gives up, the joined one gets the result
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = w1.sel("container", map[string]string{"k": r + "cancel-joined", "sleep": "80"})
	}()
	time.Sleep(5 * time.Millisecond)
	_, _ = w0.selTimeout("container", map[string]string{"k": r + "cancel-joined", "sleep": "80"}, 10*time.Millisecond)
	<-done
	_ = w0.nilIDCall()
	_, _ = w1.loadType(newUnknownID(r + "unknown"))
	e.closeSession(sessions[len(sessions)-1], false)
	wc := e.newWorker(sessions[len(sessions)-1], 0)
	_, _ = wc.sel("container", map[string]string{"k": r + "after-close"})
	_ = wc.arbitrary(r+"after-close", 0)
	e.closeSessions(sessions[:len(sessions)-1])
}

// leak: the second session's teardown skips ReleaseAndClose: its refs stay held.
func leakRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)
	e.parallel(sessions, 2, func(w *worker) {
		for i := 0; i < 10; i++ {
			_, _ = w.sel("container", pool(r+"leak-", w.rng.Intn(6), map[string]string{"sleep": "2"}))
		}
		// results only the leaking session holds
		if w.sess == sessions[1] {
			_, _ = w.sel("container", map[string]string{"k": r + "leak-only-" + strconv.Itoa(w.rng.Intn(1000))})
		}
	})
	for i, ss := range sessions {
		e.closeSession(ss, i == 1)
	}
}

func filesyncScenarioRound(e *env, ctx context.Context, round int, _ time.Time) {
	sessions := e.openSessions(ctx, e.nSessions)
	filesyncRound(e, sessions, round)
	e.closeSessions(sessions)
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
				e.closeSession(ss, false)
				ss = e.openSession(ctx)
				w = e.newWorker(ss, n)
			}
		}
		e.closeSession(ss, false)
	})
}
