package dagql

// CacheOutcome is the cache decision of one invocation.
type CacheOutcome string

// CacheHitRoute is the index that produced a hit.
type CacheHitRoute string

const (
	CacheOutcomeHit      CacheOutcome = "hit"
	CacheOutcomeExecuted CacheOutcome = "executed"
	CacheOutcomeJoined   CacheOutcome = "joined"
	CacheOutcomeUncached CacheOutcome = "uncached"

	CacheHitRouteRecipe     CacheHitRoute = "recipe"
	CacheHitRouteDigest     CacheHitRoute = "digest"
	CacheHitRouteStructural CacheHitRoute = "structural"
)

// pad:43
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// CacheDecision (104 B): Outcome 0/8, HitRoute 16/24, MissIncompatibleCandidates 32,
// MissSawExpired 33, MissUnknownInputIndex 40, SelfDigest 48/56, StructuralInputs 64,
// PairingDigest 88/96.
type CacheDecision struct {
	Outcome                    CacheOutcome
	HitRoute                   CacheHitRoute
	MissIncompatibleCandidates bool
	MissSawExpired             bool
	MissUnknownInputIndex      int
	SelfDigest                 string
	StructuralInputs           []string
	PairingDigest              string
}

// NewCacheDecision returns an armed, empty carrier.
func NewCacheDecision() *CacheDecision {
	return &CacheDecision{MissUnknownInputIndex: -1}
}
