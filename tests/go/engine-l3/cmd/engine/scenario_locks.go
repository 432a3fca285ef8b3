package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// locks: contention planted on each of the cache's own locks. The workload holds one
// (dagql.(*Cache).HoldLock) while goroutines call engine methods that take it, and
// records each planted waiter with the lock's name and address (lock_wait).
func init() {
	scenarios["locks"] = scenario{name: "locks", minSessions: 1, round: locksRound}
}

type lockWaitRec struct {
	Kind string `json:"kind"` // "lock_wait"
	Lock string `json:"lock"` // callsMu | sessionMu | egraphMu
	Addr uint64 `json:"addr"`
	Goid int64  `json:"goid"`
	Via  string `json:"via"` // the engine method that waits
}

type lockWaiter struct {
	via string
	fn  func()
}

// plantLockWait holds `lock` until every waiter is asleep on it, then releases it.
func (e *env) plantLockWait(lock string, waiters ...lockWaiter) {
	addr, unlock := e.cache.HoldLock(lock)
	var wg sync.WaitGroup
	for _, w := range waiters {
		wg.Add(1)
		go func(w lockWaiter) {
			defer wg.Done()
			e.truth.write(lockWaitRec{Kind: "lock_wait", Lock: lock, Addr: uint64(addr), Goid: e.goid(), Via: w.via})
			w.fn()
		}(w)
	}
	time.Sleep(100 * time.Millisecond)
	unlock()
	wg.Wait()
}

func locksRound(e *env, ctx context.Context, round int, _ time.Time) {
	r := fmt.Sprintf("r%d-locks-", round)
	caller := e.openSession(ctx)
	// Sessions released while a lock is held: each owns results and an arbitrary
	// value, so its ReleaseSession takes sessionMu, egraphMu and callsMu.
	victims := []*sessState{e.openSession(ctx), e.openSession(ctx)}
	for i, ss := range victims {
		w := e.newWorker(ss, 0)
		for k := 0; k < 3; k++ {
			_, _, _ = w.do(ss.ctx, spec{field: "container", key: fmt.Sprintf("%spool-%d", r, i*3+k)}, "")
		}
		_ = w.arbitrary(ss.ctx, fmt.Sprintf("%sarb-%d", r, i), 0)
	}
	var n atomic.Int64
	miss := func() {
		w := e.newWorker(caller, int(n.Add(1)))
		_, _, _ = w.do(caller.ctx, spec{field: "container", key: fmt.Sprintf("%sfresh-%d", r, n.Load())}, "")
	}
	e.plantLockWait("callsMu",
		lockWaiter{"GetOrInitCall", miss},
		lockWaiter{"ReleaseSession", func() { e.closeSession(victims[0]) }})
	e.plantLockWait("sessionMu",
		lockWaiter{"GetOrInitCall", miss},
		lockWaiter{"ReleaseSession", func() { e.closeSession(victims[1]) }})
	e.plantLockWait("egraphMu",
		lockWaiter{"GetOrInitCall", miss},
		lockWaiter{"Size", func() { _ = e.cache.Size() }})
	e.closeSession(caller)
}
