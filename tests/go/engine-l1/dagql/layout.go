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

// Layout returns the offsets and sizes the tracer relies on (engine-l1.md §3).
func Layout() []LayoutCheck {
	var (
		id   call.ID
		pb   callpbv1.Call
		key  CacheKey
		c    cache
		cck  callConcurrencyKeys
		sr   sharedResult
		res  Result[Typed]
		ores ObjectResult[*layoutProbe]
		sar  sharedArbitraryResult
		ar   arbitraryResult
		sc   SessionCache
		rl   resultList
		st   CacheEntryStats
		ck   cacheContextKey
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
		{"call.ID size", unsafe.Sizeof(id), 56},
		{"call.ID.pb", idField("pb"), 0},
		{"call.ID.receiver", idField("receiver"), 8},
		{"call.ID.args", idField("args"), 16},
		{"call.ID.module", idField("module"), 40},
		{"call.ID.typ", idField("typ"), 48},

		{"callpbv1.Call size", unsafe.Sizeof(pb), 200},
		{"callpbv1.Call.ReceiverDigest", unsafe.Offsetof(pb.ReceiverDigest), 40},
		{"callpbv1.Call.Type", unsafe.Offsetof(pb.Type), 56},
		{"callpbv1.Call.Field", unsafe.Offsetof(pb.Field), 64},
		{"callpbv1.Call.Args", unsafe.Offsetof(pb.Args), 80},
		{"callpbv1.Call.Nth", unsafe.Offsetof(pb.Nth), 104},
		{"callpbv1.Call.Module", unsafe.Offsetof(pb.Module), 112},
		{"callpbv1.Call.Digest", unsafe.Offsetof(pb.Digest), 120},
		{"callpbv1.Call.View", unsafe.Offsetof(pb.View), 136},
		{"callpbv1.Call.IsCustomDigest", unsafe.Offsetof(pb.IsCustomDigest), 152},
		{"callpbv1.Call.ContentDigest", unsafe.Offsetof(pb.ContentDigest), 160},
		{"callpbv1.Call.EffectIds", unsafe.Offsetof(pb.EffectIds), 176},

		{"CacheKey size", unsafe.Sizeof(key), 40},
		{"CacheKey.ID", unsafe.Offsetof(key.ID), 0},
		{"CacheKey.ConcurrencyKey", unsafe.Offsetof(key.ConcurrencyKey), 8},
		{"CacheKey.TTL", unsafe.Offsetof(key.TTL), 24},
		{"CacheKey.DoNotCache", unsafe.Offsetof(key.DoNotCache), 32},

		{"cache size", unsafe.Sizeof(c), 56},
		{"cache.mu", unsafe.Offsetof(c.mu), 0},
		{"cache.ongoingCalls", unsafe.Offsetof(c.ongoingCalls), 8},
		{"cache.completedCalls", unsafe.Offsetof(c.completedCalls), 16},
		{"cache.completedCallsByContent", unsafe.Offsetof(c.completedCallsByContent), 24},
		{"cache.ongoingArbitraryCalls", unsafe.Offsetof(c.ongoingArbitraryCalls), 32},
		{"cache.completedArbitraryCalls", unsafe.Offsetof(c.completedArbitraryCalls), 40},
		{"cache.db", unsafe.Offsetof(c.db), 48},

		{"callConcurrencyKeys size", unsafe.Sizeof(cck), 32},
		{"callConcurrencyKeys.callKey", unsafe.Offsetof(cck.callKey), 0},
		{"callConcurrencyKeys.concurrencyKey", unsafe.Offsetof(cck.concurrencyKey), 16},
		{"cacheContextKey size", unsafe.Sizeof(ck), 24},
		{"resultList size", unsafe.Sizeof(rl), 16},
		{"CacheEntryStats size", unsafe.Sizeof(st), 40},

		{"sharedResult size", unsafe.Sizeof(sr), 216},
		{"sharedResult.cache", unsafe.Offsetof(sr.cache), 0},
		{"sharedResult.storageKey", unsafe.Offsetof(sr.storageKey), 8},
		{"sharedResult.callKey", unsafe.Offsetof(sr.callKey), 24},
		{"sharedResult.concurrencyKey", unsafe.Offsetof(sr.concurrencyKey), 40},
		{"sharedResult.constructor", unsafe.Offsetof(sr.constructor), 56},
		{"sharedResult.self", unsafe.Offsetof(sr.self), 64},
		{"sharedResult.objType", unsafe.Offsetof(sr.objType), 80},
		{"sharedResult.hasValue", unsafe.Offsetof(sr.hasValue), 96},
		{"sharedResult.postCall", unsafe.Offsetof(sr.postCall), 104},
		{"sharedResult.err", unsafe.Offsetof(sr.err), 112},
		{"sharedResult.safeToPersistCache", unsafe.Offsetof(sr.safeToPersistCache), 128},
		{"sharedResult.contentDigestKey", unsafe.Offsetof(sr.contentDigestKey), 136},
		{"sharedResult.resultCallKey", unsafe.Offsetof(sr.resultCallKey), 152},
		{"sharedResult.onRelease", unsafe.Offsetof(sr.onRelease), 168},
		{"sharedResult.persistToDB", unsafe.Offsetof(sr.persistToDB), 176},
		{"sharedResult.waitCh", unsafe.Offsetof(sr.waitCh), 184},
		{"sharedResult.cancel", unsafe.Offsetof(sr.cancel), 192},
		{"sharedResult.waiters", unsafe.Offsetof(sr.waiters), 200},
		{"sharedResult.refCount", unsafe.Offsetof(sr.refCount), 208},

		{"Result[T] size", unsafe.Sizeof(res), 24},
		{"Result[T].shared", unsafe.Offsetof(res.shared), 0},
		{"Result[T].idOverride", unsafe.Offsetof(res.idOverride), 8},
		{"Result[T].hitCache", unsafe.Offsetof(res.hitCache), 16},
		{"Result[T].hitContentDigestCache", unsafe.Offsetof(res.hitContentDigestCache), 17},
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

		{"SessionCache size", unsafe.Sizeof(sc), 176},
		{"SessionCache.cache", unsafe.Offsetof(sc.cache), 0},
		{"SessionCache.results", unsafe.Offsetof(sc.results), 16},
		{"SessionCache.arbitraryResults", unsafe.Offsetof(sc.arbitraryResults), 40},
		{"SessionCache.mu", unsafe.Offsetof(sc.mu), 64},
		{"SessionCache.isClosed", unsafe.Offsetof(sc.isClosed), 72},
		{"SessionCache.seenKeys", unsafe.Offsetof(sc.seenKeys), 80},
		{"SessionCache.noCacheNext", unsafe.Offsetof(sc.noCacheNext), 128},

		{"preselectResult size", unsafe.Sizeof(pre), 56},
		{"preselectResult.newID", unsafe.Offsetof(pre.newID), 8},
		{"preselectResult.cacheKey", unsafe.Offsetof(pre.cacheKey), 16},

		{"db.Call size", unsafe.Sizeof(dbc), 40},
		{"db.Call.StorageKey", unsafe.Offsetof(dbc.StorageKey), 16},
		{"db.Call.Expiration", unsafe.Offsetof(dbc.Expiration), 32},
		{"db.SetExpirationParams size", unsafe.Sizeof(sep), 56},
		{"db.SetExpirationParams.StorageKey", unsafe.Offsetof(sep.StorageKey), 16},
		{"db.SetExpirationParams.Expiration", unsafe.Offsetof(sep.Expiration), 32},
		{"db.SetExpirationParams.PrevStorageKey", unsafe.Offsetof(sep.PrevStorageKey), 40},

		{"digest length (\"xxh3:\"+16 hex)", uintptr(len(call.HashString("x"))), 21},
	}
}
