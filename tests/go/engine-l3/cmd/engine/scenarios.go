package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
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
	"mixed":     {name: "mixed", minSessions: 3, round: mixedRound},
	"anomalies": {name: "anomalies", minSessions: 3, round: anomaliesRound},
	"highrate":  {name: "highrate", defaultDur: 5 * time.Second, minSessions: 1, round: highrateRound},
}

func poolSpec(r string, k int) spec {
	sp := spec{field: "container", key: r + "pool-" + strconv.Itoa(k), sleep: 3 * time.Millisecond}
	if k%3 == 0 {
		sp.nest = 2
	}
	return sp
}

// mixed: every outcome and hit route of L3, shared results, releases, arbitrary
// values, ID-loading hits and a filesync round.
func mixedRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)

	// A: concurrent calls over a small pool (misses, recipe hits, joins, nested calls)
	e.parallel(sessions, 3, func(w *worker) {
		for i := 0; i < 12; i++ {
			_, _, _ = w.do(w.sess.ctx, poolSpec(r, w.rng.Intn(8)), "")
		}
	})

	// B: join burst (one execution, every other caller joins), then an erroring
	// burst (the error reaches every joiner)
	e.burst(sessions, 2, spec{field: "container", key: r + "burst", sleep: 60 * time.Millisecond})
	e.burst(sessions, 1, spec{field: "container", key: r + "fail-burst", sleep: 40 * time.Millisecond, fail: "exit code 2"})

	w0, w1 := e.newWorker(sessions[0], 0), e.newWorker(sessions[1], 0)
	c0, c1 := sessions[0].ctx, sessions[1].ctx

	// C: errors, recursion, uncached
	_, _, _ = w0.do(c0, spec{field: "container", key: r + "boom", fail: "resolver failed: boom"}, "")
	_, _, _ = w0.do(c0, spec{field: "container", key: r + "self", recurse: true}, "")
	_, _, _ = w0.do(c0, spec{field: "now", key: r + "now", doNotCache: true}, "")
	_, _, _ = w1.do(c1, spec{field: "now", key: r + "now", doNotCache: true}, "")
	_, _, _ = w1.do(c1, spec{field: "probe", key: r + "probe", noConc: true, sleep: time.Millisecond}, "")

	// D: extra-digest ("digest") route: same content, other recipes
	content := []call.ExtraDigest{{Digest: digest.FromString(r + "content of a.txt"), Label: "content"}}
	_, fa, errA := w0.do(c0, spec{field: "file", key: r + "a.txt", extras: content, sleep: time.Millisecond}, "")
	_, fb, errB := w1.do(c1, spec{field: "file", key: r + "b.txt", extras: content}, "")

	// E: structural route: dep on a, then dep on b (b's recipe was taught onto a's
	// result, so the term (self, class of a) matches)
	if errA == nil && errB == nil {
		_, _, _ = w0.do(c0, spec{field: "dep", key: r + "dep", recv: fa, sleep: time.Millisecond}, "")
		_, _, _ = w1.do(c1, spec{field: "dep", key: r + "dep", recv: fb}, "")
	}

	// F: ID loading outside GetOrInitCall: digests (recipe), digests (extra digest),
	// request (structural), and a miss
	if resPool, framePool, err := w1.do(c1, poolSpec(r, 1), ""); err == nil && resPool != nil {
		dig, _ := framePool.RecipeDigest(e.cache)
		_, _ = w1.load(c1, nil, dig, nil, true)
	}
	_, _ = w1.load(c1, nil, digest.FromString(r+"unknown recipe"), content, true)
	if _, fc, err := w1.do(c1, spec{field: "file", key: r + "c.txt", extras: content}, ""); err == nil {
		twin := e.newRequest(spec{field: "dep", key: r + "dep", recv: fc})
		dig, _ := twin.ResultCall.RecipeDigest(e.cache)
		_, _ = w1.load(c1, twin, dig, nil, true)
	}
	_, _ = w0.load(c0, nil, digest.FromString(r+"never computed"), nil, true)

	// G: a lookup made inside an open GetOrInitCall frame (a DoNotCache resolver runs
	// on the caller's goroutine): not a load hit; it returns the attached result
	_, _, _ = w0.do(c0, spec{field: "nowLoaded", key: r + "now-loaded", doNotCache: true,
		body: func(fctx context.Context, w *worker, _ digest.Digest) (dagql.AnyResult, error) {
			req := e.newRequest(poolSpec(r, 2))
			dig, _ := req.ResultCall.RecipeDigest(e.cache)
			res, err := w.load(fctx, req, dig, nil, false)
			if err != nil {
				return dagql.NewResult[*Container](&Container{Key: "fresh"}), nil
			}
			return res, nil
		}}, "")

	// H: arbitrary values (new, join, hit)
	e.parallel(sessions, 1, func(w *worker) {
		_ = w.arbitrary(w.sess.ctx, r+"module-source", 20*time.Millisecond)
		_ = w.arbitrary(w.sess.ctx, r+"module-source", 0)
	})

	// I: filesync
	filesyncRound(e, sessions, round)

	e.closeSessions(sessions)
}

// anomalies: ordinary calls plus each ownership anomaly once.
func anomaliesRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	sessions := e.openSessions(ctx, e.nSessions)
	e.parallel(sessions, 2, func(w *worker) {
		for i := 0; i < 6; i++ {
			_, _, _ = w.do(w.sess.ctx, spec{field: "container", key: r + "pool-" + strconv.Itoa(w.rng.Intn(4)), sleep: 2 * time.Millisecond}, "")
		}
	})
	w0, w1 := e.newWorker(sessions[0], 0), e.newWorker(sessions[1], 0)

	// owned_after_release: an increment no session tracks
	owned, _, errOwned := w1.do(sessions[1].ctx, spec{field: "container", key: r + "owned"}, "")
	if errOwned == nil {
		e.cache.PlantUntrackedIncrement(context.Background(), owned)
	}
	// negative_count: a result released by its only session, then decremented again
	neg, _, errNeg := w0.do(sessions[0].ctx, spec{field: "container", key: r + "negative"}, "")

	e.closeSessions(sessions)
	if errNeg == nil {
		if after := e.cache.PlantExtraDecrement(context.Background(), neg); after < 0 {
			e.anomaly("negative_count", sessions[0].id, dagql.ResultID(neg))
		}
	}
	if errOwned == nil && e.cache.OwnershipCount(owned) > 0 {
		e.anomaly("owned_after_release", sessions[1].id, dagql.ResultID(owned))
	}
	// unknown_session_release: ReleaseSession of a session id that never made a call
	unknown := fmt.Sprintf("sess-unknown-%d", round)
	_ = e.srv.ReleaseUnknownSession(context.Background(), unknown)
	e.anomaly("unknown_session_release", unknown, 0)
}

// highrate: sustained fast calls over a 256-ID pool (about 2% unique misses);
// sessions rotate every 500 calls.
func highrateRound(e *env, ctx context.Context, round int, deadline time.Time) {
	r := "r" + strconv.Itoa(round) + "-"
	// a keeper session computes the pool first and holds it for the round (results
	// nobody owns are collected, so rotating sessions alone would re-miss the pool)
	keeper := e.openSession(ctx)
	wk := e.newWorker(keeper, 0)
	for k := 0; k < 256 && ctx.Err() == nil; k++ {
		_, _, _ = wk.do(keeper.ctx, spec{field: "container", key: r + "hr-" + strconv.Itoa(k)}, "")
	}
	defer e.closeSession(keeper)
	e.parallel(e.openSessions(ctx, e.nSessions), 1, func(w *worker) {
		ss := w.sess
		n := 0
		for time.Now().Before(deadline) && ctx.Err() == nil {
			sp := spec{field: "container", key: r + "hr-" + strconv.Itoa(w.rng.Intn(256))}
			if w.rng.Intn(50) == 0 {
				sp.key = fmt.Sprintf("%shr-miss-%d-%d", r, ss.idx, n)
			}
			_, _, _ = w.do(ss.ctx, sp, "")
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
