package dagql

import (
	"context"
	"sync/atomic"

	"github.com/dagger/dagger/dagql/call"
)

// Server is a (per-session) dagql server: the root object and the session's cache.
type Server struct {
	root      AnyObjectResult
	Cache     *SessionCache
	telemetry func(context.Context, *call.ID) (context.Context, func(AnyResult, bool, *error))

	telemetryCalls atomic.Int64
	telemetryHits  atomic.Int64
}

// NewServer returns a server selecting from root through cache; every field call
// is reported to (counting) telemetry.
//
//go:noinline
func NewServer(root AnyObjectResult, cache *SessionCache) *Server {
	s := &Server{root: root, Cache: cache}
	s.telemetry = func(ctx context.Context, id *call.ID) (context.Context, func(AnyResult, bool, *error)) {
		return ctx, func(res AnyResult, cached bool, rerr *error) {
			s.telemetryCalls.Add(1)
			if cached {
				s.telemetryHits.Add(1)
			}
		}
	}
	return s
}

func (s *Server) Root() AnyObjectResult { return s.root }

// TelemetryCounts returns (reported calls, reported hits).
func (s *Server) TelemetryCounts() (int64, int64) {
	return s.telemetryCalls.Load(), s.telemetryHits.Load()
}
