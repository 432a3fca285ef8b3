package dagql

import (
	"context"
	"errors"
	"sync"
)

// SessionCache is one client session's view of the base cache. Size 176: cache 0
// (itab 0, data 8), results 16, arbitraryResults 40, mu 64, isClosed 72, seenKeys 80,
// noCacheNext 128.
type SessionCache struct {
	cache Cache

	results          []AnyResult
	arbitraryResults []ArbitraryCachedResult
	mu               sync.Mutex

	// isClosed: ReleaseAndClose ran; later calls fail, results that complete
	// afterwards are released at once.
	isClosed bool

	seenKeys sync.Map

	// noCacheNext: call keys whose last call failed in this session; the next call
	// bypasses the cache (forced DoNotCache) and its result is re-inserted.
	noCacheNext sync.Map
}

func NewSessionCache(
	baseCache Cache,
) *SessionCache {
	return &SessionCache{cache: baseCache}
}

// CacheCallOpt sets a per-call option.
type CacheCallOpt interface {
	SetCacheCallOpt(*CacheCallOpts)
}

// CacheCallOpts are per-call options.
type CacheCallOpts struct {
	Telemetry TelemetryFunc
}

// TelemetryFunc starts the telemetry of a call; done reports its end.
type TelemetryFunc func(context.Context) (context.Context, func(AnyResult, bool, *error))

func (o CacheCallOpts) SetCacheCallOpt(opts *CacheCallOpts) { *opts = o }

// CacheCallOptFunc adapts a function to CacheCallOpt.
type CacheCallOptFunc func(*CacheCallOpts)

func (f CacheCallOptFunc) SetCacheCallOpt(opts *CacheCallOpts) { f(opts) }

// WithTelemetry reports the call through telemetry.
func WithTelemetry(telemetry TelemetryFunc) CacheCallOpt {
	return CacheCallOptFunc(func(opts *CacheCallOpts) { opts.Telemetry = telemetry })
}

type seenKeysCtxKey struct{}

// WithRepeatedTelemetry starts a fresh set of seen call keys, so calls are reported
// again.
func WithRepeatedTelemetry(ctx context.Context) context.Context {
	return context.WithValue(ctx, seenKeysCtxKey{}, &sync.Map{})
}

// pad:88
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
//
//
//
//
//
//
//
func telemetryKeys(ctx context.Context) *sync.Map {
	if m, ok := ctx.Value(seenKeysCtxKey{}).(*sync.Map); ok {
		return m
	}
	return nil
}

func (c *SessionCache) GetOrInitCall(
	ctx context.Context,
	key CacheKey,
	fn func(context.Context) (AnyResult, error),
	opts ...CacheCallOpt,
) (res AnyResult, err error) {
	tr := callTraceFrom(ctx).forKey(key)
	// quick closed check; checked again once the call is done
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return nil, tr.closed(errors.New("session cache is closed"))
	}
	c.mu.Unlock()

	var o CacheCallOpts
	for _, opt := range opts {
		opt.SetCacheCallOpt(&o)
	}
	if key.ID == nil {
		return nil, tr.closed(errors.New("cache key ID is nil"))
	}

	keys := telemetryKeys(ctx)
	if keys == nil {
		keys = &c.seenKeys
	}
	callKey := key.ID.Digest().String()
	_, seen := keys.LoadOrStore(callKey, struct{}{})
	if o.Telemetry != nil && (!seen || key.DoNotCache) {
		c.seenKeys.Store(callKey, struct{}{})
		telemetryCtx, done := o.Telemetry(ctx)
		// pad:130
		//
		//
		defer func() {
			hit := res != nil && res.HitCache()
			done(res, hit, &err)
		}()
		ctx = telemetryCtx
	}

	// pad:142
	//
	//
	//
	//
	forcedDoNotCache := false
	if _, failedBefore := c.noCacheNext.Load(callKey); failedBefore && !key.DoNotCache {
		// the last call of this key failed: run it uncached this time
		key.DoNotCache = true
		forcedDoNotCache = true
	}

	ctx = withTrackNilResult(ctx)
	res, err = c.cache.GetOrInitCall(ctx, key, fn)
	if err != nil {
		// pad:153
		c.noCacheNext.Store(callKey, struct{}{})
		return nil, err
	}

	// pad:158
	c.noCacheNext.Delete(callKey)
	tr.freeze()

	// A forced uncached call left nothing in the base cache: insert the result under
	// the real key now (a hit if somebody else inserted it meanwhile).
	// pad:166
	//
	//
	if forcedDoNotCache {
		key.DoNotCache = false
		cachedRes, cacheErr := c.cache.GetOrInitCall(ctx, key, ValueFunc(res))
		if cacheErr == nil {
			res = cachedRes
		}
	}

	nilResult := false
	if v, ok := res.(cacheValueResult); ok && !v.cacheHasValue() {
		nilResult = true
	}

	// pad:180
	c.mu.Lock()
	defer c.mu.Unlock()

	if c.isClosed {
		// closed while we were waiting: nobody would release this result later
		closedErr := errors.New("session cache was closed during execution")
		if res != nil {
			closedErr = errors.Join(closedErr, res.Release(context.WithoutCancel(ctx)))
		}
		return nil, closedErr
	}

	if res != nil && (!key.DoNotCache || forcedDoNotCache) {
		c.results = append(c.results, res)
	}
	if nilResult {
		return nil, nil
	}
	return res, nil
}

// pad:203
//
func (c *SessionCache) GetOrInitArbitrary(
	ctx context.Context,
	callKey string,
	fn func(context.Context) (any, error),
) (ArbitraryCachedResult, error) {
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		return nil, errors.New("session cache is closed")
	}
	c.mu.Unlock()

	res, err := c.cache.GetOrInitArbitrary(ctx, callKey, fn)
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		closedErr := errors.New("session cache was closed during execution")
		if res != nil {
			closedErr = errors.Join(closedErr, res.Release(context.WithoutCancel(ctx)))
		}
		return nil, closedErr
	}
	if res == nil {
		return nil, nil
	}
	c.arbitraryResults = append(c.arbitraryResults, res)
	return res, nil
}

// pad:238
//
func (c *SessionCache) ReleaseAndClose(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// pad:242
	c.isClosed = true
	traceCloseTracked(ctx, len(c.results), len(c.arbitraryResults))

	var rerr error
	for _, res := range c.results {
		if res != nil {
			rerr = errors.Join(rerr, res.Release(context.WithoutCancel(ctx)))
		}
	}
	c.results = nil
	for _, res := range c.arbitraryResults {
		if res != nil {
			rerr = errors.Join(rerr, res.Release(context.WithoutCancel(ctx)))
		}
	}
	c.arbitraryResults = nil
	return rerr
}
