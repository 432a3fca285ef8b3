package dagql

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
)

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What string
	Got  uintptr
	Want uintptr
}

func (l LayoutCheck) String() string {
	status := "ok"
	if l.Got != l.Want {
		status = "MISMATCH"
	}
	return fmt.Sprintf("%-58s got %3d want %3d  %s", l.What, l.Got, l.Want, status)
}

type layoutProbe struct{}

func (*layoutProbe) TypeName() string { return "LayoutProbe" }

func fieldOffset(t reflect.Type, name string) uintptr {
	f, ok := t.FieldByName(name)
	if !ok {
		return ^uintptr(0)
	}
	return f.Offset
}

// Layout returns the offsets and sizes the tracer relies on (engine-l3-l4.md §4,
// L3 column). Not meaningful under -tags shifted (ResultCall.recipeDigest moved).
func Layout() []LayoutCheck {
	var (
		c   Cache
		req CallRequest
		rc  ResultCall
		ref ResultCallRef
		oc  ongoingCall
		sr  sharedResult
		res Result[*layoutProbe]
		sar sharedArbitraryResult
		ar  arbitraryResult
		lm  lookupMatch
		cck callConcurrencyKeys
		ed  call.ExtraDigest
		et  egraphTerm
		ra  ResultCallArg
		lit ResultCallLiteral
	)
	return []LayoutCheck{
		{"ResultCallArg size", unsafe.Sizeof(ra), 32},
		{"ResultCallArg.IsSensitive", unsafe.Offsetof(ra.IsSensitive), 16},
		{"ResultCallArg.Value", unsafe.Offsetof(ra.Value), 24},
		{"ResultCallLiteral size", unsafe.Sizeof(lit), 160},
		{"ResultCallLiteral.StringValue", unsafe.Offsetof(lit.StringValue), 40},
		{"Cache size", unsafe.Sizeof(c), 424},
		{"Cache.callsMu", unsafe.Offsetof(c.callsMu), 0},
		{"Cache.sessionMu", unsafe.Offsetof(c.sessionMu), 8},
		{"Cache.egraphMu", unsafe.Offsetof(c.egraphMu), 16},
		{"Cache.persistenceResetReason", unsafe.Offsetof(c.persistenceResetReason), 40},
		{"Cache.ongoingCalls", unsafe.Offsetof(c.ongoingCalls), 56},
		{"Cache.nextEgraphClassID", unsafe.Offsetof(c.nextEgraphClassID), 64},
		{"Cache.eqClassToDigests", unsafe.Offsetof(c.eqClassToDigests), 72},
		{"Cache.egraphDigestToClass", unsafe.Offsetof(c.egraphDigestToClass), 88},
		{"Cache.egraphParents", unsafe.Offsetof(c.egraphParents), 96},
		{"Cache.egraphRanks", unsafe.Offsetof(c.egraphRanks), 120},
		{"Cache.egraphTerms", unsafe.Offsetof(c.egraphTerms), 152},
		{"Cache.egraphTermsByTermDigest", unsafe.Offsetof(c.egraphTermsByTermDigest), 160},
		{"Cache.nextSharedResultID", unsafe.Offsetof(c.nextSharedResultID), 168},
		{"Cache.resultsByID", unsafe.Offsetof(c.resultsByID), 176},
		{"Cache.resultOutputEqClasses", unsafe.Offsetof(c.resultOutputEqClasses), 200},
		{"Cache.termResults", unsafe.Offsetof(c.termResults), 208},
		{"Cache.egraphResultsByDigest", unsafe.Offsetof(c.egraphResultsByDigest), 224},
		{"Cache.persistedEdgesByResult", unsafe.Offsetof(c.persistedEdgesByResult), 232},
		{"Cache.ongoingArbitraryCalls", unsafe.Offsetof(c.ongoingArbitraryCalls), 248},
		{"Cache.completedArbitraryCalls", unsafe.Offsetof(c.completedArbitraryCalls), 256},
		{"Cache.sessionResultIDsBySession", unsafe.Offsetof(c.sessionResultIDsBySession), 264},
		{"Cache.sessionArbitraryCallKeysBySession", unsafe.Offsetof(c.sessionArbitraryCallKeysBySession), 272},
		{"Cache.sessionVolatileVarsBySession", unsafe.Offsetof(c.sessionVolatileVarsBySession), 312},
		{"Cache.sqlDB", unsafe.Offsetof(c.sqlDB), 320},
		{"Cache.traceBootID", unsafe.Offsetof(c.traceBootID), 336},
		{"Cache.snapshotManager", unsafe.Offsetof(c.snapshotManager), 368},
		{"Cache.closeOnce", unsafe.Offsetof(c.closeOnce), 392},
		{"Cache.closeErr", unsafe.Offsetof(c.closeErr), 408},

		{"CallRequest size", unsafe.Sizeof(req), 40},
		{"CallRequest.ResultCall", unsafe.Offsetof(req.ResultCall), 0},
		{"CallRequest.ConcurrencyKey", unsafe.Offsetof(req.ConcurrencyKey), 8},
		{"CallRequest.TTL", unsafe.Offsetof(req.TTL), 24},
		{"CallRequest.DoNotCache", unsafe.Offsetof(req.DoNotCache), 32},
		{"CallRequest.IsPersistable", unsafe.Offsetof(req.IsPersistable), 33},

		{"ResultCall size", unsafe.Sizeof(rc), 288},
		{"ResultCall.Type", unsafe.Offsetof(rc.Type), 16},
		{"ResultCall.Field", unsafe.Offsetof(rc.Field), 24},
		{"ResultCall.Nth", unsafe.Offsetof(rc.Nth), 72},
		{"ResultCall.ExtraDigests", unsafe.Offsetof(rc.ExtraDigests), 104},
		{"ResultCall.Receiver", unsafe.Offsetof(rc.Receiver), 128},
		{"ResultCall.Module", unsafe.Offsetof(rc.Module), 136},
		{"ResultCall.Args", unsafe.Offsetof(rc.Args), 144},
		{"ResultCall.recipeDigestOnce", unsafe.Offsetof(rc.recipeDigestOnce), 192},
		{"ResultCall.recipeDigestErr", unsafe.Offsetof(rc.recipeDigestErr), 208},
		{"ResultCall.recipeDigest", unsafe.Offsetof(rc.recipeDigest), 224},
		{"ResultCall.contentPreferredDigest", unsafe.Offsetof(rc.contentPreferredDigest), 272},
		{"ResultCallRef size", unsafe.Sizeof(ref), 24},
		{"ResultCallRef.Call", unsafe.Offsetof(ref.Call), 8},
		{"call.ExtraDigest size", unsafe.Sizeof(ed), 32},
		{"call.ExtraDigest.Label", unsafe.Offsetof(ed.Label), 16},

		{"callConcurrencyKeys size", unsafe.Sizeof(cck), 32},
		{"ongoingCall size", unsafe.Sizeof(oc), 184},
		{"ongoingCall.callKey", fieldOffset(reflect.TypeOf((*ongoingCall)(nil)).Elem(), "callKey"), 0},
		{"ongoingCall.concurrencyKey", fieldOffset(reflect.TypeOf((*ongoingCall)(nil)).Elem(), "concurrencyKey"), 16},
		{"ongoingCall.isPersistable", unsafe.Offsetof(oc.isPersistable), 32},
		{"ongoingCall.ttlSeconds", unsafe.Offsetof(oc.ttlSeconds), 40},
		{"ongoingCall.initCompletedResultOnce", unsafe.Offsetof(oc.initCompletedResultOnce), 48},
		{"ongoingCall.handoffHoldActive", unsafe.Offsetof(oc.handoffHoldActive), 60},
		{"ongoingCall.initCompletedResultErr", unsafe.Offsetof(oc.initCompletedResultErr), 64},
		{"ongoingCall.waitCh", unsafe.Offsetof(oc.waitCh), 80},
		{"ongoingCall.cancel", unsafe.Offsetof(oc.cancel), 88},
		{"ongoingCall.waiters", unsafe.Offsetof(oc.waiters), 96},
		{"ongoingCall.err", unsafe.Offsetof(oc.err), 104},
		{"ongoingCall.val", unsafe.Offsetof(oc.val), 120},
		{"ongoingCall.sharedWorkCtx", unsafe.Offsetof(oc.sharedWorkCtx), 136},
		{"ongoingCall.releaseSharedWorkLeaseOnce", unsafe.Offsetof(oc.releaseSharedWorkLeaseOnce), 160},
		{"ongoingCall.res", unsafe.Offsetof(oc.res), 176},

		{"sharedResult size", unsafe.Sizeof(sr), 408},
		{"sharedResult.id", unsafe.Offsetof(sr.id), 0},
		{"sharedResult.self", unsafe.Offsetof(sr.self), 8},
		{"sharedResult.objClass", unsafe.Offsetof(sr.objClass), 32},
		{"sharedResult.resultCallMu", unsafe.Offsetof(sr.resultCallMu), 48},
		{"sharedResult.resultCall", unsafe.Offsetof(sr.resultCall), 72},
		{"sharedResult.payloadMu", unsafe.Offsetof(sr.payloadMu), 80},
		{"sharedResult.hasValue", unsafe.Offsetof(sr.hasValue), 104},
		{"sharedResult.deps", unsafe.Offsetof(sr.deps), 120},
		{"sharedResult.sessionResourceHandle", unsafe.Offsetof(sr.sessionResourceHandle), 144},
		{"sharedResult.expiresAtUnix", unsafe.Offsetof(sr.expiresAtUnix), 192},
		{"sharedResult.lastUsedAtUnixNano", unsafe.Offsetof(sr.lastUsedAtUnixNano), 216},
		{"sharedResult.description", unsafe.Offsetof(sr.description), 240},
		{"sharedResult.incomingOwnershipCount", unsafe.Offsetof(sr.incomingOwnershipCount), 272},
		{"sharedResult.attachDepsMu", unsafe.Offsetof(sr.attachDepsMu), 280},
		{"sharedResult.persistDecodeMu", unsafe.Offsetof(sr.persistDecodeMu), 312},
		{"sharedResult.lazyMu", unsafe.Offsetof(sr.lazyMu), 344},
		{"sharedResult.lazyEvalErr", unsafe.Offsetof(sr.lazyEvalErr), 392},

		{"Result[T] size", unsafe.Sizeof(res), 16},
		{"Result[T].shared", unsafe.Offsetof(res.shared), 0},
		{"Result[T].hitCache", unsafe.Offsetof(res.hitCache), 8},
		{"Result[T].derefView", unsafe.Offsetof(res.derefView), 9},
		{"Result[T].nullableWrapped", unsafe.Offsetof(res.nullableWrapped), 10},

		{"sharedArbitraryResult size", unsafe.Sizeof(sar), 88},
		{"sharedArbitraryResult.callKey", unsafe.Offsetof(sar.callKey), 0},
		{"sharedArbitraryResult.value", unsafe.Offsetof(sar.value), 16},
		{"sharedArbitraryResult.err", unsafe.Offsetof(sar.err), 32},
		{"sharedArbitraryResult.onRelease", unsafe.Offsetof(sar.onRelease), 48},
		{"sharedArbitraryResult.waitCh", unsafe.Offsetof(sar.waitCh), 56},
		{"sharedArbitraryResult.cancel", unsafe.Offsetof(sar.cancel), 64},
		{"sharedArbitraryResult.waiters", unsafe.Offsetof(sar.waiters), 72},
		{"sharedArbitraryResult.ownerSessionCount", unsafe.Offsetof(sar.ownerSessionCount), 80},
		{"arbitraryResult size", unsafe.Sizeof(ar), 16},
		{"arbitraryResult.hitCache", unsafe.Offsetof(ar.hitCache), 8},

		{"lookupMatch size", unsafe.Sizeof(lm), 120},
		{"lookupMatch.selfDigest", unsafe.Offsetof(lm.selfDigest), 0},
		{"lookupMatch.inputDigests", unsafe.Offsetof(lm.inputDigests), 16},
		{"lookupMatch.inputEqIDs", unsafe.Offsetof(lm.inputEqIDs), 40},
		{"lookupMatch.primaryLookupPossible", unsafe.Offsetof(lm.primaryLookupPossible), 64},
		{"lookupMatch.missingInputIndex", unsafe.Offsetof(lm.missingInputIndex), 72},
		{"lookupMatch.hitRecipeDigest", unsafe.Offsetof(lm.hitRecipeDigest), 80},
		{"lookupMatch.candidates", unsafe.Offsetof(lm.candidates), 88},
		{"lookupMatch.termDigest", unsafe.Offsetof(lm.termDigest), 96},
		{"lookupMatch.termSetSize", unsafe.Offsetof(lm.termSetSize), 112},

		{"egraphTerm size", unsafe.Sizeof(et), 72},
		{"egraphTerm.selfDigest", unsafe.Offsetof(et.selfDigest), 8},
		{"egraphTerm.inputEqIDs", unsafe.Offsetof(et.inputEqIDs), 24},
		{"egraphTerm.termDigest", unsafe.Offsetof(et.termDigest), 48},
		{"egraphTerm.outputEqID", unsafe.Offsetof(et.outputEqID), 64},

		{"digest length (\"xxh3:\"+16 hex)", uintptr(len(digest.FromString("x"))), 21},
	}
}
