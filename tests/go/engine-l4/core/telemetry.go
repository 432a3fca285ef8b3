//go:build !l4beta4 && !l4unknown

package core

import (
	"github.com/dagger/dagger/dagql"
)

// HasRecordCacheEvidence reports whether this build records cache evidence (beta.8+).
const HasRecordCacheEvidence = true

// AroundCall wraps one cache call like core.AroundFunc. With telemetry (the call's
// span records) it derives the recipe digest first (the "end call" log's digest) and
// arms the request's CacheDecision (initCacheEvidence); after the call it stamps the
// evidence onto the span (recordCacheEvidence, on the caller goroutine).
func AroundCall(req *dagql.CallRequest, telemetry bool, call func() (dagql.AnyResult, error)) (dagql.AnyResult, error) {
	var span *callSpan
	if telemetry {
		span = &callSpan{recording: true}
		_, _ = req.ResultCall.RecipeDigest()
		initCacheEvidence(span, req)
	}
	res, err := call()
	if span != nil {
		recordCacheEvidence(span, req.CacheEvidence, res)
		span.End()
	}
	return res, err
}

func initCacheEvidence(span dagql.Span, req *dagql.CallRequest) {
	if span == nil || !span.IsRecording() {
		return
	}
	if req == nil || req.ResultCall == nil || req.ResultCall.ProfileSkip {
		return
	}
	req.CacheEvidence = dagql.NewCacheDecision()
}

// recordCacheEvidence maps a populated carrier onto the call's span.
//
//go:noinline
func recordCacheEvidence(span dagql.Span, ev *dagql.CacheDecision, res dagql.AnyResult) {
	if ev == nil || ev.Outcome == "" {
		return
	}
	s, ok := span.(*callSpan)
	if !ok {
		return
	}
	s.SetAttributes("dagger.io/cache.contract", "v1", "dagger.io/cache.outcome", string(ev.Outcome))
	if ev.Outcome == dagql.CacheOutcomeHit && ev.HitRoute != "" {
		s.SetAttributes("dagger.io/cache.hit_route", string(ev.HitRoute))
	}
	if ev.Outcome == dagql.CacheOutcomeExecuted {
		if ev.MissIncompatibleCandidates {
			s.SetAttributes("dagger.io/cache.miss.incompatible_candidates", "true")
		}
		if ev.MissSawExpired {
			s.SetAttributes("dagger.io/cache.miss.saw_expired", "true")
		}
	}
	_ = res
}

// Evidence returns the request's armed carrier values (outcome, route), "" if none.
func Evidence(req *dagql.CallRequest) (string, string, bool) {
	if req.CacheEvidence == nil {
		return "", "", false
	}
	return string(req.CacheEvidence.Outcome), string(req.CacheEvidence.HitRoute), true
}

// MissFacts returns the armed carrier's miss facts: incompatible candidates, saw expired,
// the first unknown structural input (-1: none).
func MissFacts(req *dagql.CallRequest) (bool, bool, int, bool) {
	ev := req.CacheEvidence
	if ev == nil {
		return false, false, -1, false
	}
	return ev.MissIncompatibleCandidates, ev.MissSawExpired, ev.MissUnknownInputIndex, true
}
