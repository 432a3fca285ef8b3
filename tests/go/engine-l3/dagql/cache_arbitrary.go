package dagql

import (
	"context"
	"fmt"
)

// ArbitraryCachedResult is a value cached by key (not by call).
type ArbitraryCachedResult interface {
	Value() any
	HitCache() bool
}

// sharedArbitraryResult is one in-memory arbitrary value (88 B).
type sharedArbitraryResult struct {
	callKey           string                  // 0
	value             any                     // 16
	err               error                   // 32
	onRelease         OnReleaseFunc           // 48
	waitCh            chan struct{}           // 56
	cancel            context.CancelCauseFunc // 64
	waiters           int                     // 72
	ownerSessionCount int                     // 80
}

// arbitraryResult is what GetOrInitArbitrary returns (16 B: shared 0, hitCache 8).
type arbitraryResult struct {
	shared   *sharedArbitraryResult
	hitCache bool
}

func (r arbitraryResult) Value() any {
	if r.shared == nil {
		return nil
	}
	return r.shared.value
}

func (r arbitraryResult) HitCache() bool { return r.hitCache }

type arbitraryCacheContextKey struct {
	callKey string
}

// pad:57
//
//
//
//
//
//
//
//
//

//go:noinline
func (c *Cache) GetOrInitArbitrary(
	ctx context.Context,
	sessionID string,
	callKey string,
	fn func(context.Context) (any, error),
) (ArbitraryCachedResult, error) {
	if sessionID == "" {
		return nil, fmt.Errorf("get or init arbitrary %q: empty session ID", callKey)
	}
	if callKey == "" {
		return nil, fmt.Errorf("cache call key is empty")
	}
	if ctx.Value(arbitraryCacheContextKey{callKey: callKey}) != nil {
		return nil, ErrCacheRecursiveCall
	}

	c.callsMu.Lock()
	if c.ongoingArbitraryCalls == nil {
		c.ongoingArbitraryCalls = make(map[string]*sharedArbitraryResult)
	}
	if c.completedArbitraryCalls == nil {
		c.completedArbitraryCalls = make(map[string]*sharedArbitraryResult)
	}
	if res := c.completedArbitraryCalls[callKey]; res != nil {
		c.callsMu.Unlock()
		traceArbitrary(ctx, "hit")
		ret := arbitraryResult{shared: res, hitCache: true}
		c.trackSessionArbitrary(sessionID, ret)
		return ret, nil
	}
	if res := c.ongoingArbitraryCalls[callKey]; res != nil {
		res.waiters++
		c.callsMu.Unlock()
		traceArbitrary(ctx, "join")
		return c.waitArbitrary(ctx, sessionID, res, false)
	}

	callCtx := context.WithValue(ctx, arbitraryCacheContextKey{callKey: callKey}, struct{}{})
	callCtx, cancel := context.WithCancelCause(context.WithoutCancel(callCtx))
	res := &sharedArbitraryResult{
		callKey: callKey,
		waitCh:  make(chan struct{}),
		cancel:  cancel,
		waiters: 1,
	}
	c.ongoingArbitraryCalls[callKey] = res
	traceArbitrary(ctx, "new")

	// pad:109
	//
	//
	//
	go func() {
		defer close(res.waitCh)
		val, err := fn(callCtx)
		res.err = err
		if err == nil {
			res.value = val
			if r, ok := val.(OnReleaser); ok {
				res.onRelease = r.OnRelease
			}
		}
	}()

	c.callsMu.Unlock()
	return c.waitArbitrary(ctx, sessionID, res, true)
}

func (c *Cache) waitArbitrary(ctx context.Context, sessionID string, res *sharedArbitraryResult, isFirstCaller bool) (ArbitraryCachedResult, error) {
	var (
		hitCache bool
		err      error
	)
	select {
	case <-res.waitCh:
		hitCache = true
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
	res.waiters--
	if res.waiters == 0 {
		res.cancel(err)
	}
	if err == nil {
		delete(c.ongoingArbitraryCalls, res.callKey)
		if existing := c.completedArbitraryCalls[res.callKey]; existing != nil {
			res = existing
		} else {
			c.completedArbitraryCalls[res.callKey] = res
		}
		c.callsMu.Unlock()
		if isFirstCaller {
			hitCache = false
		}
		ret := arbitraryResult{shared: res, hitCache: hitCache}
		c.trackSessionArbitrary(sessionID, ret)
		return ret, nil
	}
	if res.ownerSessionCount == 0 && res.waiters == 0 {
		if c.ongoingArbitraryCalls[res.callKey] == res {
			delete(c.ongoingArbitraryCalls, res.callKey)
		}
		if c.completedArbitraryCalls[res.callKey] == res {
			delete(c.completedArbitraryCalls, res.callKey)
		}
	}
	c.callsMu.Unlock()
	return nil, err
}
