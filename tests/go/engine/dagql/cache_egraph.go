// The e-graph index of completed results. Every completed call becomes a term
// (self digest + equivalence classes of its inputs) pointing at its sharedResult;
// digests that are known to denote the same value share an equivalence class.
//
// lookupCacheForID is called through lookupLocked (lookup_probe.go /
// lookup_probe_renamed.go): with build tag renamedprobe it is unreferenced, so the
// linker drops it, and a copy named lookupCacheForIDRenamed runs instead (an engine
// build "with a probe missing").

package dagql

import (
	"context"
	"sort"
	"sync/atomic"

	"github.com/dagger/dagger/dagql/call"
)

// egraphTerm is one completed call. Size 104.
type egraphTerm struct {
	id                 egraphTermID       // 0
	selfDigest         call.Digest        // 8
	inputEqIDs         []eqClassID        // 24
	outputEqID         eqClassID          // 48
	termDigest         string             // 56
	outputExtraDigests []call.ExtraDigest // 72
	result             *sharedResult      // 96
}

type eqClassID int64

type egraphTermID int64

type termSet = map[egraphTermID]struct{}

func setAdd[K comparable](m map[K]termSet, k K, id egraphTermID) {
	set := m[k]
	if set == nil {
		set = termSet{}
		m[k] = set
	}
	set[id] = struct{}{}
}

func setRemove[K comparable](m map[K]termSet, k K, id egraphTermID) {
	set := m[k]
	if set == nil {
		return
	}
	delete(set, id)
	if len(set) == 0 {
		delete(m, k)
	}
}

// pad:147
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *cache) findEqClassLocked(id eqClassID) eqClassID {
	for int(id) < len(c.egraphParents) && c.egraphParents[id] != id {
		c.egraphParents[id] = c.egraphParents[c.egraphParents[id]]
		id = c.egraphParents[id]
	}
	return id
}

// ensureEqClassForDigestLocked returns the (root) class of a digest, creating a
// singleton class for a digest seen for the first time.
func (c *cache) ensureEqClassForDigestLocked(dig string) eqClassID {
	if id, ok := c.egraphDigestToClass[dig]; ok {
		return c.findEqClassLocked(id)
	}
	id := c.nextEgraphClassID
	c.nextEgraphClassID++
	for eqClassID(len(c.egraphParents)) <= id {
		c.egraphParents = append(c.egraphParents, eqClassID(len(c.egraphParents)))
		c.egraphRanks = append(c.egraphRanks, 0)
	}
	c.egraphParents[id] = id
	c.egraphRanks[id] = 0
	c.egraphDigestToClass[dig] = id
	return id
}

// mergeEqClassesLocked unions two classes (by rank) and rebuilds the digests of
// terms whose inputs referred to the losing root.
func (c *cache) mergeEqClassesLocked(a, b eqClassID) eqClassID {
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
	for id := range c.egraphClassTerms[b] {
		setAdd(c.egraphClassTerms, a, id)
	}
	delete(c.egraphClassTerms, b)
	c.rebuildTermsLocked(b, a)
	return a
}

// rebuildTermsLocked re-keys terms that have `from` as an input class.
func (c *cache) rebuildTermsLocked(from, to eqClassID) {
	for id, term := range c.egraphTerms {
		changed := false
		for i, in := range term.inputEqIDs {
			if in == from {
				term.inputEqIDs[i] = to
				changed = true
			}
		}
		if term.outputEqID == from {
			term.outputEqID = to
		}
		if !changed {
			continue
		}
		setRemove(c.egraphTermsByDigest, term.termDigest, id)
		term.termDigest = calcEgraphTermDigest(term.selfDigest, term.inputEqIDs)
		setAdd(c.egraphTermsByDigest, term.termDigest, id)
	}
}

// calcEgraphTermDigest digests (self digest, input classes).
func calcEgraphTermDigest(self call.Digest, inputEqIDs []eqClassID) string {
	parts := make([]string, 0, len(inputEqIDs)+2)
	parts = append(parts, "term", string(self))
	for _, in := range inputEqIDs {
		parts = append(parts, itoa64(int64(in)))
	}
	return string(call.HashString(parts...))
}

func itoa64(v int64) string {
	if v == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	neg := v < 0
	if neg {
		v = -v
	}
	for v > 0 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		buf[i] = '-'
	}
	return string(buf[i:])
}

// pad:336
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *cache) firstLiveTermInSetLocked(set termSet) *egraphTerm {
	var best *egraphTerm
	for id := range set {
		term := c.egraphTerms[id]
		if term == nil || term.result == nil || atomic.LoadInt64(&term.result.refCount) <= 0 {
			continue
		}
		if best == nil || term.id < best.id {
			best = term
		}
	}
	return best
}

// pad:401
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// lookupCacheForID finds a live result for id: first structurally, by its term
// (self digest, input eqSet IDs), then by content: a result whose output digests
// include one of id's extra digests. A hit takes a ref.
//
// This method assumes egraphMu is already held by the caller.
func (c *cache) lookupCacheForID(
	ctx context.Context,
	id *call.ID,
) (AnyResult, bool, error) {
	// (self digest, input eqSet IDs) -> term digest
	selfDigest := id.SelfDigest()
	inputs := id.Inputs()
	inputEqIDs := make([]eqClassID, 0, len(inputs))
	structural := true
	for _, in := range inputs {
		classID, ok := c.egraphDigestToClass[string(in)]
		if !ok {
			// an input never seen: no term can match
			structural = false
			break
		}
		inputEqIDs = append(inputEqIDs, c.findEqClassLocked(classID))
	}

	var hitTerm *egraphTerm
	if structural {
		termDigest := calcEgraphTermDigest(selfDigest, inputEqIDs)
		hitTerm = c.firstLiveTermInSetLocked(c.egraphTermsByDigest[termDigest])
	}

	// pad:440
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	//
	contentHit := false
	if hitTerm == nil {
		// fallback: a result whose output digests include an extra digest of id
		for _, extra := range id.ExtraDigests() {
			// pad:445
			outputTerms := c.egraphTermsByOutputDigest[string(extra.Digest)]
			if term := c.firstLiveTermInSetLocked(outputTerms); term != nil {
				hitTerm = term
				contentHit = true
				break
			}
		}
	}
	if hitTerm == nil {
		return nil, false, nil
	}

	res := hitTerm.result
	// the caller gets its own ref; it is dropped by (*sharedResult).release
	// pad:460
	atomic.AddInt64(&res.refCount, 1)

	if tr := callTraceFrom(ctx); tr != nil {
		if contentHit {
			tr.setPath("hit_content")
		} else {
			tr.setPath("hit")
		}
	}

	// pad:476
	//
	//
	//
	//
	// the returned ID keeps the request's recipe plus the hit term's extra digests
	retID := id
	for _, extra := range hitTerm.outputExtraDigests {
		retID = retID.WithExtraDigest(extra)
	}

	ret, err := res.toResult(retID, true)
	if err != nil {
		atomic.AddInt64(&res.refCount, -1)
		return nil, false, err
	}
	return ret, true, nil
}

// pad:546
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *cache) indexWaitResultInEgraphLocked(
	requestID *call.ID,
	requestSelf call.Digest,
	requestInputs []call.Digest,
	res *sharedResult,
	resWasCacheBacked bool,
) {
	inputEqIDs := make([]eqClassID, len(requestInputs))
	for i, in := range requestInputs {
		inputEqIDs[i] = c.ensureEqClassForDigestLocked(string(in))
	}

	outputEq := c.ensureEqClassForDigestLocked(string(requestID.Digest()))
	if res.outputDigest != "" && res.outputDigest != requestID.Digest() {
		// the call returned a result with another recipe: both digests denote it
		outputEq = c.mergeEqClassesLocked(outputEq, c.ensureEqClassForDigestLocked(string(res.outputDigest)))
		for i := range inputEqIDs {
			inputEqIDs[i] = c.findEqClassLocked(inputEqIDs[i])
		}
	}

	term := &egraphTerm{
		id:                 c.nextEgraphTermID,
		selfDigest:         requestSelf,
		inputEqIDs:         inputEqIDs,
		outputEqID:         outputEq,
		termDigest:         calcEgraphTermDigest(requestSelf, inputEqIDs),
		outputExtraDigests: res.outputExtraDigests,
		result:             res,
	}
	c.nextEgraphTermID++

	c.egraphTerms[term.id] = term
	setAdd(c.egraphTermsByDigest, term.termDigest, term.id)
	setAdd(c.egraphClassTerms, outputEq, term.id)
	setAdd(c.egraphTermsByOutputDigest, string(res.outputDigest), term.id)
	for _, extra := range res.outputExtraDigests {
		setAdd(c.egraphTermsByOutputDigest, string(extra.Digest), term.id)
	}
	setAdd(c.egraphResultTerms, res, term.id)

	if resWasCacheBacked {
		// the value was itself a cached result: also index it under the request's
		// own digest, so both recipes reach the same shared result
		setAdd(c.egraphTermsByOutputDigest, string(requestID.Digest()), term.id)
	}
}

// pad:671
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (c *cache) removeResultFromEgraphLocked(res *sharedResult) {
	termIDs := make([]egraphTermID, 0, len(c.egraphResultTerms[res]))
	for id := range c.egraphResultTerms[res] {
		termIDs = append(termIDs, id)
	}
	sort.Slice(termIDs, func(i, j int) bool { return termIDs[i] < termIDs[j] })
	for _, id := range termIDs {
		term := c.egraphTerms[id]
		if term == nil {
			continue
		}
		setRemove(c.egraphTermsByDigest, term.termDigest, id)
		setRemove(c.egraphClassTerms, c.findEqClassLocked(term.outputEqID), id)
		setRemove(c.egraphTermsByOutputDigest, string(res.outputDigest), id)
		for _, extra := range term.outputExtraDigests {
			setRemove(c.egraphTermsByOutputDigest, string(extra.Digest), id)
		}
		delete(c.egraphTerms, id)
		term.result = nil
	}
	delete(c.egraphResultTerms, res)
	res.hasResultTerm = false
}
