package dagql

import (
	"context"
	"strconv"
	"time"
)

// egraphTerm (72 B): id 0, selfDigest 8/16, inputEqIDs 24, termDigest 48/56,
// outputEqID 64.
type egraphTerm struct {
	id         uint64
	selfDigest string
	inputEqIDs []eqClassID
	termDigest string
	outputEqID eqClassID
}

// candidateSet stands in for set.TreeSet[*sharedResult] (a pointer in lookupMatch).
type candidateSet struct {
	items []*sharedResult
	seen  map[sharedResultID]struct{}
}

func (s *candidateSet) add(res *sharedResult) {
	if _, ok := s.seen[res.id]; ok {
		return
	}
	s.seen[res.id] = struct{}{}
	s.items = append(s.items, res)
}

func newCandidateSet() *candidateSet {
	return &candidateSet{seen: map[sharedResultID]struct{}{}}
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
//
//
//
//
//
//
//
//
//
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
func touchSharedResultLastUsed(res *sharedResult, now int64) {
	if res == nil {
		return
	}
	res.payloadMu.Lock()
	if now > res.lastUsedAtUnixNano {
		res.lastUsedAtUnixNano = now
	}
	if res.createdAtUnixNano == 0 {
		res.createdAtUnixNano = now
	}
	res.payloadMu.Unlock()
}

func (c *Cache) findEqClassLocked(id eqClassID) eqClassID {
	for int(id) < len(c.egraphParents) && c.egraphParents[id] != id {
		c.egraphParents[id] = c.egraphParents[c.egraphParents[id]]
		id = c.egraphParents[id]
	}
	return id
}

func (c *Cache) ensureEqClassLocked(dig string) eqClassID {
	if c.egraphDigestToClass == nil {
		c.egraphDigestToClass = make(map[string]eqClassID)
		c.eqClassToDigests = make(map[eqClassID]map[string]struct{})
		c.egraphParents = []eqClassID{0}
		c.egraphRanks = []uint8{0}
	}
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

// unionEqClassesLocked merges two classes and their result sets; returns the root.
func (c *Cache) unionEqClassesLocked(a, b eqClassID) eqClassID {
	a, b = c.findEqClassLocked(a), c.findEqClassLocked(b)
	if a == b {
		return a
	}
	if c.egraphRanks[a] < c.egraphRanks[b] {
		a, b = b, a
	}
	c.egraphParents[b] = a
	if c.egraphRanks[a] == c.egraphRanks[b] {
		c.egraphRanks[a]++
	}
	for d := range c.eqClassToDigests[b] {
		c.eqClassToDigests[a][d] = struct{}{}
	}
	delete(c.eqClassToDigests, b)
	if moved := c.outputEqClassResults[b]; moved != nil {
		if c.outputEqClassResults[a] == nil {
			c.outputEqClassResults[a] = make(map[sharedResultID]*sharedResult)
		}
		for id, res := range moved {
			c.outputEqClassResults[a][id] = res
		}
		delete(c.outputEqClassResults, b)
	}
	return a
}

func termDigestOf(self string, inputs []eqClassID) string {
	h := newHasher()
	h.str("term")
	h.str(self)
	for _, id := range inputs {
		h.str(strconv.FormatUint(uint64(id), 10))
	}
	return h.digest()
}

func expired(res *sharedResult, nowUnix int64) bool {
	return res.expiresAtUnix != 0 && res.expiresAtUnix < nowUnix
}

// pad:572
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// lookupMatch (144 B, returned by value on the stack): selfDigest 0/8, inputDigests 16,
// inputEqIDs 40, primaryLookupPossible 64, missingInputIndex 72, hitRecipeDigest 80,
// candidates 88, termDigest 96/104, termSetSize 112, route 120/128, sawExpired 136.
type lookupMatch struct {
	selfDigest            string
	inputDigests          []string
	inputEqIDs            []eqClassID
	primaryLookupPossible bool
	missingInputIndex     int
	hitRecipeDigest       bool
	candidates            *candidateSet
	termDigest            string
	termSetSize           int
	route                 CacheHitRoute
	sawExpired            bool
}

//go:noinline
func (c *Cache) appendDigestResultsLocked(candidates *candidateSet, dig string, nowUnix int64) (*candidateSet, bool) {
	sawExpired := false
	for _, res := range c.egraphResultsByDigest[dig] {
		if expired(res, nowUnix) {
			sawExpired = true
			continue
		}
		if candidates == nil {
			candidates = newCandidateSet()
		}
		candidates.add(res)
	}
	return candidates, sawExpired
}

//go:noinline
func (c *Cache) appendTermSetResultsLocked(candidates *candidateSet, terms map[uint64]*egraphTerm, nowUnix int64) (*candidateSet, bool) {
	sawExpired := false
	for _, term := range terms {
		for _, res := range c.outputEqClassResults[c.findEqClassLocked(term.outputEqID)] {
			if expired(res, nowUnix) {
				sawExpired = true
				continue
			}
			if candidates == nil {
				candidates = newCandidateSet()
			}
			candidates.add(res)
		}
	}
	return candidates, sawExpired
}

// pad:680
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
func (c *Cache) selectLookupCandidateForSessionLocked(sessionID string, candidates *candidateSet) *sharedResult {
	if candidates == nil || len(candidates.items) == 0 {
		return nil
	}
	// the stand-in has no session resources: the oldest candidate wins
	return candidates.items[0]
}

// pad:691

//go:noinline
func (c *Cache) lookupMatchForDigestsLocked(recipeDigest string, extraDigests []ResultCallExtraDigest, nowUnix int64) lookupMatch {
	match := lookupMatch{missingInputIndex: -1}
	cands, sawExpired := c.appendDigestResultsLocked(nil, recipeDigest, nowUnix)
	match.candidates, match.sawExpired = cands, sawExpired
	if cands != nil && len(cands.items) > 0 {
		// pad:704
		//
		//
		//
		//
		//
		//
		//
		match.hitRecipeDigest = true
		match.route = CacheHitRouteRecipe
		return match
	}
	for _, extra := range extraDigests {
		cands, sawExpired := c.appendDigestResultsLocked(match.candidates, extra.Digest, nowUnix)
		if match.candidates, match.sawExpired = cands, match.sawExpired || sawExpired; cands != nil && len(cands.items) > 0 {
			// pad:712
			match.route = CacheHitRouteDigest
			return match
		}
	}
	return match
}
func (c *Cache) lookupMatchForCallLocked(frame *ResultCall, recipeDigest string, selfDigest string, inputDigests []string, nowUnix int64) lookupMatch {
	var extra []ResultCallExtraDigest
	if frame != nil {
		extra = frame.ExtraDigests
	}
	match := c.lookupMatchForDigestsLocked(recipeDigest, extra, nowUnix)
	if match.candidates != nil && len(match.candidates.items) > 0 {
		return match
	}
	match.selfDigest = selfDigest
	match.inputDigests = inputDigests
	match.primaryLookupPossible = true
	match.inputEqIDs = make([]eqClassID, 0, len(inputDigests))
	for i, dig := range inputDigests {
		id, ok := c.egraphDigestToClass[dig]
		if !ok {
			match.primaryLookupPossible = false
			match.missingInputIndex = i
			return match
		}
		match.inputEqIDs = append(match.inputEqIDs, c.findEqClassLocked(id))
	}
	match.termDigest = termDigestOf(selfDigest, match.inputEqIDs)
	terms := c.egraphTermsByTermDigest[match.termDigest]
	match.termSetSize = len(terms)
	if len(terms) == 0 {
		return match
	}
	var sawExpired bool
	match.candidates, sawExpired = c.appendTermSetResultsLocked(match.candidates, terms, nowUnix)
	match.sawExpired = match.sawExpired || sawExpired
	// pad:765
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	if match.candidates != nil && len(match.candidates.items) > 0 {
		match.route = CacheHitRouteStructural
	}
	return match
}

// pad:874
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
func (c *Cache) lookupCacheForRequestLocked(
	ctx context.Context,
	sessionID string,
	req *CallRequest,
	requestDigest string,
	requestSelf string,
	requestInputs []string,
	requestInputRefs []*ResultCallRef,
) (AnyResult, bool, error) {
	ev := reqEvidence(req)
	nowUnix := time.Now().Unix()
	match := c.lookupMatchForCallLocked(req.ResultCall, requestDigest, requestSelf, requestInputs, nowUnix)
	var hitShared *sharedResult
	if match.candidates != nil && len(match.candidates.items) > 0 {
		hitShared = c.selectLookupCandidateForSessionLocked(sessionID, match.candidates)
	}
	// pad:895
	//
	//
	//
	//
	if ev != nil {
		if hitShared != nil {
			ev.HitRoute = match.route
		} else {
			if match.candidates != nil && len(match.candidates.items) > 0 {
				ev.MissIncompatibleCandidates = true
			}
			if match.sawExpired {
				ev.MissSawExpired = true
			}
			if !match.primaryLookupPossible && match.missingInputIndex >= 0 {
				ev.MissUnknownInputIndex = match.missingInputIndex
			}
		}
	}
	if hitShared == nil {
		return nil, false, nil
	}
	callTraceFrom(ctx).setRoute(match.route)
	touchSharedResultLastUsed(hitShared, time.Now().UnixNano())
	if req.TTL > 0 {
		if exp := nowUnix + req.TTL; exp > hitShared.expiresAtUnix {
			hitShared.expiresAtUnix = exp
		}
	}
	if req.IsPersistable {
		c.upsertPersistedEdgeLocked(ctx, hitShared, hitShared.expiresAtUnix, false)
	}
	_ = requestInputRefs
	return Result[Typed]{shared: hitShared, hitCache: true}, true, nil
}

// pad:950
//
//
//
//
//
//
//
//
//
//
//
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
	requestDigest string,
	requestSelf string,
	requestInputs []string,
	requestInputRefs []*ResultCallRef,
) (AnyResult, bool, error) {
	if req == nil || req.ResultCall == nil {
		return nil, false, nil
	}
	// pad:970
	//
	//
	//
	//
	//
	//
	c.egraphMu.Lock()
	hitRes, hit, err := c.lookupCacheForRequestLocked(ctx, sessionID, req, requestDigest, requestSelf, requestInputs, requestInputRefs)
	if err != nil || !hit {
		c.egraphMu.Unlock()
		return nil, false, err
	}
	shared := hitRes.cacheSharedResult()
	newlyTracked := false
	// pad:985
	//
	//
	//
	//
	//
	//
	c.sessionMu.Lock()
	if c.sessionResultIDsBySession == nil {
		c.sessionResultIDsBySession = make(map[string]map[sharedResultID]struct{})
	}
	if c.sessionResultIDsBySession[sessionID] == nil {
		c.sessionResultIDsBySession[sessionID] = make(map[sharedResultID]struct{})
	}
	if _, ok := c.sessionResultIDsBySession[sessionID][shared.id]; !ok {
		c.sessionResultIDsBySession[sessionID][shared.id] = struct{}{}
		newlyTracked = true
		traceSessionTracked(sessionID, shared)
	}
	c.sessionMu.Unlock()
	if newlyTracked {
		c.incrementIncomingOwnershipLocked(ctx, shared)
	}
	c.egraphMu.Unlock()

	hitRes, err = c.ensurePersistedHitValueLoaded(ctx, resolver, hitRes)
	if err != nil {
		return nil, false, err
	}
	return hitRes, true, nil
}

// pad:1526
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// indexWaitResultInEgraphLocked publishes a completed call: a new sharedResult indexed
// by its recipe digest, the request's extra digests and the value's content digest
// (all in one output class), and the term (self digest + input classes). A result
// already indexed by the recipe digest (redundant execution) is reused.
func (c *Cache) indexWaitResultInEgraphLocked(
	ctx context.Context,
	recipeDigest string,
	frame *ResultCall,
	self Typed,
	requestSelf string,
	requestInputs []string,
	contentDigests []string,
	onRelease OnReleaseFunc,
	now time.Time,
) (*sharedResult, error) {
	for _, existing := range c.egraphResultsByDigest[recipeDigest] {
		touchSharedResultLastUsed(existing, now.UnixNano())
		return existing, nil
	}
	if c.resultsByID == nil {
		c.resultsByID = make(map[sharedResultID]*sharedResult)
	}
	if c.resultOutputEqClasses == nil {
		c.resultOutputEqClasses = make(map[sharedResultID]eqClassID)
	}
	if c.outputEqClassResults == nil {
		c.outputEqClassResults = make(map[eqClassID]map[sharedResultID]*sharedResult)
	}
	if c.egraphResultsByDigest == nil {
		c.egraphResultsByDigest = make(map[string]map[sharedResultID]*sharedResult)
	}
	if c.resultIndexedDigests == nil {
		c.resultIndexedDigests = make(map[sharedResultID][]string)
	}
	if c.egraphTerms == nil {
		c.egraphTerms = make(map[uint64]*egraphTerm)
		c.egraphTermsByTermDigest = make(map[string]map[uint64]*egraphTerm)
		c.termResults = make(map[uint64]map[sharedResultID]struct{})
		c.resultTerms = make(map[sharedResultID]map[uint64]struct{})
	}

	c.nextSharedResultID++
	res := &sharedResult{
		id:         c.nextSharedResultID,
		self:       self,
		resultCall: frame,
		hasValue:   true,
		onRelease:  onRelease,
	}
	digests := []string{recipeDigest}
	for _, extra := range frame.ExtraDigests {
		digests = append(digests, extra.Digest)
	}
	digests = append(digests, contentDigests...)

	out := c.ensureEqClassLocked(recipeDigest)
	for _, d := range digests[1:] {
		out = c.unionEqClassesLocked(out, c.ensureEqClassLocked(d))
	}

	inputEqIDs := make([]eqClassID, 0, len(requestInputs))
	for _, d := range requestInputs {
		inputEqIDs = append(inputEqIDs, c.ensureEqClassLocked(d))
	}
	termDigest := termDigestOf(requestSelf, inputEqIDs)
	var term *egraphTerm
	for _, t := range c.egraphTermsByTermDigest[termDigest] {
		term = t
		break
	}
	if term == nil {
		c.nextEgraphTermID++
		term = &egraphTerm{id: c.nextEgraphTermID, selfDigest: requestSelf, inputEqIDs: inputEqIDs, termDigest: termDigest, outputEqID: out}
		c.egraphTerms[term.id] = term
		c.egraphTermsByTermDigest[termDigest] = map[uint64]*egraphTerm{term.id: term}
	} else {
		// congruence: the same term yields the same output class
		out = c.unionEqClassesLocked(out, term.outputEqID)
	}
	out = c.findEqClassLocked(out)

	c.resultsByID[res.id] = res
	c.resultOutputEqClasses[res.id] = out
	if c.outputEqClassResults[out] == nil {
		c.outputEqClassResults[out] = make(map[sharedResultID]*sharedResult)
	}
	c.outputEqClassResults[out][res.id] = res
	for _, d := range digests {
		if c.egraphResultsByDigest[d] == nil {
			c.egraphResultsByDigest[d] = make(map[sharedResultID]*sharedResult)
		}
		c.egraphResultsByDigest[d][res.id] = res
	}
	c.resultIndexedDigests[res.id] = digests
	if c.termResults[term.id] == nil {
		c.termResults[term.id] = make(map[sharedResultID]struct{})
	}
	c.termResults[term.id][res.id] = struct{}{}
	c.resultTerms[res.id] = map[uint64]struct{}{term.id: {}}
	touchSharedResultLastUsed(res, now.UnixNano())
	_ = ctx
	return res, nil
}

// pad:1756
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
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
	traceCollected(ctx, res)
	delete(c.resultsByID, res.id)
	if out, ok := c.resultOutputEqClasses[res.id]; ok {
		root := c.findEqClassLocked(out)
		delete(c.outputEqClassResults[root], res.id)
		if len(c.outputEqClassResults[root]) == 0 {
			delete(c.outputEqClassResults, root)
		}
	}
	delete(c.resultOutputEqClasses, res.id)
	for _, d := range c.resultIndexedDigests[res.id] {
		delete(c.egraphResultsByDigest[d], res.id)
		if len(c.egraphResultsByDigest[d]) == 0 {
			delete(c.egraphResultsByDigest, d)
		}
	}
	delete(c.resultIndexedDigests, res.id)
	for termID := range c.resultTerms[res.id] {
		delete(c.termResults[termID], res.id)
	}
	delete(c.resultTerms, res.id)
	delete(c.persistedEdgesByResult, res.id)
}
