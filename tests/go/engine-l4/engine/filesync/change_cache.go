package filesync

import (
	"context"
	"errors"
	"sync"
)

// changeCache dedupes the concurrent application of the same change (keyed by the
// path relative to the sync root) across concurrent syncs of one local directory, and
// keeps applied changes around while a sync still references them, so that later
// syncs can verify them against what they expect. Size 24.
type changeCache struct {
	mu sync.Mutex // 0

	// ongoingCalls: changes being applied
	ongoingCalls map[string]*cachedChange // 8

	// completedCalls: applied changes still referenced
	completedCalls map[string]*cachedChange // 16
}

type cachedChange struct {
	cache   *changeCache    // 0
	callKey string          // 8 (path relative to the sync root)
	val     *ChangeWithStat // 24
	err     error           // 32

	// waitCh is closed once the change is applied
	waitCh  chan struct{}           // 48
	cancel  context.CancelCauseFunc // 56
	waiters int                     // 64

	// refCount: syncs holding the applied change
	refCount int // 72
}

func (c *changeCache) getOrInit(
	ctx context.Context,
	callKey string,
	fn func(context.Context) (*ChangeWithStat, error),
) (*cachedChange, error) {
	if callKey == "" {
		return nil, errors.New("change cache key is empty")
	}

	c.mu.Lock()
	if c.ongoingCalls == nil {
		c.ongoingCalls = make(map[string]*cachedChange)
	}
	if c.completedCalls == nil {
		c.completedCalls = make(map[string]*cachedChange)
	}

	if res, ok := c.completedCalls[callKey]; ok {
		res.refCount++
		c.unlockAndTrace(ctx, "hit")
		return res, nil
	}

	if res, ok := c.ongoingCalls[callKey]; ok {
		res.waiters++
		c.unlockAndTrace(ctx, "join")
		return c.wait(ctx, res)
	}

	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	res := &cachedChange{
		cache:   c,
		callKey: callKey,
		waitCh:  make(chan struct{}),
		cancel:  cancel,
		waiters: 1,
	}
	c.ongoingCalls[callKey] = res
	c.unlockAndTrace(ctx, "new")

	// pad:79
	go func() {
		defer close(res.waitCh)
		res.val, res.err = fn(callCtx)
	}()

	// pad:89
	//
	//
	//
	//
	return c.wait(ctx, res)
}

func (c *changeCache) wait(ctx context.Context, res *cachedChange) (*cachedChange, error) {
	var err error

	select {
	case <-res.waitCh:
		err = res.err
	default:
		select {
		case <-res.waitCh:
			err = res.err
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()

	res.waiters--
	if err != nil {
		if res.waiters == 0 {
			// nobody waits anymore: forget the attempt and stop the work
			if cur, ok := c.ongoingCalls[res.callKey]; ok && cur == res {
				delete(c.ongoingCalls, res.callKey)
			}
			res.cancel(err)
		}
		return nil, err
	}

	if cur, ok := c.ongoingCalls[res.callKey]; ok && cur == res {
		delete(c.ongoingCalls, res.callKey)
	}
	if existing, ok := c.completedCalls[res.callKey]; ok && existing != res {
		existing.refCount++
		return existing, nil
	}
	c.completedCalls[res.callKey] = res
	res.refCount++
	return res, nil
}

// pad:140
//
//
//
//

func (res *cachedChange) result() *ChangeWithStat {
	if res == nil {
		return nil
	}
	return res.val
}

func (res *cachedChange) release() {
	if res == nil {
		return
	}
	c := res.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	res.refCount--
	if hook := ChangeReleaseHook; hook != nil {
		hook(res.callKey, res.refCount)
	}
	if res.refCount == 0 {
		if cur, ok := c.completedCalls[res.callKey]; ok && cur == res {
			delete(c.completedCalls, res.callKey)
		}
	}
}

// unlockAndTrace unlocks c.mu and records the getOrInit path for the harness.
func (c *changeCache) unlockAndTrace(ctx context.Context, path string) {
	c.mu.Unlock()
	if tr, ok := ctx.Value(changeTraceCtxKey{}).(*ChangeTrace); ok {
		tr.Outcome = path
	}
}

// ChangeTrace records which path getOrInit took (ground truth for the harness;
// not in the real engine).
type ChangeTrace struct {
	Outcome string // "hit", "join", "new"
}

type changeTraceCtxKey struct{}

// WithChangeTrace attaches tr to ctx.
func WithChangeTrace(ctx context.Context, tr *ChangeTrace) context.Context {
	return context.WithValue(ctx, changeTraceCtxKey{}, tr)
}

// ChangeReleaseHook, if set, is called by (*cachedChange).release after the decrement
// (under the cache lock).
var ChangeReleaseHook func(path string, refCountAfter int)
