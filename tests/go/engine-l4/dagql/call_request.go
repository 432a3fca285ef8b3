//go:build !l4beta4

package dagql

import "unsafe"

// CallRequest (beta.8+ and HEAD, 64 B): ResultCall 0, ConcurrencyKey 8/16, TTL 24,
// DoNotCache 32, IsPersistable 33, PassthroughTelemetry 34, ReceiverTypeName 40/48,
// CacheEvidence 56.
type CallRequest struct {
	*ResultCall

	ConcurrencyKey string
	TTL            int64
	DoNotCache     bool
	IsPersistable  bool

	PassthroughTelemetry bool

	ReceiverTypeName string

	// CacheEvidence is the per-invocation cache-decision carrier; nil unless the
	// caller (core) armed it.
	CacheEvidence *CacheDecision
}

// reqEvidence returns the armed evidence carrier (inlined).
func reqEvidence(req *CallRequest) *CacheDecision {
	return req.CacheEvidence
}

// HasCacheEvidence reports whether this build's CallRequest carries CacheEvidence.
const HasCacheEvidence = true

// ArmCacheEvidence arms req's carrier (what core.initCacheEvidence does).
func ArmCacheEvidence(req *CallRequest) *CacheDecision {
	req.CacheEvidence = NewCacheDecision()
	return req.CacheEvidence
}

func callRequestLayout() []LayoutCheck {
	var r CallRequest
	return []LayoutCheck{
		{"CallRequest size (beta.8+)", unsafe.Sizeof(r), 64},
		{"CallRequest.ResultCall", unsafe.Offsetof(r.ResultCall), 0},
		{"CallRequest.ConcurrencyKey", unsafe.Offsetof(r.ConcurrencyKey), 8},
		{"CallRequest.TTL", unsafe.Offsetof(r.TTL), 24},
		{"CallRequest.DoNotCache", unsafe.Offsetof(r.DoNotCache), 32},
		{"CallRequest.IsPersistable", unsafe.Offsetof(r.IsPersistable), 33},
		{"CallRequest.PassthroughTelemetry", unsafe.Offsetof(r.PassthroughTelemetry), 34},
		{"CallRequest.ReceiverTypeName", unsafe.Offsetof(r.ReceiverTypeName), 40},
		{"CallRequest.CacheEvidence", unsafe.Offsetof(r.CacheEvidence), 56},
	}
}
