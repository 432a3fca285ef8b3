package dagql

import (
	"context"
	"errors"
	"fmt"
)

// ArbitraryCachedResult is an opaque cached value.
type ArbitraryCachedResult interface {
	Value() any
	HitCache() bool
	Release(context.Context) error
}

// pad:21
//
//

// sharedArbitraryResult is one cached opaque value. Size 96.
type sharedArbitraryResult struct {
	cache *cache // 0

	callKey string // 8

	value     any           // 24
	err       error         // 40
	onRelease OnReleaseFunc // 56

	waitCh  chan struct{}           // 64
	cancel  context.CancelCauseFunc // 72
	waiters int                     // 80

	refCount int // 88 (guarded by cache.callsMu)
}

func (res *sharedArbitraryResult) release(ctx context.Context) error {
	c := res.cache
	c.callsMu.Lock()
	res.refCount--
	refs := res.refCount
	if refs == 0 {
		if cur, ok := c.completedArbitraryCalls[res.callKey]; ok && cur == res {
			delete(c.completedArbitraryCalls, res.callKey)
		}
	}
	c.callsMu.Unlock()
	if hook := ArbitraryReleaseHook; hook != nil {
		hook(ctx, res.callKey, refs)
	}
	if refs < 0 {
		return fmt.Errorf("arbitrary result %q released more times than acquired", res.callKey)
	}
	if refs == 0 && res.onRelease != nil {
		return res.onRelease(ctx)
	}
	return nil
}

// arbitraryResult is one ref on a sharedArbitraryResult. Size 16: shared 0,
// hitCache 8.
type arbitraryResult struct {
	shared   *sharedArbitraryResult
	hitCache bool
}

func (r arbitraryResult) Value() any { return r.shared.value }

func (r arbitraryResult) HitCache() bool { return r.hitCache }

func (r arbitraryResult) Release(ctx context.Context) error {
	if r.shared == nil {
		return nil
	}
	return r.shared.release(ctx)
}

// pad:91
//
//
//
//
//
//
//
//
//
//
//

func (c *cache) GetOrInitArbitrary(
	ctx context.Context,
	callKey string,
	fn func(context.Context) (any, error),
) (ArbitraryCachedResult, error) {
	if callKey == "" {
		return nil, errors.New("arbitrary cache key is empty")
	}
	tr := arbitraryTraceFrom(ctx)

	c.callsMu.Lock()
	if c.completedArbitraryCalls == nil {
		c.completedArbitraryCalls = map[string]*sharedArbitraryResult{}
	}
	if c.ongoingArbitraryCalls == nil {
		c.ongoingArbitraryCalls = map[string]*sharedArbitraryResult{}
	}

	if res, ok := c.completedArbitraryCalls[callKey]; ok {
		res.refCount++
		c.callsMu.Unlock()
		tr.setPath("hit")
		return arbitraryResult{shared: res, hitCache: true}, nil
	}

	if res, ok := c.ongoingArbitraryCalls[callKey]; ok {
		res.waiters++
		c.callsMu.Unlock()
		tr.setPath("join")
		return c.waitArbitrary(ctx, res, false)
	}

	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	res := &sharedArbitraryResult{
		cache:   c,
		callKey: callKey,
		waitCh:  make(chan struct{}),
		cancel:  cancel,
		waiters: 1,
	}
	c.ongoingArbitraryCalls[callKey] = res
	c.callsMu.Unlock()
	tr.setPath("new")

	// pad:140
	//
	//
	//
	//
	go func() {
		defer close(res.waitCh)
		res.value, res.err = fn(callCtx)
		if r, ok := res.value.(OnReleaser); ok {
			res.onRelease = r.OnRelease
		}
	}()

	return c.waitArbitrary(ctx, res, true)
}

// pad:156
//
//
//

func (c *cache) waitArbitrary(
	ctx context.Context,
	res *sharedArbitraryResult,
	isFirstCaller bool,
) (ArbitraryCachedResult, error) {
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

	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	res.waiters--
	if err != nil {
		if res.waiters == 0 {
			if cur, ok := c.ongoingArbitraryCalls[res.callKey]; ok && cur == res {
				delete(c.ongoingArbitraryCalls, res.callKey)
			}
			res.cancel(err)
		}
		return nil, err
	}

	if cur, ok := c.ongoingArbitraryCalls[res.callKey]; ok && cur == res {
		delete(c.ongoingArbitraryCalls, res.callKey)
	}
	if existing, ok := c.completedArbitraryCalls[res.callKey]; ok && existing != res {
		// another execution completed first: share it
		existing.refCount++
		return arbitraryResult{shared: existing, hitCache: true}, nil
	}
	c.completedArbitraryCalls[res.callKey] = res
	res.refCount++
	return arbitraryResult{shared: res, hitCache: !isFirstCaller}, nil
}
