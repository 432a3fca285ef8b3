package main

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine/server"
)

// env is one run of the workload.
type env struct {
	srv       *server.Server
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
	arbs     map[string]int
	open     map[string]*sessState
}

func newEnv(srv *server.Server, truth *truthWriter, scenario string, seed int64, nSessions int) *env {
	e := &env{
		srv:       srv,
		truth:     truth,
		scenario:  scenario,
		seed:      seed,
		nSessions: nSessions,
		startNs:   nanotime(),
		outcomes:  map[string]int{},
		changes:   map[string]int{},
		arbs:      map[string]int{},
		open:      map[string]*sessState{},
	}
	return e
}

type sessKey struct{}

type workerKey struct{}

// sessState is one open session of the workload.
type sessState struct {
	env *env
	id  string
	idx int
	s   *server.Session
	ctx context.Context

	closed atomic.Bool
}

func sessFrom(ctx context.Context) *sessState {
	s, _ := ctx.Value(sessKey{}).(*sessState)
	return s
}

// worker is one client goroutine of a session.
type worker struct {
	env  *env
	sess *sessState
	rng  *rand.Rand
	last dagql.AnyResult
}

func workerFrom(ctx context.Context) *worker {
	w, _ := ctx.Value(workerKey{}).(*worker)
	return w
}

func (e *env) goid() int64 {
	if !e.truth.enabled() {
		return 0
	}
	return dagql.CurrentGoroutineID()
}

func (e *env) openSession(ctx context.Context) *sessState {
	n := e.sessN.Add(1)
	id := fmt.Sprintf("sess-%d", n)
	md := &server.ClientMetadata{
		ClientID:      fmt.Sprintf("client-%d", n),
		ClientVersion: "v0.20.8-standin",
		SessionID:     id,
	}
	s, err := e.srv.OpenSession(ctx, md)
	if err != nil {
		panic(fmt.Sprintf("open session %s: %v", id, err))
	}
	ss := &sessState{env: e, id: id, idx: int(n), s: s}
	sctx := server.ContextWithClientMetadata(ctx, md)
	ss.ctx = context.WithValue(sctx, sessKey{}, ss)
	e.mu.Lock()
	e.open[id] = ss
	e.mu.Unlock()
	e.truth.write(sessionOpenRec{
		Kind:    "session_open",
		Session: id,
		Goid:    e.goid(),
		TNs:     nanotime(),
	})
	return ss
}

func (e *env) openSessions(ctx context.Context, n int) []*sessState {
	out := make([]*sessState, n)
	for i := range out {
		out[i] = e.openSession(ctx)
	}
	return out
}

// waitFns waits until no resolver is running (so that nothing is still calling into
// a session that is about to close).
func (e *env) waitFns() {
	deadline := time.Now().Add(10 * time.Second)
	for e.fnRunning.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// closeSession tears the session down through removeDaggerSession (which calls
// ReleaseAndClose).
func (e *env) closeSession(ss *sessState) {
	if e.scenario != "highrate" {
		e.waitFns()
	}
	ct := &dagql.CloseTrace{}
	ctx := dagql.WithCloseTrace(ss.ctx, ct)
	if err := e.srv.CloseSession(ctx, ss.s); err != nil {
		fmt.Printf("engine: close %s: %v\n", ss.id, err)
	}
	ss.closed.Store(true)
	taken := int64(ct.Tracked)
	released := atomic.LoadInt64(&ct.Released)
	e.mu.Lock()
	delete(e.open, ss.id)
	e.mu.Unlock()
	e.truth.write(sessionCloseRec{
		Kind:            "session_close",
		Session:         ss.id,
		Goid:            e.goid(),
		RefsTaken:       taken,
		RefsReleased:    released,
		ResultsReleased: atomic.LoadInt64(&ct.ResultsReleased),
		Leaked:          taken > released,
		TNs:             nanotime(),
	})
}

func (e *env) closeSessions(sessions []*sessState) {
	for _, ss := range sessions {
		e.closeSession(ss)
	}
}

func (e *env) newWorker(ss *sessState, n int) *worker {
	return &worker{
		env:  e,
		sess: ss,
		rng:  rand.New(rand.NewSource(e.seed*1_000_003 + int64(ss.idx)*7919 + int64(n))),
	}
}

func (w *worker) ctx() context.Context {
	return context.WithValue(w.sess.ctx, workerKey{}, w)
}

// record writes the truth of one (*SessionCache).GetOrInitCall invocation.
func (w *worker) record(tr *dagql.CallTrace, goid int64, field, parent string, err error, start, end int64) {
	if tr.Path == "" {
		return // no cache invocation happened
	}
	e := w.env
	outcome := tr.Path
	if err != nil || outcome == "rejected" {
		outcome = "error"
		if tr.Path == "recursive" {
			outcome = "recursive"
		}
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
		Field:   field,
		Outcome: outcome,
		StartNs: start,
		EndNs:   end,
	}
	if tr.Digest != "" {
		rec.Digest = strp(tr.Digest)
	}
	if parent != "" {
		rec.ParentDigest = strp(parent)
	}
	if err != nil {
		rec.Error = strp(err.Error())
	}
	switch tr.Path {
	case "miss", "join":
		rec.Waiters = tr.Waiters
		if g := tr.ExecGoid(); g != 0 {
			rec.ExecGoid = i64p(g)
		}
	case "uncached":
		rec.ExecGoid = i64p(tr.UncachedGoid)
	}
	e.truth.write(rec)
}

// selectOn selects sel on recv through the worker's session cache.
func (w *worker) selectOn(ctx context.Context, recv dagql.AnyObjectResult, sel dagql.Selector, parent string) (dagql.AnyResult, error) {
	tr := &dagql.CallTrace{}
	goid := w.env.goid()
	start := nanotime()
	res, err := recv.Select(dagql.WithCallTrace(ctx, tr), w.sess.s.Dagql(), sel)
	end := nanotime()
	w.record(tr, goid, sel.Field, parent, err, start, end)
	if err == nil && res != nil {
		w.last = res
	}
	return res, err
}

// sel selects field(args) on the root.
func (w *worker) sel(field string, args map[string]string) (dagql.AnyResult, error) {
	return w.selectOn(w.ctx(), w.sess.s.Dagql().Root(), selector(field, args), "")
}

// selTimeout is sel with a deadline.
func (w *worker) selTimeout(field string, args map[string]string, d time.Duration) (dagql.AnyResult, error) {
	ctx, cancel := context.WithTimeout(w.ctx(), d)
	defer cancel()
	return w.selectOn(ctx, w.sess.s.Dagql().Root(), selector(field, args), "")
}

// selOnResult selects on an object result (its ID becomes the receiver).
func (w *worker) selOnResult(recv dagql.AnyResult, field string, args map[string]string) (dagql.AnyResult, error) {
	obj, ok := recv.(dagql.AnyObjectResult)
	if !ok {
		return nil, fmt.Errorf("%T is not an object", recv)
	}
	return w.selectOn(w.ctx(), obj, selector(field, args), "")
}

// arbitrary caches an opaque value by key.
func (w *worker) arbitrary(key string, sleep time.Duration) error {
	tr := &dagql.ArbitraryTrace{}
	goid := w.env.goid()
	_, err := w.sess.s.Cache().GetOrInitArbitrary(dagql.WithArbitraryTrace(w.ctx(), tr), key, func(ctx context.Context) (any, error) {
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return "value of " + key, nil
	})
	outcome := tr.Path
	if err != nil || outcome == "" {
		outcome = "error"
	}
	w.env.mu.Lock()
	w.env.arbs[outcome]++
	w.env.mu.Unlock()
	w.env.truth.write(arbitraryRec{Kind: "arbitrary", Session: w.sess.id, Goid: goid, Key: key, Outcome: outcome, TNs: nanotime()})
	return err
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

// burst makes every (session, worker) call the same selection at the same instant.
func (e *env) burst(sessions []*sessState, perSession int, field string, args map[string]string) {
	start := make(chan struct{})
	var ready sync.WaitGroup
	var wg sync.WaitGroup
	for _, ss := range sessions {
		for i := 0; i < perSession; i++ {
			w := e.newWorker(ss, 100+i)
			ready.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready.Done()
				<-start
				_, _ = w.sel(field, args)
			}()
		}
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

func (e *env) installHooks() {
	dagql.EnableTracing(e.truth.enabled())
	installFilesyncHooks(e)
}

func (e *env) end() endRec {
	e.mu.Lock()
	defer e.mu.Unlock()
	outcomes := map[string]int{}
	for k, v := range e.outcomes {
		outcomes[k] = v
	}
	return endRec{
		Kind:         "end",
		CodeLine:     "L1",
		Variant:      "v0.20.8",
		Scenario:     e.scenario,
		Seed:         e.seed,
		Calls:        e.calls.Load(),
		Outcomes:     outcomes,
		Sessions:     int(e.sessN.Load()),
		CacheEntries: e.srv.DagqlCacheEntries(),
		CacheAddr:    e.srv.DagqlCacheAddr(),
		DurationNs:   nanotime() - e.startNs,
	}
}
