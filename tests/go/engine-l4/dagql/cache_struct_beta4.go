//go:build l4beta4

package dagql

import (
	"sync"
	"unsafe"
)

// Cache as of v1.0.0-beta.4 .. beta.9 (424 B): without outputEqClassResults,
// resultIndexedDigests and broadlyIndexedResults (added before beta.10). Offsets:
// callsMu 0, sessionMu 8, egraphMu 16, ongoingCalls 56, resultsByID 176,
// resultOutputEqClasses 200, persistedEdgesByResult 232, ongoingArbitraryCalls 248,
// completedArbitraryCalls 256, sessionResultIDsBySession 264. The stand-in keeps its
// two e-graph side indexes in the slots of inputEqClassToTerms (184) and
// outputEqClassToTerms (192), which the stand-in does not otherwise use.
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

	outputEqClassResults  map[eqClassID]map[sharedResultID]*sharedResult // slot of inputEqClassToTerms
	resultIndexedDigests  map[sharedResultID][]string                    // slot of outputEqClassToTerms
	resultOutputEqClasses map[sharedResultID]eqClassID
	termResults           map[uint64]map[sharedResultID]struct{}
	resultTerms           map[sharedResultID]map[uint64]struct{}
	egraphResultsByDigest map[string]map[sharedResultID]*sharedResult

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

// cacheLayout: the beta.4 .. beta.9 offsets.
func cacheLayout() []LayoutCheck {
	var c Cache
	return []LayoutCheck{
		{"Cache size (beta.4-beta.9)", unsafe.Sizeof(c), 424},
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
		{"Cache.outputEqClassResults", unsafe.Offsetof(c.outputEqClassResults), 184},
		{"Cache.egraphResultsByDigest", unsafe.Offsetof(c.egraphResultsByDigest), 224},
		{"Cache.resultIndexedDigests", unsafe.Offsetof(c.resultIndexedDigests), 192},
		{"Cache.persistedEdgesByResult", unsafe.Offsetof(c.persistedEdgesByResult), 232},
		{"Cache.termInputProvenance", unsafe.Offsetof(c.termInputProvenance), 240},
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
	}
}
