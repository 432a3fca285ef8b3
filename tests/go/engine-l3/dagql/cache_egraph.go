package dagql

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
)

// The e-graph, reduced: digests are grouped into equivalence classes (union-find over
// egraphParents/egraphRanks); a result is indexed under the digests of its output
// class (egraphResultsByDigest) and under terms (self digest + input classes).

// egraphTerm is one structural term (72 B).
type egraphTerm struct {
	id         egraphTermID
	selfDigest digest.Digest
	inputEqIDs []eqClassID
	termDigest string
	outputEqID eqClassID
}

// sharedResultSet is an ordered (by result id) set of candidates.
type sharedResultSet struct {
	items []*sharedResult
}

func newSharedResultSet() *sharedResultSet { return &sharedResultSet{} }

func (s *sharedResultSet) Insert(res *sharedResult) {
	i := sort.Search(len(s.items), func(i int) bool { return s.items[i].id >= res.id })
	if i < len(s.items) && s.items[i] == res {
		return
	}
	s.items = append(s.items, nil)
	copy(s.items[i+1:], s.items[i:])
	s.items[i] = res
}

func (s *sharedResultSet) Empty() bool { return s == nil || len(s.items) == 0 }

func (s *sharedResultSet) Items() []*sharedResult {
	if s == nil {
		return nil
	}
	return s.items
}

// pad:84
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
//
//
//
//
//
//
//
//

//go:noinline
func touchSharedResultLastUsed(res *sharedResult, nowUnixNano int64) {
	if res == nil {
		return
	}
	res.payloadMu.Lock()
	if nowUnixNano > res.lastUsedAtUnixNano {
		res.lastUsedAtUnixNano = nowUnixNano
	}
	res.payloadMu.Unlock()
}

func (c *Cache) initEgraphLocked() {
	if c.egraphDigestToClass != nil {
		return
	}
	c.eqClassToDigests = make(map[eqClassID]map[string]struct{})
	c.egraphDigestToClass = make(map[string]eqClassID)
	c.egraphParents = []eqClassID{0}
	c.egraphRanks = []uint8{0}
	c.egraphTerms = make(map[egraphTermID]*egraphTerm)
	c.egraphTermsByTermDigest = make(map[string]map[egraphTermID]struct{})
	c.resultsByID = make(map[sharedResultID]*sharedResult)
	c.resultOutputEqClasses = make(map[sharedResultID]map[eqClassID]struct{})
	c.termResults = make(map[egraphTermID]map[sharedResultID]struct{})
	c.resultTerms = make(map[sharedResultID]map[egraphTermID]struct{})
	c.egraphResultsByDigest = make(map[string]map[sharedResultID]struct{})
}

func (c *Cache) findEqClassLocked(id eqClassID) eqClassID {
	if id == 0 || int(id) >= len(c.egraphParents) {
		return 0
	}
	for c.egraphParents[id] != id {
		c.egraphParents[id] = c.egraphParents[c.egraphParents[id]]
		id = c.egraphParents[id]
	}
	return id
}

func (c *Cache) ensureEqClassLocked(dig string) eqClassID {
	if id, ok := c.egraphDigestToClass[dig]; ok {
		return c.findEqClassLocked(id)
	}
	c.nextEgraphClassID++
	id := c.nextEgraphClassID
	c.egraphParents = append(c.egraphParents, id)
	c.egraphRanks = append(c.egraphRanks, 0)
	c.egraphDigestToClass[dig] = id
	c.eqClassToDigests[id] = map[string]struct{}{dig: {}}
	return id
}

func (c *Cache) unionEqClassesLocked(a, b eqClassID) eqClassID {
	a, b = c.findEqClassLocked(a), c.findEqClassLocked(b)
	if a == 0 || a == b {
		return a
	}
	if c.egraphRanks[a] < c.egraphRanks[b] {
		a, b = b, a
	}
	c.egraphParents[b] = a
	if c.egraphRanks[a] == c.egraphRanks[b] {
		c.egraphRanks[a]++
	}
	for dig := range c.eqClassToDigests[b] {
		c.eqClassToDigests[a][dig] = struct{}{}
	}
	delete(c.eqClassToDigests, b)
	return a
}

func calcEgraphTermDigest(selfDigest digest.Digest, inputEqIDs []eqClassID) string {
	var b strings.Builder
	b.WriteString("term\x00")
	b.WriteString(selfDigest.String())
	for _, id := range inputEqIDs {
		b.WriteByte(0)
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	return digest.FromString(b.String()).String()
}

func (c *Cache) resultExpiredAtLocked(res *sharedResult, nowUnix int64) bool {
	if res == nil || res.expiresAtUnix == 0 {
		return false
	}
	return nowUnix >= res.expiresAtUnix
}

// pad:561
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
//
//
//
//
//
//
//
//

type lookupMatch struct {
	selfDigest            digest.Digest    // 0
	inputDigests          []digest.Digest  // 16
	inputEqIDs            []eqClassID      // 40
	primaryLookupPossible bool             // 64
	missingInputIndex     int              // 72
	hitRecipeDigest       bool             // 80
	candidates            *sharedResultSet // 88
	termDigest            string           // 96
	termSetSize           int              // 112
}

// pad:577
//

//go:noinline
func (c *Cache) appendDigestResultsLocked(candidates *sharedResultSet, dig digest.Digest, nowUnix int64) {
	if dig == "" {
		return
	}
	for id := range c.egraphResultsByDigest[dig.String()] {
		res := c.resultsByID[id]
		if res == nil || c.resultExpiredAtLocked(res, nowUnix) {
			continue
		}
		candidates.Insert(res)
	}
}

// pad:594
//

//go:noinline
func (c *Cache) appendTermSetResultsLocked(candidates *sharedResultSet, termSet map[egraphTermID]struct{}, nowUnix int64) {
	if termSet == nil {
		return
	}
	for termID := range termSet {
		for id := range c.termResults[termID] {
			res := c.resultsByID[id]
			if res == nil || c.resultExpiredAtLocked(res, nowUnix) {
				continue
			}
			candidates.Insert(res)
		}
	}
}

func (c *Cache) sessionSatisfiesResourceRequirementsLocked(sessionID string, res *sharedResult) bool {
	return res.requiredSessionResources == nil
}

// pad:646
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

//go:noinline
func (c *Cache) selectLookupCandidateForSessionLocked(sessionID string, candidates *sharedResultSet) *sharedResult {
	if candidates == nil {
		return nil
	}
	for _, res := range candidates.Items() {
		if c.sessionSatisfiesResourceRequirementsLocked(sessionID, res) {
			return res
		}
	}
	return nil
}

func (c *Cache) lookupMatchForDigestsLocked(recipeDigest digest.Digest, extraDigests []call.ExtraDigest, nowUnix int64) lookupMatch {
	match := lookupMatch{
		primaryLookupPossible: true,
		missingInputIndex:     -1,
	}
	if recipeDigest == "" {
		return match
	}

	candidates := newSharedResultSet()
	c.appendDigestResultsLocked(candidates, recipeDigest, nowUnix)
	if !candidates.Empty() {
		match.candidates = candidates
		match.hitRecipeDigest = true
		return match
	}
	for _, extra := range extraDigests {
		c.appendDigestResultsLocked(candidates, extra.Digest, nowUnix)
	}
	if !candidates.Empty() {
		match.candidates = candidates
	}
	return match
}

func (c *Cache) lookupMatchForCallLocked(
	frame *ResultCall,
	recipeDigest digest.Digest,
	selfDigest digest.Digest,
	inputDigests []digest.Digest,
	nowUnix int64,
) lookupMatch {
	match := lookupMatch{
		primaryLookupPossible: true,
		missingInputIndex:     -1,
	}
	if frame == nil {
		return match
	}

	match = c.lookupMatchForDigestsLocked(recipeDigest, frame.ExtraDigests, nowUnix)
	if match.candidates != nil && !match.candidates.Empty() {
		return match
	}

	match.selfDigest = selfDigest
	match.inputDigests = inputDigests
	match.inputEqIDs = make([]eqClassID, len(inputDigests))
	for i, in := range inputDigests {
		classID, ok := c.egraphDigestToClass[in.String()]
		if !ok {
			match.primaryLookupPossible = false
			match.missingInputIndex = i
			break
		}
		root := c.findEqClassLocked(classID)
		if root == 0 {
			match.primaryLookupPossible = false
			match.missingInputIndex = i
			break
		}
		match.inputEqIDs[i] = root
	}
	if match.primaryLookupPossible {
		match.termDigest = calcEgraphTermDigest(selfDigest, match.inputEqIDs)
		termSet := c.egraphTermsByTermDigest[match.termDigest]
		if termSet != nil {
			match.termSetSize = len(termSet)
		}
		candidates := newSharedResultSet()
		c.appendTermSetResultsLocked(candidates, termSet, nowUnix)
		if !candidates.Empty() {
			match.candidates = candidates
		}
	}
	return match
}

// existingResultForDigestLocked: a live result already indexed under dig (used to
// adopt the canonical result after a redundant execution).
func (c *Cache) existingResultForDigestLocked(dig digest.Digest, nowUnix int64) *sharedResult {
	if c.egraphResultsByDigest == nil {
		return nil
	}
	candidates := newSharedResultSet()
	c.appendDigestResultsLocked(candidates, dig, nowUnix)
	for _, res := range candidates.Items() {
		return res
	}
	return nil
}

// pad:805
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

// lookupCacheForRequestLocked: direct digest lookup, then the term lookup; on a hit
// that is not a plain recipe-digest hit the request identity is taught onto the
// result. The caller holds egraphMu.
//
//go:noinline
func (c *Cache) lookupCacheForRequestLocked(
	ctx context.Context,
	sessionID string,
	req *CallRequest,
	requestDigest digest.Digest,
	requestSelf digest.Digest,
	requestInputs []digest.Digest,
	requestInputRefs []ResultCallStructuralInputRef,
) (AnyResult, bool, error) {
	if req == nil || req.ResultCall == nil {
		return nil, false, nil
	}
	now := time.Now()
	nowUnix := now.Unix()
	match := c.lookupMatchForCallLocked(req.ResultCall, requestDigest, requestSelf, requestInputs, nowUnix)
	hitRes := c.selectLookupCandidateForSessionLocked(sessionID, match.candidates)
	if hitRes == nil {
		return nil, false, nil
	}
	traceRoute(ctx, &match)

	if requestDigest != "" && len(req.ResultCall.ExtraDigests) == 0 && req.TTL == 0 && !req.IsPersistable && match.hitRecipeDigest {
		touchSharedResultLastUsed(hitRes, now.UnixNano())
		return Result[Typed]{shared: hitRes, hitCache: true}, true, nil
	}

	res := hitRes
	if req.TTL > 0 {
		if exp := nowUnix + req.TTL; res.expiresAtUnix != 0 && exp > res.expiresAtUnix {
			res.expiresAtUnix = exp
		}
	}
	touchSharedResultLastUsed(res, now.UnixNano())
	if err := c.teachResultIdentityLocked(ctx, res, req.ResultCall, requestDigest, requestSelf, requestInputs, requestInputRefs); err != nil {
		return nil, false, err
	}
	return Result[Typed]{shared: res, hitCache: true}, true, nil
}

// pad:863
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

//go:noinline
func (c *Cache) lookupCacheForRequest(
	ctx context.Context,
	sessionID string,
	resolver TypeResolver,
	req *CallRequest,
	requestDigest digest.Digest,
	requestSelf digest.Digest,
	requestInputs []digest.Digest,
	requestInputRefs []ResultCallStructuralInputRef,
) (AnyResult, bool, error) {
	if sessionID == "" {
		return nil, false, errors.New("lookup cache for request: empty session ID")
	}
	if resolver == nil {
		return nil, false, errors.New("lookup cache for request: type resolver is nil")
	}
	if req == nil || req.ResultCall == nil {
		return nil, false, nil
	}

	c.egraphMu.Lock()
	retRes, hit, err := c.lookupCacheForRequestLocked(ctx, sessionID, req, requestDigest, requestSelf, requestInputs, requestInputRefs)
	if err != nil || !hit {
		c.egraphMu.Unlock()
		return retRes, hit, err
	}

	hitShared := retRes.cacheSharedResult()
	if hitShared == nil || hitShared.id == 0 {
		c.egraphMu.Unlock()
		return nil, false, fmt.Errorf("lookup cache for request: hit missing shared result ID")
	}

	// pad:898
	//
	c.sessionMu.Lock()
	if c.sessionResultIDsBySession == nil {
		c.sessionResultIDsBySession = make(map[string]map[sharedResultID]struct{})
	}
	ids := c.sessionResultIDsBySession[sessionID]
	if ids == nil {
		ids = make(map[sharedResultID]struct{})
		c.sessionResultIDsBySession[sessionID] = ids
	}
	if _, found := ids[hitShared.id]; !found {
		ids[hitShared.id] = struct{}{}
		c.incrementIncomingOwnershipLocked(ctx, hitShared)
		traceRefTaken(sessionID)
	}
	c.sessionMu.Unlock()
	c.egraphMu.Unlock()

	loaded, err := c.ensurePersistedHitValueLoaded(ctx, resolver, retRes)
	if err != nil {
		return nil, false, err
	}
	return loaded, true, nil
}

// pad:1264
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

// teachResultIdentityLocked makes the request's identity resolve to res later.
//
//go:noinline
func (c *Cache) teachResultIdentityLocked(
	ctx context.Context,
	res *sharedResult,
	frame *ResultCall,
	requestDigest digest.Digest,
	requestSelf digest.Digest,
	requestInputs []digest.Digest,
	requestInputRefs []ResultCallStructuralInputRef,
) error {
	return c.indexIdentityLocked(frame, requestDigest, requestSelf, requestInputs, res)
}

// indexIdentityLocked indexes res under the request's recipe digest, extra digests
// and term.
func (c *Cache) indexIdentityLocked(frame *ResultCall, requestDigest, requestSelf digest.Digest, requestInputs []digest.Digest, res *sharedResult) error {
	c.initEgraphLocked()
	if res.id == 0 {
		c.nextSharedResultID++
		res.id = c.nextSharedResultID
	}
	c.resultsByID[res.id] = res
	if requestDigest == "" {
		return fmt.Errorf("index result %d: empty recipe digest", res.id)
	}
	out := c.ensureEqClassLocked(requestDigest.String())
	for cls := range c.resultOutputEqClasses[res.id] {
		out = c.unionEqClassesLocked(out, cls)
	}
	indexDigest := func(dig string) {
		set := c.egraphResultsByDigest[dig]
		if set == nil {
			set = make(map[sharedResultID]struct{})
			c.egraphResultsByDigest[dig] = set
		}
		set[res.id] = struct{}{}
	}
	indexDigest(requestDigest.String())
	if frame != nil {
		for _, extra := range frame.ExtraDigests {
			if extra.Digest == "" {
				continue
			}
			out = c.unionEqClassesLocked(out, c.ensureEqClassLocked(extra.Digest.String()))
			indexDigest(extra.Digest.String())
		}
	}
	c.resultOutputEqClasses[res.id] = map[eqClassID]struct{}{out: {}}

	inputEqIDs := make([]eqClassID, len(requestInputs))
	for i, in := range requestInputs {
		inputEqIDs[i] = c.ensureEqClassLocked(in.String())
	}
	termDigest := calcEgraphTermDigest(requestSelf, inputEqIDs)
	for tid := range c.egraphTermsByTermDigest[termDigest] {
		if _, ok := c.termResults[tid][res.id]; ok {
			return nil
		}
	}
	c.nextEgraphTermID++
	tid := c.nextEgraphTermID
	c.egraphTerms[tid] = &egraphTerm{id: tid, selfDigest: requestSelf, inputEqIDs: inputEqIDs, termDigest: termDigest, outputEqID: out}
	if c.egraphTermsByTermDigest[termDigest] == nil {
		c.egraphTermsByTermDigest[termDigest] = make(map[egraphTermID]struct{})
	}
	c.egraphTermsByTermDigest[termDigest][tid] = struct{}{}
	c.termResults[tid] = map[sharedResultID]struct{}{res.id: {}}
	if c.resultTerms[res.id] == nil {
		c.resultTerms[res.id] = make(map[egraphTermID]struct{})
	}
	c.resultTerms[res.id][tid] = struct{}{}
	return nil
}

// pad:1400
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
//
//
//
//
//
//

//go:noinline
func (c *Cache) indexWaitResultInEgraphLocked(
	ctx context.Context,
	requestFrame *ResultCall,
	requestDigest digest.Digest,
	requestSelf digest.Digest,
	requestInputs []digest.Digest,
	res *sharedResult,
) error {
	return c.indexIdentityLocked(requestFrame, requestDigest, requestSelf, requestInputs, res)
}

// pad:1630
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

//go:noinline
func (c *Cache) removeResultFromEgraphLocked(ctx context.Context, res *sharedResult) {
	if c == nil || res == nil {
		return
	}
	for cls := range c.resultOutputEqClasses[res.id] {
		root := c.findEqClassLocked(cls)
		for dig := range c.eqClassToDigests[root] {
			if set := c.egraphResultsByDigest[dig]; set != nil {
				delete(set, res.id)
				if len(set) == 0 {
					delete(c.egraphResultsByDigest, dig)
				}
			}
		}
	}
	for tid := range c.resultTerms[res.id] {
		delete(c.termResults[tid], res.id)
		if len(c.termResults[tid]) == 0 {
			delete(c.termResults, tid)
			if term := c.egraphTerms[tid]; term != nil {
				delete(c.egraphTermsByTermDigest[term.termDigest], tid)
				if len(c.egraphTermsByTermDigest[term.termDigest]) == 0 {
					delete(c.egraphTermsByTermDigest, term.termDigest)
				}
			}
			delete(c.egraphTerms, tid)
		}
	}
	delete(c.resultTerms, res.id)
	delete(c.resultOutputEqClasses, res.id)
	delete(c.resultsByID, res.id)
	traceCollected(ctx, res)
}
