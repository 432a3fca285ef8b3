package dagql

// pad:8
//
//

// CallRequest is what callers hand to (*Cache).GetOrInitCall (40 B, ResultCall 0).
type CallRequest struct {
	*ResultCall

	ConcurrencyKey string // 8/16
	TTL            int64  // 24
	DoNotCache     bool   // 32
	IsPersistable  bool   // 33
}

// Clone returns a shallow copy.
func (req *CallRequest) Clone() *CallRequest {
	cp := *req
	return &cp
}
