package dagql

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// SessionCache is one client session's view of the base cache: it tracks every
// result the session obtained and releases them all when the session closes.
type SessionCache struct {
	cache Cache // 0

	results          []AnyResult             // 16
	arbitraryResults []ArbitraryCachedResult // 40

	mu       sync.Mutex // 64
	isClosed bool       // 72

	// seenKeys: call keys already reported to telemetry in this session.
	seenKeys sync.Map // 80
}

// NewSessionCache returns a session cache over baseCache.
func NewSessionCache(baseCache Cache) *SessionCache {
	return &SessionCache{cache: baseCache}
}

// TelemetryPolicy says which calls are reported to telemetry.
type TelemetryPolicy int

const (
	TelemetryPolicyAlways TelemetryPolicy = iota
	TelemetryPolicyCacheHitOnly
	TelemetryPolicyNever
)

// CacheCallOpts are per-call options.
type CacheCallOpts struct {
	Telemetry TelemetryPolicy
}

// CacheCallOpt sets a per-call option.
type CacheCallOpt interface {
	SetCacheCallOpt(*CacheCallOpts)
}

type telemetryPolicyOpt TelemetryPolicy

func (o telemetryPolicyOpt) SetCacheCallOpt(opts *CacheCallOpts) {
	opts.Telemetry = TelemetryPolicy(o)
}

// WithTelemetryPolicy sets the call's telemetry policy.
func WithTelemetryPolicy(p TelemetryPolicy) CacheCallOpt {
	return telemetryPolicyOpt(p)
}

// Telemetry counters (the real engine emits OpenTelemetry spans).
var (
	telemetryCalls  atomic.Int64
	telemetryHits   atomic.Int64
	telemetryErrors atomic.Int64
)

// TelemetryCounts returns (reported calls, reported hits, reported errors).
func TelemetryCounts() (int64, int64, int64) {
	return telemetryCalls.Load(), telemetryHits.Load(), telemetryErrors.Load()
}

// pad:96
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
//
//
//
//

func telemetryKeys(key CacheKey) (string, string) {
	if key.ID == nil {
		return "", key.ConcurrencyKey
	}
	return string(key.ID.Digest()), key.ConcurrencyKey
}

func (c *SessionCache) GetOrInitCall(
	ctx context.Context,
	key CacheKey,
	fn func(context.Context) (AnyResult, error),
	opts ...CacheCallOpt,
) (res AnyResult, rerr error) {
	tr := callTraceFrom(ctx)
	if tr != nil && key.ID != nil {
		tr.Digest = string(key.ID.Digest())
	}
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		tr.setPath("closed")
		return nil, errors.New("session cache is closed")
	}
	c.mu.Unlock()

	var o CacheCallOpts
	for _, opt := range opts {
		opt.SetCacheCallOpt(&o)
	}

	callKey, _ := telemetryKeys(key)
	firstInSession := false
	if callKey != "" {
		_, seen := c.seenKeys.LoadOrStore(callKey, struct{}{})
		firstInSession = !seen
	}

	// pad:158
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
	//
	//
	//
	//
	//
	//
	defer func() {
		reportTelemetry(o, firstInSession, res, rerr)
	}()

	res, err := c.cache.GetOrInitCall(ctx, key, fn)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, nil
	}
	if tr != nil {
		tr.ReturnedIDDiffers = res.ID() != key.ID
	}

	c.mu.Lock()
	if c.isClosed {
		// closed while the call ran: nobody will release this result later
		c.mu.Unlock()
		if tr != nil && !key.DoNotCache {
			tr.RefTaken, tr.RefReleasedAtOnce = true, true
		}
		if relErr := res.Release(context.WithoutCancel(ctx)); relErr != nil {
			return nil, errors.Join(errors.New("session cache was closed during call"), relErr)
		}
		return nil, errors.New("session cache was closed during call")
	}
	if !key.DoNotCache {
		c.results = append(c.results, res)
		if tr != nil {
			tr.RefTaken = true
		}
	}
	c.mu.Unlock()

	if sr := res.cacheSharedResult(); sr != nil && !sr.hasValue {
		return nil, nil
	}
	return res, nil
}

// pad:204
//
//
//

func (c *SessionCache) GetOrInitArbitrary(
	ctx context.Context,
	callKey string,
	fn func(context.Context) (any, error),
) (ArbitraryCachedResult, error) {
	tr := arbitraryTraceFrom(ctx)
	c.mu.Lock()
	if c.isClosed {
		c.mu.Unlock()
		tr.setPath("closed")
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
		if relErr := res.Release(context.WithoutCancel(ctx)); relErr != nil {
			return nil, errors.Join(errors.New("session cache was closed during call"), relErr)
		}
		return nil, errors.New("session cache was closed during call")
	}
	c.arbitraryResults = append(c.arbitraryResults, res)
	return res, nil
}

// pad:239
//
//

func (c *SessionCache) ReleaseAndClose(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.isClosed = true

	tr := closeTraceFrom(ctx)
	var rerr error
	for _, res := range c.results {
		if err := res.Release(ctx); err != nil {
			rerr = errors.Join(rerr, err)
		}
		if tr != nil {
			tr.Released++
		}
	}
	c.results = nil
	for _, res := range c.arbitraryResults {
		if err := res.Release(ctx); err != nil {
			rerr = errors.Join(rerr, err)
		}
		if tr != nil {
			tr.ArbitraryReleased++
		}
	}
	c.arbitraryResults = nil
	return rerr
}

// IsClosed reports whether ReleaseAndClose ran.
func (c *SessionCache) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.isClosed
}

// Base returns the base cache.
func (c *SessionCache) Base() Cache { return c.cache }

func reportTelemetry(o CacheCallOpts, firstInSession bool, res AnyResult, rerr error) {
	hit := res != nil && res.HitCache()
	switch o.Telemetry {
	case TelemetryPolicyNever:
		return
	case TelemetryPolicyCacheHitOnly:
		if !hit {
			return
		}
	}
	if !firstInSession && !hit {
		return
	}
	telemetryCalls.Add(1)
	if hit {
		telemetryHits.Add(1)
	}
	if rerr != nil {
		telemetryErrors.Add(1)
	}
}
