package dagql

import "unsafe"

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns the offsets and sizes the tracer relies on (L4; ongoingCall and
// CallRequest per build variant).
func Layout() []LayoutCheck {
	var (
		rc  ResultCall
		sr  sharedResult
		res Result[Typed]
		ev  CacheDecision
		lm  lookupMatch
		sa  sharedArbitraryResult
		ar  arbitraryResult
		ck  callConcurrencyKeys
		et  egraphTerm
		ces CacheEntryStats
		ref ResultCallRef
		ed  ResultCallExtraDigest
		ra  ResultCallArg
		lit ResultCallLiteral
		sc  SpanContext
	)
	checks := []LayoutCheck{

		{"ResultCall size", unsafe.Sizeof(rc), 288},
		{"ResultCall.Type", unsafe.Offsetof(rc.Type), 16},
		{"ResultCall.Field", unsafe.Offsetof(rc.Field), 24},
		{"ResultCall.Nth", unsafe.Offsetof(rc.Nth), 72},
		{"ResultCall.ExtraDigests", unsafe.Offsetof(rc.ExtraDigests), 104},
		{"ResultCall.Receiver", unsafe.Offsetof(rc.Receiver), 128},
		{"ResultCall.Module", unsafe.Offsetof(rc.Module), 136},
		{"ResultCall.Args", unsafe.Offsetof(rc.Args), 144},
		{"ResultCall.ProfileSkip", unsafe.Offsetof(rc.ProfileSkip), 192},
		{"ResultCall.recipeDigestOnce", unsafe.Offsetof(rc.recipeDigestOnce), 196},
		{"ResultCall.recipeDigestErr", unsafe.Offsetof(rc.recipeDigestErr), 208},
		{"ResultCall.recipeDigest", unsafe.Offsetof(rc.recipeDigest), 224},
		{"ResultCall.contentPreferredDigest", unsafe.Offsetof(rc.contentPreferredDigest), 272},
		{"ResultCallExtraDigest size", unsafe.Sizeof(ed), 32},
		{"ResultCall.View", unsafe.Offsetof(rc.View), 56},
		{"ResultCallArg size", unsafe.Sizeof(ra), 32},
		{"ResultCallArg.IsSensitive", unsafe.Offsetof(ra.IsSensitive), 16},
		{"ResultCallArg.Value", unsafe.Offsetof(ra.Value), 24},
		{"ResultCallLiteral size", unsafe.Sizeof(lit), 160},
		{"ResultCallLiteral.StringValue", unsafe.Offsetof(lit.StringValue), 40},
		{"ResultCallRef size", unsafe.Sizeof(ref), 24},
		{"ResultCallRef.Call", unsafe.Offsetof(ref.Call), 8},

		{"sharedResult size", unsafe.Sizeof(sr), 472},
		{"sharedResult.id", unsafe.Offsetof(sr.id), 0},
		{"sharedResult.self", unsafe.Offsetof(sr.self), 8},
		{"sharedResult.isObject", unsafe.Offsetof(sr.isObject), 24},
		{"sharedResult.objClass", unsafe.Offsetof(sr.objClass), 32},
		{"sharedResult.resultCallMu", unsafe.Offsetof(sr.resultCallMu), 48},
		{"sharedResult.resultCall", unsafe.Offsetof(sr.resultCall), 72},
		{"sharedResult.payloadMu", unsafe.Offsetof(sr.payloadMu), 80},
		{"sharedResult.hasValue", unsafe.Offsetof(sr.hasValue), 104},
		{"sharedResult.sessionResourceHandle", unsafe.Offsetof(sr.sessionResourceHandle), 136},
		{"sharedResult.snapshotOwnerLinks", unsafe.Offsetof(sr.snapshotOwnerLinks), 160},
		{"sharedResult.expiresAtUnix", unsafe.Offsetof(sr.expiresAtUnix), 184},
		{"sharedResult.lastUsedAtUnixNano", unsafe.Offsetof(sr.lastUsedAtUnixNano), 208},
		{"sharedResult.description", unsafe.Offsetof(sr.description), 232},
		{"sharedResult.incomingOwnershipCount", unsafe.Offsetof(sr.incomingOwnershipCount), 264},
		{"sharedResult.attachDepsMu", unsafe.Offsetof(sr.attachDepsMu), 272},
		{"sharedResult.persistDecodeMu", unsafe.Offsetof(sr.persistDecodeMu), 304},
		{"sharedResult.lazyMu", unsafe.Offsetof(sr.lazyMu), 336},
		{"sharedResult.lazyEvalErr", unsafe.Offsetof(sr.lazyEvalErr), 384},
		{"sharedResult.lazyEvalProfOpID", unsafe.Offsetof(sr.lazyEvalProfOpID), 400},
		{"sharedResult.lazyEvalSpanCtx", unsafe.Offsetof(sr.lazyEvalSpanCtx), 408},

		{"Result[T].shared", unsafe.Offsetof(res.shared), 0},
		{"Result[T].hitCache", unsafe.Offsetof(res.hitCache), 8},
		{"Result[T].derefView", unsafe.Offsetof(res.derefView), 9},
		{"Result[T].nullableWrapped", unsafe.Offsetof(res.nullableWrapped), 10},

		{"CacheDecision size", unsafe.Sizeof(ev), 104},
		{"CacheDecision.Outcome", unsafe.Offsetof(ev.Outcome), 0},
		{"CacheDecision.HitRoute", unsafe.Offsetof(ev.HitRoute), 16},
		{"CacheDecision.MissIncompatibleCandidates", unsafe.Offsetof(ev.MissIncompatibleCandidates), 32},
		{"CacheDecision.MissSawExpired", unsafe.Offsetof(ev.MissSawExpired), 33},
		{"CacheDecision.MissUnknownInputIndex", unsafe.Offsetof(ev.MissUnknownInputIndex), 40},
		{"CacheDecision.SelfDigest", unsafe.Offsetof(ev.SelfDigest), 48},
		{"CacheDecision.StructuralInputs", unsafe.Offsetof(ev.StructuralInputs), 64},
		{"CacheDecision.PairingDigest", unsafe.Offsetof(ev.PairingDigest), 88},

		{"lookupMatch size", unsafe.Sizeof(lm), 144},
		{"lookupMatch.selfDigest", unsafe.Offsetof(lm.selfDigest), 0},
		{"lookupMatch.inputDigests", unsafe.Offsetof(lm.inputDigests), 16},
		{"lookupMatch.inputEqIDs", unsafe.Offsetof(lm.inputEqIDs), 40},
		{"lookupMatch.primaryLookupPossible", unsafe.Offsetof(lm.primaryLookupPossible), 64},
		{"lookupMatch.missingInputIndex", unsafe.Offsetof(lm.missingInputIndex), 72},
		{"lookupMatch.hitRecipeDigest", unsafe.Offsetof(lm.hitRecipeDigest), 80},
		{"lookupMatch.candidates", unsafe.Offsetof(lm.candidates), 88},
		{"lookupMatch.termDigest", unsafe.Offsetof(lm.termDigest), 96},
		{"lookupMatch.termSetSize", unsafe.Offsetof(lm.termSetSize), 112},
		{"lookupMatch.route", unsafe.Offsetof(lm.route), 120},
		{"lookupMatch.sawExpired", unsafe.Offsetof(lm.sawExpired), 136},

		{"sharedArbitraryResult size", unsafe.Sizeof(sa), 88},
		{"sharedArbitraryResult.callKey", unsafe.Offsetof(sa.callKey), 0},
		{"sharedArbitraryResult.value", unsafe.Offsetof(sa.value), 16},
		{"sharedArbitraryResult.err", unsafe.Offsetof(sa.err), 32},
		{"sharedArbitraryResult.onRelease", unsafe.Offsetof(sa.onRelease), 48},
		{"sharedArbitraryResult.waitCh", unsafe.Offsetof(sa.waitCh), 56},
		{"sharedArbitraryResult.cancel", unsafe.Offsetof(sa.cancel), 64},
		{"sharedArbitraryResult.waiters", unsafe.Offsetof(sa.waiters), 72},
		{"sharedArbitraryResult.ownerSessionCount", unsafe.Offsetof(sa.ownerSessionCount), 80},
		{"arbitraryResult size", unsafe.Sizeof(ar), 16},
		{"arbitraryResult.hitCache", unsafe.Offsetof(ar.hitCache), 8},

		{"callConcurrencyKeys size", unsafe.Sizeof(ck), 32},
		{"callConcurrencyKeys.concurrencyKey", unsafe.Offsetof(ck.concurrencyKey), 16},
		{"egraphTerm size", unsafe.Sizeof(et), 72},
		{"egraphTerm.termDigest", unsafe.Offsetof(et.termDigest), 48},
		{"egraphTerm.outputEqID", unsafe.Offsetof(et.outputEqID), 64},
		{"CacheEntryStats size", unsafe.Sizeof(ces), 48},
		{"SpanContext size", unsafe.Sizeof(sc), 64},
	}
	checks = append(checks, cacheLayout()...)
	checks = append(checks, callRequestLayout()...)
	checks = append(checks, ongoingCallLayout()...)
	return checks
}
