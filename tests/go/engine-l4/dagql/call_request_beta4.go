//go:build l4beta4

package dagql

import "unsafe"

// CallRequest as of v1.0.0-beta.7 (56 B): ResultCall 0, ConcurrencyKey 8/16, TTL 24,
// DoNotCache 32, IsPersistable 33, PassthroughTelemetry 34, ReceiverTypeName 40/48.
// No CacheEvidence (beta.8 added it).
type CallRequest struct {
	*ResultCall

	ConcurrencyKey string
	TTL            int64
	DoNotCache     bool
	IsPersistable  bool

	PassthroughTelemetry bool

	ReceiverTypeName string
}

// reqEvidence: no carrier before beta.8.
func reqEvidence(req *CallRequest) *CacheDecision {
	return nil
}

// HasCacheEvidence reports whether this build's CallRequest carries CacheEvidence.
const HasCacheEvidence = false

// ArmCacheEvidence is a no-op before beta.8.
func ArmCacheEvidence(req *CallRequest) *CacheDecision {
	return nil
}

func callRequestLayout() []LayoutCheck {
	var r CallRequest
	return []LayoutCheck{
		{"CallRequest size (beta.7)", unsafe.Sizeof(r), 56},
		{"CallRequest.ResultCall", unsafe.Offsetof(r.ResultCall), 0},
		{"CallRequest.ConcurrencyKey", unsafe.Offsetof(r.ConcurrencyKey), 8},
		{"CallRequest.TTL", unsafe.Offsetof(r.TTL), 24},
		{"CallRequest.DoNotCache", unsafe.Offsetof(r.DoNotCache), 32},
		{"CallRequest.IsPersistable", unsafe.Offsetof(r.IsPersistable), 33},
		{"CallRequest.PassthroughTelemetry", unsafe.Offsetof(r.PassthroughTelemetry), 34},
		{"CallRequest.ReceiverTypeName", unsafe.Offsetof(r.ReceiverTypeName), 40},
	}
}
