package dagql

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/call/callpbv1"
	"github.com/dagger/dagger/dagql/db"
)

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What string
	Got  uintptr
	Want uintptr
}

func (l LayoutCheck) OK() bool { return l.Got == l.Want }

func (l LayoutCheck) String() string {
	status := "ok"
	if !l.OK() {
		status = "MISMATCH"
	}
	return fmt.Sprintf("%-58s got %3d want %3d  %s", l.What, l.Got, l.Want, status)
}

// layoutProbe is a pointer-shaped T (like *core.Container).
type layoutProbe struct{}

func (*layoutProbe) TypeName() string { return "LayoutProbe" }

// Layout returns the offsets and sizes the tracer relies on (engine-internals §3).
func Layout() []LayoutCheck {
	var (
		id   call.ID
		pb   callpbv1.Call
		ed   callpbv1.ExtraDigest
		ty   callpbv1.Type
		key  CacheKey
		c    cache
		cck  callConcurrencyKeys
		oc   ongoingCall
		sr   sharedResult
		res  Result[Typed]
		ores ObjectResult[*layoutProbe]
		sar  sharedArbitraryResult
		ar   arbitraryResult
		sc   SessionCache
		term egraphTerm
		sel  Selector
		pre  preselectResult
		dbc  db.Call
		sep  db.SetExpirationParams
	)
	idType := reflect.TypeOf(id)
	idField := func(name string) uintptr {
		f, ok := idType.FieldByName(name)
		if !ok {
			return ^uintptr(0)
		}
		return f.Offset
	}
	return []LayoutCheck{
		{"call.ID size", unsafe.Sizeof(id), 80},
		{"call.ID.pb", idField("pb"), 0},
		{"call.ID.receiver", idField("receiver"), 8},
		{"call.ID.args", idField("args"), 16},
		{"call.ID.implicitInputs", idField("implicitInputs"), 40},
		{"call.ID.module", idField("module"), 64},
		{"call.ID.typ", idField("typ"), 72},

		{"callpbv1.Call size", unsafe.Sizeof(pb), 224},
		{"callpbv1.Call.ReceiverDigest", unsafe.Offsetof(pb.ReceiverDigest), 40},
		{"callpbv1.Call.Type", unsafe.Offsetof(pb.Type), 56},
		{"callpbv1.Call.Field", unsafe.Offsetof(pb.Field), 64},
		{"callpbv1.Call.Args", unsafe.Offsetof(pb.Args), 80},
		{"callpbv1.Call.Nth", unsafe.Offsetof(pb.Nth), 104},
		{"callpbv1.Call.Module", unsafe.Offsetof(pb.Module), 112},
		{"callpbv1.Call.Digest", unsafe.Offsetof(pb.Digest), 120},
		{"callpbv1.Call.View", unsafe.Offsetof(pb.View), 136},
		{"callpbv1.Call.EffectIds", unsafe.Offsetof(pb.EffectIds), 152},
		{"callpbv1.Call.ExtraDigests", unsafe.Offsetof(pb.ExtraDigests), 176},
		{"callpbv1.Call.ImplicitInputs", unsafe.Offsetof(pb.ImplicitInputs), 200},
		{"callpbv1.ExtraDigest.Digest", unsafe.Offsetof(ed.Digest), 40},
		{"callpbv1.ExtraDigest.Label", unsafe.Offsetof(ed.Label), 56},
		{"callpbv1.Type.NamedType", unsafe.Offsetof(ty.NamedType), 40},
		{"callpbv1.Type.Elem", unsafe.Offsetof(ty.Elem), 56},
		{"callpbv1.Type.NonNull", unsafe.Offsetof(ty.NonNull), 64},

		{"CacheKey size", unsafe.Sizeof(key), 40},
		{"CacheKey.ID", unsafe.Offsetof(key.ID), 0},
		{"CacheKey.ConcurrencyKey", unsafe.Offsetof(key.ConcurrencyKey), 8},
		{"CacheKey.TTL", unsafe.Offsetof(key.TTL), 24},
		{"CacheKey.DoNotCache", unsafe.Offsetof(key.DoNotCache), 32},

		{"cache size", unsafe.Sizeof(c), 176},
		{"cache.callsMu", unsafe.Offsetof(c.callsMu), 0},
		{"cache.egraphMu", unsafe.Offsetof(c.egraphMu), 8},
		{"cache.ongoingCalls", unsafe.Offsetof(c.ongoingCalls), 32},
		{"cache.egraphDigestToClass", unsafe.Offsetof(c.egraphDigestToClass), 40},
		{"cache.egraphParents", unsafe.Offsetof(c.egraphParents), 48},
		{"cache.egraphRanks", unsafe.Offsetof(c.egraphRanks), 72},
		{"cache.egraphClassTerms", unsafe.Offsetof(c.egraphClassTerms), 96},
		{"cache.egraphTerms", unsafe.Offsetof(c.egraphTerms), 104},
		{"cache.egraphTermsByDigest", unsafe.Offsetof(c.egraphTermsByDigest), 112},
		{"cache.egraphTermsByOutputDigest", unsafe.Offsetof(c.egraphTermsByOutputDigest), 120},
		{"cache.egraphResultTerms", unsafe.Offsetof(c.egraphResultTerms), 128},
		{"cache.nextEgraphClassID", unsafe.Offsetof(c.nextEgraphClassID), 136},
		{"cache.nextEgraphTermID", unsafe.Offsetof(c.nextEgraphTermID), 144},
		{"cache.ongoingArbitraryCalls", unsafe.Offsetof(c.ongoingArbitraryCalls), 152},
		{"cache.completedArbitraryCalls", unsafe.Offsetof(c.completedArbitraryCalls), 160},
		{"cache.db", unsafe.Offsetof(c.db), 168},

		{"callConcurrencyKeys size", unsafe.Sizeof(cck), 32},
		{"callConcurrencyKeys.callKey", unsafe.Offsetof(cck.callKey), 0},
		{"callConcurrencyKeys.concurrencyKey", unsafe.Offsetof(cck.concurrencyKey), 16},

		{"ongoingCall size", unsafe.Sizeof(oc), 144},
		{"ongoingCall.callKey", unsafe.Offsetof(oc.callConcurrencyKeys) + unsafe.Offsetof(oc.callKey), 0},
		{"ongoingCall.persistToDB", unsafe.Offsetof(oc.persistToDB), 32},
		{"ongoingCall.persistToDBOnce", unsafe.Offsetof(oc.persistToDBOnce), 40},
		{"ongoingCall.initCompletedResultOnce", unsafe.Offsetof(oc.initCompletedResultOnce), 52},
		{"ongoingCall.initCompletedResultErr", unsafe.Offsetof(oc.initCompletedResultErr), 64},
		{"ongoingCall.waitCh", unsafe.Offsetof(oc.waitCh), 80},
		{"ongoingCall.cancel", unsafe.Offsetof(oc.cancel), 88},
		{"ongoingCall.waiters", unsafe.Offsetof(oc.waiters), 96},
		{"ongoingCall.err", unsafe.Offsetof(oc.err), 104},
		{"ongoingCall.val", unsafe.Offsetof(oc.val), 120},
		{"ongoingCall.res", unsafe.Offsetof(oc.res), 136},

		{"sharedResult size", unsafe.Sizeof(sr), 192},
		{"sharedResult.cache", unsafe.Offsetof(sr.cache), 0},
		{"sharedResult.self", unsafe.Offsetof(sr.self), 8},
		{"sharedResult.objType", unsafe.Offsetof(sr.objType), 24},
		{"sharedResult.hasValue", unsafe.Offsetof(sr.hasValue), 40},
		{"sharedResult.postCall", unsafe.Offsetof(sr.postCall), 48},
		{"sharedResult.safeToPersistCache", unsafe.Offsetof(sr.safeToPersistCache), 56},
		{"sharedResult.onRelease", unsafe.Offsetof(sr.onRelease), 64},
		{"sharedResult.outputDigest", unsafe.Offsetof(sr.outputDigest), 72},
		{"sharedResult.outputExtraDigests", unsafe.Offsetof(sr.outputExtraDigests), 88},
		{"sharedResult.outputEffectIDs", unsafe.Offsetof(sr.outputEffectIDs), 112},
		{"sharedResult.resultTermSelf", unsafe.Offsetof(sr.resultTermSelf), 136},
		{"sharedResult.resultTermInputs", unsafe.Offsetof(sr.resultTermInputs), 152},
		{"sharedResult.hasResultTerm", unsafe.Offsetof(sr.hasResultTerm), 176},
		{"sharedResult.refCount", unsafe.Offsetof(sr.refCount), 184},

		{"Result[T] size", unsafe.Sizeof(res), 24},
		{"Result[T].shared", unsafe.Offsetof(res.shared), 0},
		{"Result[T].id", unsafe.Offsetof(res.id), 8},
		{"Result[T].hitCache", unsafe.Offsetof(res.hitCache), 16},
		{"ObjectResult[T] size (9 words)", unsafe.Sizeof(ores), 72},
		{"ObjectResult[T].Result", unsafe.Offsetof(ores.Result), 0},
		{"ObjectResult[T].class", unsafe.Offsetof(ores.class), 24},

		{"sharedArbitraryResult size", unsafe.Sizeof(sar), 96},
		{"sharedArbitraryResult.cache", unsafe.Offsetof(sar.cache), 0},
		{"sharedArbitraryResult.callKey", unsafe.Offsetof(sar.callKey), 8},
		{"sharedArbitraryResult.value", unsafe.Offsetof(sar.value), 24},
		{"sharedArbitraryResult.err", unsafe.Offsetof(sar.err), 40},
		{"sharedArbitraryResult.onRelease", unsafe.Offsetof(sar.onRelease), 56},
		{"sharedArbitraryResult.waitCh", unsafe.Offsetof(sar.waitCh), 64},
		{"sharedArbitraryResult.cancel", unsafe.Offsetof(sar.cancel), 72},
		{"sharedArbitraryResult.waiters", unsafe.Offsetof(sar.waiters), 80},
		{"sharedArbitraryResult.refCount", unsafe.Offsetof(sar.refCount), 88},
		{"arbitraryResult size", unsafe.Sizeof(ar), 16},
		{"arbitraryResult.hitCache", unsafe.Offsetof(ar.hitCache), 8},

		{"SessionCache.cache", unsafe.Offsetof(sc.cache), 0},
		{"SessionCache.results", unsafe.Offsetof(sc.results), 16},
		{"SessionCache.arbitraryResults", unsafe.Offsetof(sc.arbitraryResults), 40},
		{"SessionCache.mu", unsafe.Offsetof(sc.mu), 64},
		{"SessionCache.isClosed", unsafe.Offsetof(sc.isClosed), 72},
		{"SessionCache.seenKeys", unsafe.Offsetof(sc.seenKeys), 80},

		{"egraphTerm size", unsafe.Sizeof(term), 104},
		{"egraphTerm.selfDigest", unsafe.Offsetof(term.selfDigest), 8},
		{"egraphTerm.inputEqIDs", unsafe.Offsetof(term.inputEqIDs), 24},
		{"egraphTerm.outputEqID", unsafe.Offsetof(term.outputEqID), 48},
		{"egraphTerm.termDigest", unsafe.Offsetof(term.termDigest), 56},
		{"egraphTerm.outputExtraDigests", unsafe.Offsetof(term.outputExtraDigests), 72},
		{"egraphTerm.result", unsafe.Offsetof(term.result), 96},

		{"Selector size", unsafe.Sizeof(sel), 64},
		{"Selector.Args", unsafe.Offsetof(sel.Args), 16},
		{"Selector.Nth", unsafe.Offsetof(sel.Nth), 40},
		{"Selector.View", unsafe.Offsetof(sel.View), 48},
		{"preselectResult.newID", unsafe.Offsetof(pre.newID), 8},
		{"preselectResult.cacheKey", unsafe.Offsetof(pre.cacheKey), 16},

		{"db.Call.CallKey", unsafe.Offsetof(dbc.CallKey), 0},
		{"db.Call.StorageKey", unsafe.Offsetof(dbc.StorageKey), 16},
		{"db.Call.Expiration", unsafe.Offsetof(dbc.Expiration), 32},
		{"db.SetExpirationParams size", unsafe.Sizeof(sep), 56},
		{"db.SetExpirationParams.StorageKey", unsafe.Offsetof(sep.StorageKey), 16},
		{"db.SetExpirationParams.Expiration", unsafe.Offsetof(sep.Expiration), 32},
		{"db.SetExpirationParams.PrevStorageKey", unsafe.Offsetof(sep.PrevStorageKey), 40},

		{"digest length (\"xxh3:\"+16 hex)", uintptr(len(call.HashString("x"))), 21},
	}
}
