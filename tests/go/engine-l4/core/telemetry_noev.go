//go:build l4beta4 || l4unknown

package core

import (
	"github.com/dagger/dagger/dagql"
)

// HasRecordCacheEvidence reports whether this build records cache evidence (beta.8+).
const HasRecordCacheEvidence = false

// AroundCall wraps one cache call like core.AroundFunc before beta.8 (l4beta4) or in
// the impossible l4unknown build: telemetry derives the recipe digest but there is no
// cache-evidence carrier and no recordCacheEvidence.
func AroundCall(req *dagql.CallRequest, telemetry bool, call func() (dagql.AnyResult, error)) (dagql.AnyResult, error) {
	var span *callSpan
	if telemetry {
		span = &callSpan{recording: true}
		_, _ = req.ResultCall.RecipeDigest()
	}
	res, err := call()
	if span != nil {
		span.End()
	}
	return res, err
}

// Evidence: none in this build.
func Evidence(req *dagql.CallRequest) (string, string, bool) {
	return "", "", false
}

// MissFacts: none in this build.
func MissFacts(req *dagql.CallRequest) (bool, bool, int, bool) {
	return false, false, -1, false
}
