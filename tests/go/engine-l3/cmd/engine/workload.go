package main

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
	"github.com/dagger/dagger/engine/server"
)

// Container is the value every field returns.
type Container struct{ Key string }

func (*Container) TypeName() string { return "Container" }

// resolver stands in for the dagql Server handed to the cache as TypeResolver.
type resolver struct{}

func (resolver) ResolveTypeName(name string) (string, bool) { return name, true }

// env is one run of the workload.
type env struct {
	srv       *server.Server
	cache     *dagql.Cache
	res       dagql.TypeResolver
	truth     *truthWriter
	scenario  string
	seed      int64
	nSessions int
	startNs   int64

	fnRunning atomic.Int64
	sessN     atomic.Int64
	calls     atomic.Int64
	conflicts atomic.Int64
	syncN     atomic.Int64

	mu       sync.Mutex
	outcomes map[string]int
	changes  map[string]int
}

func newEnv(srv *server.Server, truth *truthWriter, scenario string, seed int64, nSessions int) *env {
	return &env{
		srv:       srv,
		cache:     srv.EngineCache(),
		res:       resolver{},
		truth:     truth,
		scenario:  scenario,
		seed:      seed,
		nSessions: nSessions,
		startNs:   nanotime(),
		outcomes:  map[string]int{},
		changes:   map[string]int{},
	}
}

func (e *env) goid() int64 {
	if !e.truth.enabled() {
		return 0
	}
	return dagql.CurrentGoroutineID()
}

// sessState is one open session of the workload.
type sessState struct {
	env *env
	id  string
	idx int
	s   *server.Session
	ctx context.Context
}

func (e *env) openSession(ctx context.Context) *sessState {
	n := e.sessN.Add(1)
	id := fmt.Sprintf("sess-%d", n)
	md := &server.ClientMetadata{
		ClientID:      fmt.Sprintf("client-%d", n),
		SessionID:     id,
		ClientVersion: "v0.21.8-standin",
	}
	s, err := e.srv.OpenSession(ctx, md)
	if err != nil {
		panic(fmt.Sprintf("open session %s: %v", id, err))
	}
	e.truth.write(sessionOpenRec{Kind: "session_open", Session: id, Goid: e.goid(), TNs: nanotime()})
	return &sessState{env: e, id: id, idx: int(n), s: s, ctx: ctx}
}

func (e *env) openSessions(ctx context.Context, n int) []*sessState {
	out := make([]*sessState, n)
	for i := range out {
		out[i] = e.openSession(ctx)
	}
	return out
}

// waitFns waits until no resolver is running.
func (e *env) waitFns() {
	deadline := time.Now().Add(10 * time.Second)
	for e.fnRunning.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// closeSession tears the session down: removeDaggerSession -> ReleaseSession.
func (e *env) closeSession(ss *sessState) {
	if e.scenario != "highrate" {
		e.waitFns()
	}
	ct := &dagql.CloseTrace{}
	if err := e.srv.CloseSession(dagql.WithCloseTrace(context.WithoutCancel(ss.ctx), ct), ss.s); err != nil && e.scenario != "anomalies" {
		fmt.Printf("engine: close %s: %v\n", ss.id, err)
	}
	taken := dagql.SessionRefsTaken(ss.id)
	released := int64(ct.Decrements)
	e.truth.write(sessionCloseRec{
		Kind:            "session_close",
		Session:         ss.id,
		Goid:            e.goid(),
		RefsTaken:       taken,
		RefsReleased:    released,
		ResultsReleased: int64(ct.Collected),
		Leaked:          taken > released,
		TNs:             nanotime(),
	})
}

func (e *env) closeSessions(sessions []*sessState) {
	for _, ss := range sessions {
		e.closeSession(ss)
	}
}

// worker is one client goroutine of a session.
type worker struct {
	env  *env
	sess *sessState
	rng  *rand.Rand
}

func (e *env) newWorker(ss *sessState, n int) *worker {
	return &worker{env: e, sess: ss, rng: rand.New(rand.NewSource(e.seed*1_000_003 + int64(ss.idx)*7919 + int64(n)))}
}

// spec describes one call and what its resolver does.
type spec struct {
	field      string
	key        string
	sleep      time.Duration
	fail       string
	recv       *dagql.ResultCall // receiver frame (nil: the root)
	recvID     uint64
	extras     []call.ExtraDigest
	noConc     bool // empty ConcurrencyKey: never joined
	doNotCache bool
	nest       int  // nested calls made by the resolver
	recurse    bool // the resolver calls its own recipe again
	// body, if set, replaces the resolver (DoNotCache: runs under the open frame)
	body func(ctx context.Context, w *worker, self digest.Digest) (dagql.AnyResult, error)
}

func (e *env) newRequest(sp spec) *dagql.CallRequest {
	frame := &dagql.ResultCall{
		Kind:  dagql.ResultCallKindField,
		Type:  &dagql.ResultCallType{NamedType: "Container", NonNull: true},
		Field: sp.field,
		Args: []*dagql.ResultCallArg{{
			Name:  "k",
			Value: &dagql.ResultCallLiteral{Kind: "string", StringValue: sp.key},
		}},
		ExtraDigests: sp.extras,
	}
	if sp.recv != nil {
		frame.Receiver = &dagql.ResultCallRef{ResultID: sp.recvID, Call: sp.recv}
	}
	req := &dagql.CallRequest{ResultCall: frame, DoNotCache: sp.doNotCache}
	if !sp.noConc {
		req.ConcurrencyKey = "dagql"
	}
	return req
}

// do makes one (*Cache).GetOrInitCall and records it; returns the request frame.
func (w *worker) do(ctx context.Context, sp spec, parent digest.Digest) (dagql.AnyResult, *dagql.ResultCall, error) {
	e := w.env
	req := e.newRequest(sp)
	if sp.doNotCache {
		// dagql's telemetry derives the ID digest before calling the cache
		_, _ = req.ResultCall.RecipeDigest(e.cache)
	}
	frame := req.ResultCall
	fn := func(fctx context.Context) (dagql.AnyResult, error) {
		e.fnRunning.Add(1)
		defer e.fnRunning.Add(-1)
		self := frame.HeldRecipeDigest()
		if sp.body != nil {
			return sp.body(fctx, w, self)
		}
		if sp.sleep > 0 {
			t := time.NewTimer(sp.sleep)
			select {
			case <-t.C:
			case <-fctx.Done():
				t.Stop()
				return nil, context.Cause(fctx)
			}
		}
		if sp.fail != "" {
			return nil, fmt.Errorf("%s", sp.fail)
		}
		if sp.recurse {
			again := sp
			again.recurse = false
			_, _, _ = w.do(fctx, again, self)
		}
		for i := 0; i < sp.nest; i++ {
			child := spec{field: "dep", key: fmt.Sprintf("%s/%d", sp.key, i), sleep: time.Millisecond}
			if _, _, err := w.do(fctx, child, self); err != nil {
				return nil, err
			}
		}
		return dagql.NewResult[*Container](&Container{Key: sp.key}), nil
	}
	tr := &dagql.CallTrace{}
	goid := e.goid()
	start := nanotime()
	res, err := e.cache.GetOrInitCall(dagql.WithCallTrace(ctx, tr), w.sess.id, e.res, req, fn)
	end := nanotime()
	w.record(tr, goid, frame, parent, res, err, start, end)
	return res, frame, err
}

func (w *worker) record(tr *dagql.CallTrace, goid int64, frame *dagql.ResultCall, parent digest.Digest, res dagql.AnyResult, err error, start, end int64) {
	e := w.env
	outcome := tr.Path
	switch {
	case err != nil && tr.Path == "recursive":
		outcome = "recursive"
	case err != nil || outcome == "":
		outcome = "error"
	}
	e.calls.Add(1)
	e.mu.Lock()
	e.outcomes[outcome]++
	e.mu.Unlock()
	if !e.truth.enabled() {
		return
	}
	rec := callRec{
		Kind:    "call",
		Session: w.sess.id,
		Goid:    goid,
		Field:   frame.Field,
		Outcome: outcome,
		Waiters: tr.Waiters,
		StartNs: start,
		EndNs:   end,
	}
	if d := frame.HeldRecipeDigest(); d != "" {
		rec.Digest = strp(d.String())
	}
	if len(frame.Args) > 0 && frame.Args[0].Value != nil {
		rec.Arg0 = strp(frame.Args[0].Value.StringValue)
	}
	if outcome == "hit" {
		rec.HitRoute = strp(tr.HitRoute)
	}
	switch tr.Path {
	case "miss", "join":
		if outcome == "miss" || outcome == "join" {
			if g := tr.ExecGoid(); g != 0 {
				rec.ExecGoid = i64p(g)
			}
		}
	case "uncached":
		if outcome == "uncached" {
			rec.ExecGoid = i64p(tr.UncachedGoid)
		}
	}
	if parent != "" {
		rec.ParentDigest = strp(parent.String())
	}
	if err != nil {
		rec.Error = strp(err.Error())
	} else if id := dagql.ResultID(res); id != 0 {
		rec.ResultID = u64p(id)
	}
	e.truth.write(rec)
}

// load loads a recipe the way ID loading does (lookupCacheForDigests, then
// lookupCallRequest). record: write a load_hit (not under an open GetOrInitCall).
func (w *worker) load(ctx context.Context, req *dagql.CallRequest, dig digest.Digest, extras []call.ExtraDigest, record bool) (dagql.AnyResult, error) {
	e := w.env
	tr := &dagql.CallTrace{}
	goid := e.goid()
	res, err := e.cache.LoadRecipe(dagql.WithCallTrace(ctx, tr), w.sess.id, e.res, req, dig, extras)
	if err != nil || !record {
		return res, err
	}
	e.mu.Lock()
	e.outcomes["load_hit_"+tr.Via]++
	e.mu.Unlock()
	e.truth.write(loadHitRec{
		Kind: "load_hit", Session: w.sess.id, Goid: goid, Digest: dig.String(), Via: tr.Via,
		HitRoute: tr.HitRoute, ResultID: dagql.ResultID(res), TNs: nanotime(),
	})
	return res, nil
}

// arbitrary caches an opaque value by key.
func (w *worker) arbitrary(ctx context.Context, key string, sleep time.Duration) error {
	e := w.env
	tr := &dagql.ArbitraryTrace{}
	goid := e.goid()
	_, err := e.cache.GetOrInitArbitrary(dagql.WithArbitraryTrace(ctx, tr), w.sess.id, key, func(ctx context.Context) (any, error) {
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return "value of " + key, nil
	})
	outcome := tr.Path
	if err != nil {
		outcome = "error"
	}
	e.mu.Lock()
	e.outcomes["arbitrary_"+outcome]++
	e.mu.Unlock()
	e.truth.write(arbitraryRec{Kind: "arbitrary", Session: w.sess.id, Goid: goid, Key: key, Outcome: outcome, TNs: nanotime()})
	return err
}

func (e *env) anomaly(typ string, session string, id uint64) {
	rec := anomalyRec{Kind: "anomaly", Type: typ}
	if session != "" {
		rec.Session = strp(session)
	}
	if id != 0 {
		rec.ResultID = u64p(id)
	}
	e.mu.Lock()
	e.outcomes["anomaly_"+typ]++
	e.mu.Unlock()
	e.truth.write(rec)
}

// parallel runs fn for every (session, worker index) pair concurrently and waits.
func (e *env) parallel(sessions []*sessState, perSession int, fn func(w *worker)) {
	var wg sync.WaitGroup
	for _, ss := range sessions {
		for i := 0; i < perSession; i++ {
			w := e.newWorker(ss, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				fn(w)
			}()
		}
	}
	wg.Wait()
}

// burst makes every (session, worker) make the same call at the same instant.
func (e *env) burst(sessions []*sessState, perSession int, sp spec) {
	start := make(chan struct{})
	var ready, wg sync.WaitGroup
	for _, ss := range sessions {
		ss := ss
		for i := 0; i < perSession; i++ {
			w := e.newWorker(ss, 100+i)
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready.Done()
				<-start
				_, _, _ = w.do(ss.ctx, sp, "")
			}()
		}
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

func (e *env) end(variant string) endRec {
	e.mu.Lock()
	outcomes := map[string]int{}
	for k, v := range e.outcomes {
		outcomes[k] = v
	}
	e.mu.Unlock()
	return endRec{
		Kind:         "end",
		CodeLine:     "L3",
		Variant:      variant,
		Scenario:     e.scenario,
		Seed:         e.seed,
		Calls:        e.calls.Load(),
		Outcomes:     outcomes,
		Sessions:     int(e.sessN.Load()),
		CacheEntries: e.cache.Size(),
		CacheAddr:    e.srv.DagqlCacheAddr(),
		DurationNs:   nanotime() - e.startNs,
	}
}

func summary(end endRec) string {
	keys := make([]string, 0, len(end.Outcomes))
	for k := range end.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, end.Outcomes[k]))
	}
	return strings.Join(parts, " ")
}
