package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagger/dagger/dagql"
)

// sessionCalls: highrate rotates each worker's session after this many calls (0: one
// session per worker for the whole run, to measure a cache call without session churn).
var sessionCalls = flag.Int("session-calls", 500, "highrate: calls per worker session before it is released and a new one opened (0: never)")

type scenario struct {
	name        string
	minSessions int
	defaultDur  time.Duration
	round       func(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time)
}

var scenarios = map[string]scenario{
	"mixed":     {name: "mixed", minSessions: 4, round: mixedRound},
	"anomalies": {name: "anomalies", minSessions: 3, round: anomaliesRound},
	"highrate":  {name: "highrate", minSessions: 1, defaultDur: 5 * time.Second, round: highrateRound},
}

func value(s string) func(context.Context) (dagql.AnyResult, error) {
	return func(context.Context) (dagql.AnyResult, error) { return dagql.NewResult(dagql.String(s)), nil }
}

// together runs fns concurrently, released at once, and waits for them.
func together(fns ...func()) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, fn := range fns {
		wg.Add(1)
		go func(fn func()) {
			defer wg.Done()
			<-start
			fn()
		}(fn)
	}
	close(start)
	wg.Wait()
}

// poolCall calls pool(k): some pool items make two nested dep calls from their
// resolver (on the exec goroutine, with its ctx).
func (e *env) poolCall(ctx context.Context, ss *sessState, pfx string, k int, telemetry bool) (dagql.AnyResult, error) {
	key := fmt.Sprintf("%sk%d", pfx, k)
	req := request(frame("pool", nil, 0, arg("k", key)), ss.id)
	return e.call(ctx, ss, req, telemetry, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
		if k%3 == 0 {
			for j := 0; j < 2; j++ {
				dep := request(frame("dep", nil, 0, arg("of", key), arg("j", fmt.Sprint(j))), ss.id)
				if _, err := e.call(ctx, ss, dep, j == 0, e.resolverFn(value(fmt.Sprintf("dep-%s-%d", key, j)))); err != nil {
					return nil, err
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
		return dagql.NewResult(dagql.String("pool-" + key)), nil
	}))
}

func mixedRound(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time) {
	pfx := fmt.Sprintf("r%d-", round)
	ctx := context.Background()
	var ss []*sessState
	for i := 0; i < nSessions; i++ {
		ss = append(ss, e.openSession())
	}
	s := func(i int) *sessState { return ss[i%len(ss)] }

	// A: 3 workers per session over a pool of 8 IDs (results shared across sessions;
	// joins within a session, whose id is the ConcurrencyKey).
	var fns []func()
	for i := range ss {
		for w := 0; w < 3; w++ {
			sess := ss[i]
			rng := rand.New(rand.NewSource(e.seed*1000003 + int64(round)*1009 + int64(i*3+w)))
			fns = append(fns, func() {
				for n := 0; n < 12; n++ {
					_, _ = e.poolCall(ctx, sess, pfx, rng.Intn(8), rng.Intn(2) == 0)
				}
			})
		}
	}
	together(fns...)

	// B: a join burst: 4 identical slow calls in one session (1 miss + 3 joins).
	fns = nil
	for i := 0; i < 4; i++ {
		tel := i%2 == 0
		fns = append(fns, func() {
			req := request(frame("slow", nil, 0, arg("k", pfx+"burst")), s(0).id)
			_, _ = e.call(ctx, s(0), req, tel, e.resolverFn(func(context.Context) (dagql.AnyResult, error) {
				time.Sleep(80 * time.Millisecond)
				return dagql.NewResult(dagql.String("slow")), nil
			}))
		})
	}
	together(fns...)

	// C: a failing call joined by two more callers (3 errors, 2 of them joined).
	fns = nil
	for i := 0; i < 3; i++ {
		tel := i != 1
		fns = append(fns, func() {
			req := request(frame("failing", nil, 0, arg("k", pfx+"fail")), s(1).id)
			_, _ = e.call(ctx, s(1), req, tel, e.resolverFn(func(context.Context) (dagql.AnyResult, error) {
				time.Sleep(60 * time.Millisecond)
				return nil, errors.New("resolver failed: boom")
			}))
		})
	}
	together(fns...)

	// D: uncached (DoNotCache) calls: detached with and without telemetry, one
	// returning an attached cache result, one doing an ID-loading lookup inside its
	// open GetOrInitCall frame (not a load hit).
	for i, tel := range []bool{true, false} {
		req := request(frame("now", nil, 0, arg("n", fmt.Sprint(i))), s(2).id)
		req.DoNotCache = true
		_, _ = e.call(ctx, s(2), req, tel, e.resolverFn(value(fmt.Sprintf("now-%d", i))))
	}
	{
		req := request(frame("attach", nil, 0, arg("k", pfx+"k2")), s(2).id)
		req.DoNotCache = true
		_, _ = e.call(ctx, s(2), req, true, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
			return e.poolCall(ctx, s(2), pfx, 2, false)
		}))
	}
	{
		_, _ = e.poolCall(ctx, s(2), pfx, 1, true)
		f := frame("pool", nil, 0, arg("k", pfx+"k1"))
		dig, _ := f.RecipeDigest()
		req := request(frame("inspect", nil, 0, arg("k", pfx+"k1")), s(2).id)
		req.DoNotCache = true
		_, _ = e.call(ctx, s(2), req, false, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
			if e.load(ctx, s(2), &dagql.RecipeVertex{Digest: dig, Frame: f}, true) == nil {
				return nil, errors.New("inspect: pool item not loaded")
			}
			return dagql.NewResult(dagql.String("inspected")), nil
		}))
	}

	// E: recursion: loop's resolver calls loop again (recursive), and fails.
	{
		req := request(frame("loop", nil, 0, arg("k", pfx+"loop")), s(3).id)
		_, _ = e.call(ctx, s(3), req, true, e.resolverFn(func(ctx context.Context) (dagql.AnyResult, error) {
			again := request(frame("loop", nil, 0, arg("k", pfx+"loop")), s(3).id)
			if _, err := e.call(ctx, s(3), again, true, e.resolverFn(value("never"))); err != nil {
				return nil, fmt.Errorf("loop body: %v", err)
			}
			return dagql.NewResult(dagql.String("loop")), nil
		}))
	}

	// F: hit routes across sessions. file(a) and file(b) produce the same content, so
	// their classes merge: b.size() executes, a.size() then hits structurally;
	// byContent (extra digest = the content) hits by digest; file(a) again by recipe.
	content := dagql.HashDigest(pfx, "content-a")
	fileFn := func(text string) func(context.Context) (dagql.AnyResult, error) {
		return e.resolverFn(func(context.Context) (dagql.AnyResult, error) {
			return dagql.NewResult(dagql.ContentValue{Text: text, Content: content}), nil
		})
	}
	frameA := frame("file", nil, 0, arg("path", pfx+"a"))
	resA, _ := e.call(ctx, s(0), request(frameA, s(0).id), true, fileFn("a"))
	frameB := frame("file", nil, 0, arg("path", pfx+"b"))
	resB, _ := e.call(ctx, s(1), request(frameB, s(1).id), false, fileFn("b"))
	_, _ = e.call(ctx, s(2), request(frame("size", frameB, dagql.ResultID(resB)), s(2).id), true, e.resolverFn(value("size-b")))
	_, _ = e.call(ctx, s(3), request(frame("size", frameA, dagql.ResultID(resA)), s(3).id), true, e.resolverFn(value("size-a")))
	byContent := func() *dagql.ResultCall {
		f := frame("byContent", nil, 0, arg("digest", content))
		f.ExtraDigests = []dagql.ResultCallExtraDigest{{Digest: content, Label: "content"}}
		return f
	}
	_, _ = e.call(ctx, s(0), request(byContent(), s(0).id), true, e.resolverFn(value("by-content")))
	_, _ = e.call(ctx, s(1), request(frame("file", nil, 0, arg("path", pfx+"a")), s(1).id), true, fileFn("a"))
	_, _ = e.call(ctx, s(2), request(frame("file", nil, 0, arg("path", pfx+"a")), s(2).id), false, fileFn("a"))

	// G: the arbitrary cache: new, hit, a 3-way join, an error.
	e.arbitrary(ctx, s(0), pfx+"arb-1", dagql.ArbitraryValueFunc("v1"))
	e.arbitrary(ctx, s(1), pfx+"arb-1", dagql.ArbitraryValueFunc("v1"))
	slowArb := func(context.Context) (any, error) {
		time.Sleep(60 * time.Millisecond)
		return "v2", nil
	}
	together(
		func() { e.arbitrary(ctx, s(0), pfx+"arb-2", slowArb) },
		func() { e.arbitrary(ctx, s(1), pfx+"arb-2", slowArb) },
		func() { e.arbitrary(ctx, s(2), pfx+"arb-2", slowArb) },
	)
	e.arbitrary(ctx, s(3), pfx+"arb-3", func(context.Context) (any, error) { return nil, errors.New("arbitrary failed") })

	// H: ID loading outside GetOrInitCall: by recipe digest, structurally through
	// lookupCallRequest, by extra digest.
	{
		f := frame("file", nil, 0, arg("path", pfx+"a"))
		d, _ := f.RecipeDigest()
		e.load(ctx, s(1), &dagql.RecipeVertex{Digest: d, Frame: f}, false)
	}
	{
		f := frame("size", frame("file", nil, 0, arg("path", pfx+"a")), dagql.ResultID(resA))
		d, _ := f.RecipeDigest()
		e.load(ctx, s(2), &dagql.RecipeVertex{Digest: d, Frame: f}, false)
	}
	{
		f := frame("byContent", nil, 0, arg("digest", content), arg("via", "load"))
		d, _ := f.RecipeDigest()
		e.load(ctx, s(3), &dagql.RecipeVertex{Digest: d, ExtraDigests: []dagql.ResultCallExtraDigest{{Digest: content, Label: "content"}}, Frame: f}, false)
	}

	// I: a filesync round.
	filesyncRound(e, ss, round)

	// J: release every session.
	for _, sess := range ss {
		e.closeSession(sess)
	}
}

func anomaliesRound(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time) {
	pfx := fmt.Sprintf("r%d-", round)
	ctx := context.Background()
	var ss []*sessState
	for i := 0; i < nSessions; i++ {
		ss = append(ss, e.openSession())
	}
	for i, sess := range ss {
		for k := 0; k < 4; k++ {
			_, _ = e.poolCall(ctx, sess, pfx, (i+k)%4+1, k%2 == 0)
		}
	}

	// negative_count: a result owned by ss[0] only, released twice (a planted extra
	// decrement, then ReleaseSession's).
	neg, _ := e.call(ctx, ss[0], request(frame("victimNeg", nil, 0, arg("k", pfx+"neg")), ss[0].id), true, e.resolverFn(value("neg")))
	e.cache.DebugExtraDecrement(ctx, dagql.ResultID(neg))

	// owned_after_release: an ownership increment no session tracks.
	own, _ := e.call(ctx, ss[1], request(frame("victimOwn", nil, 0, arg("k", pfx+"own")), ss[1].id), true, e.resolverFn(value("own")))
	e.cache.DebugUntrackedIncrement(ctx, dagql.ResultID(own))
	last := ss[len(ss)-1]
	_, _ = e.call(ctx, last, request(frame("victimOwn", nil, 0, arg("k", pfx+"own")), last.id), false, e.resolverFn(value("own")))

	for _, sess := range ss {
		e.closeSession(sess)
	}
	e.reportOwnedAfterRelease()

	// unknown_session_release: a session id that never made a call.
	e.releaseUnknown(pfx + "sess-ghost")
}

// highrateRound: one worker per session calling a 256-ID pool as fast as it can (about
// 2% unique misses); each worker's session rotates every 500 calls.
func highrateRound(e *env, stop *atomic.Bool, round int, nSessions int, deadline time.Time) {
	pfx := fmt.Sprintf("r%d-", round)
	ctx := context.Background()
	// an anchor session keeps the pool's results owned while worker sessions rotate,
	// so pool calls hit and the misses are the ~2% unique IDs
	anchor := e.openSession()
	for k := 0; k < 256 && !stop.Load(); k++ {
		key := fmt.Sprintf("%sp%d", pfx, k)
		_, _ = e.call(ctx, anchor, request(frame("item", nil, 0, arg("k", key)), anchor.id), k%2 == 0, e.resolverFn(value(key)))
	}
	var wg sync.WaitGroup
	for w := 0; w < nSessions; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(e.seed*7919 + int64(round)*131 + int64(w)))
			sess := e.openSession()
			for n := 1; !stop.Load(); n++ {
				if n%64 == 0 && !time.Now().Before(deadline) {
					break
				}
				var key string
				if rng.Intn(100) < 2 {
					key = fmt.Sprintf("%su%d-%d", pfx, w, n)
				} else {
					key = fmt.Sprintf("%sp%d", pfx, rng.Intn(256))
				}
				req := request(frame("item", nil, 0, arg("k", key)), sess.id)
				_, _ = e.call(ctx, sess, req, rng.Intn(2) == 0, e.resolverFn(value(key)))
				if *sessionCalls > 0 && n%*sessionCalls == 0 {
					e.closeSession(sess)
					sess = e.openSession()
				}
			}
			e.closeSession(sess)
		}(w)
	}
	wg.Wait()
	e.closeSession(anchor)
}
