package dagql

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/dagger/dagger/dagql/call"
)

// Server is a (per-session) dagql server: the root object and the session's cache.
type Server struct {
	root     AnyObjectResult
	Cache    *SessionCache
	maxDepth atomic.Int64
}

// NewServer returns a server selecting from root through cache.
func NewServer(root AnyObjectResult, cache *SessionCache) *Server {
	return &Server{root: root, Cache: cache}
}

func (s *Server) Root() AnyObjectResult { return s.root }

func (s *Server) noteDepth(d int) {
	for {
		cur := s.maxDepth.Load()
		if int64(d) <= cur || s.maxDepth.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// MaxDepth is the deepest nesting of cache calls seen.
func (s *Server) MaxDepth() int { return int(s.maxDepth.Load()) }

// ErrCacheMiss is returned by LoadType when the ID is not cached.
var ErrCacheMiss = errors.New("cache miss")

// pad:673
// LoadType loads a result by ID from the cache only: its fn (LoadType.func2) always
// fails with "cache miss". The key carries only the ID (no ConcurrencyKey), so such
// probes never join; a miss still spawns the executing goroutine.
func (s *Server) LoadType(ctx context.Context, id *call.ID) (AnyResult, error) {
	if id == nil {
		return s.root, nil
	}
	var loaded bool
	defer func() {
		if loaded {
			s.noteDepth(0)
		}
	}()
	res, err := s.Cache.GetOrInitCall(ctx, CacheKey{ID: id}, func(ctx context.Context) (AnyResult, error) {
		return nil, ErrCacheMiss
	}, WithTelemetryPolicy(TelemetryPolicyCacheHitOnly))
	if err != nil {
		return nil, err
	}
	loaded = res != nil
	return res, nil
}
