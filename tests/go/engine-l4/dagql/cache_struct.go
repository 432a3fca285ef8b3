//go:build !l4beta4

package dagql

import (
	"sync"
	"unsafe"
)

// Cache is the engine-wide dagql cache (448 B). Offsets: callsMu 0, sessionMu 8,
// egraphMu 16, ongoingCalls 56, resultsByID 176, resultOutputEqClasses 200,
// persistedEdgesByResult 256, ongoingArbitraryCalls 272, completedArbitraryCalls 280,
// sessionResultIDsBySession 288.
type Cache struct {
	callsMu   sync.Mutex
	sessionMu sync.Mutex
	egraphMu  sync.RWMutex

	persistenceResetReason string

	ongoingCalls map[callConcurrencyKeys]*ongoingCall

	nextEgraphClassID   eqClassID
	eqClassToDigests    map[eqClassID]map[string]struct{}
	eqClassExtraDigests map[eqClassID]map[string]struct{}
	egraphDigestToClass map[string]eqClassID
	egraphParents       []eqClassID
	egraphRanks         []uint8

	nextEgraphTermID        uint64
	egraphTerms             map[uint64]*egraphTerm
	egraphTermsByTermDigest map[string]map[uint64]*egraphTerm

	nextSharedResultID sharedResultID
	resultsByID        map[sharedResultID]*sharedResult

	inputEqClassToTerms   map[eqClassID]map[uint64]struct{}
	outputEqClassToTerms  map[eqClassID]map[uint64]struct{}
	resultOutputEqClasses map[sharedResultID]eqClassID
	outputEqClassResults  map[eqClassID]map[sharedResultID]*sharedResult
	termResults           map[uint64]map[sharedResultID]struct{}
	resultTerms           map[sharedResultID]map[uint64]struct{}
	egraphResultsByDigest map[string]map[sharedResultID]*sharedResult
	resultIndexedDigests  map[sharedResultID][]string
	broadlyIndexedResults map[sharedResultID]struct{}

	persistedEdgesByResult map[sharedResultID]persistedEdge
	termInputProvenance    map[uint64]struct{}

	ongoingArbitraryCalls   map[string]*sharedArbitraryResult
	completedArbitraryCalls map[string]*sharedArbitraryResult

	sessionResultIDsBySession         map[string]map[sharedResultID]struct{}
	sessionArbitraryCallKeysBySession map[string]map[string]struct{}
	sessionLazySpansBySession         map[string]struct{}
	sessionResultInstallSpans         map[string]struct{}
	sessionResourcesBySession         map[string]struct{}
	sessionHandlesBySession           map[string]struct{}
	sessionVolatileVarsBySession      map[string]struct{}

	sqlDB *struct{}
	pdb   *struct{}

	traceBootID     string
	traceSeq        uint64
	traceImportRuns map[string]struct{}

	snapshotManager any
	snapshotGC      *struct{}

	closeOnce sync.Once
	closeErr  error
}

// cacheLayout: the beta.10 / HEAD offsets.
func cacheLayout() []LayoutCheck {
	var c Cache
	return []LayoutCheck{
		{"Cache size", unsafe.Sizeof(c), 448},
		{"Cache.callsMu", unsafe.Offsetof(c.callsMu), 0},
		{"Cache.sessionMu", unsafe.Offsetof(c.sessionMu), 8},
		{"Cache.egraphMu", unsafe.Offsetof(c.egraphMu), 16},
		{"Cache.persistenceResetReason", unsafe.Offsetof(c.persistenceResetReason), 40},
		{"Cache.ongoingCalls", unsafe.Offsetof(c.ongoingCalls), 56},
		{"Cache.nextEgraphClassID", unsafe.Offsetof(c.nextEgraphClassID), 64},
		{"Cache.egraphDigestToClass", unsafe.Offsetof(c.egraphDigestToClass), 88},
		{"Cache.egraphParents", unsafe.Offsetof(c.egraphParents), 96},
		{"Cache.egraphRanks", unsafe.Offsetof(c.egraphRanks), 120},
		{"Cache.nextEgraphTermID", unsafe.Offsetof(c.nextEgraphTermID), 144},
		{"Cache.egraphTermsByTermDigest", unsafe.Offsetof(c.egraphTermsByTermDigest), 160},
		{"Cache.nextSharedResultID", unsafe.Offsetof(c.nextSharedResultID), 168},
		{"Cache.resultsByID", unsafe.Offsetof(c.resultsByID), 176},
		{"Cache.resultOutputEqClasses", unsafe.Offsetof(c.resultOutputEqClasses), 200},
		{"Cache.outputEqClassResults", unsafe.Offsetof(c.outputEqClassResults), 208},
		{"Cache.egraphResultsByDigest", unsafe.Offsetof(c.egraphResultsByDigest), 232},
		{"Cache.resultIndexedDigests", unsafe.Offsetof(c.resultIndexedDigests), 240},
		{"Cache.persistedEdgesByResult", unsafe.Offsetof(c.persistedEdgesByResult), 256},
		{"Cache.termInputProvenance", unsafe.Offsetof(c.termInputProvenance), 264},
		{"Cache.ongoingArbitraryCalls", unsafe.Offsetof(c.ongoingArbitraryCalls), 272},
		{"Cache.completedArbitraryCalls", unsafe.Offsetof(c.completedArbitraryCalls), 280},
		{"Cache.sessionResultIDsBySession", unsafe.Offsetof(c.sessionResultIDsBySession), 288},
		{"Cache.sessionArbitraryCallKeysBySession", unsafe.Offsetof(c.sessionArbitraryCallKeysBySession), 296},
		{"Cache.sessionVolatileVarsBySession", unsafe.Offsetof(c.sessionVolatileVarsBySession), 336},
		{"Cache.sqlDB", unsafe.Offsetof(c.sqlDB), 344},
		{"Cache.traceBootID", unsafe.Offsetof(c.traceBootID), 360},
		{"Cache.snapshotManager", unsafe.Offsetof(c.snapshotManager), 392},
		{"Cache.closeOnce", unsafe.Offsetof(c.closeOnce), 416},
		{"Cache.closeErr", unsafe.Offsetof(c.closeErr), 432},
	}
}
