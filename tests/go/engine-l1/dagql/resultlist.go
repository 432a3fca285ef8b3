package dagql

import "container/list"

// resultList is an insertion-ordered set of results indexed under one key.
type resultList struct {
	l   *list.List
	idx map[*sharedResult]*list.Element
}

func newResultList() *resultList {
	return &resultList{l: list.New(), idx: make(map[*sharedResult]*list.Element)}
}

func (rl *resultList) first() *sharedResult {
	if rl == nil || rl.l == nil || rl.l.Len() == 0 {
		return nil
	}
	return rl.l.Front().Value.(*sharedResult)
}

// add appends res unless it is already in the list. Not inlined (as in the real
// engine, where its cost is 106): the index-insertion probe point.
func (rl *resultList) add(res *sharedResult) {
	if rl == nil || rl.l == nil || res == nil {
		return
	}
	if _, dup := rl.idx[res]; dup {
		return
	}
	el := rl.l.PushBack(res)
	rl.idx[res] = el
}

func (rl *resultList) remove(res *sharedResult) {
	if rl == nil || rl.l == nil || res == nil {
		return
	}
	el, ok := rl.idx[res]
	if !ok {
		return
	}
	rl.l.Remove(el)
	delete(rl.idx, res)
}

func (rl *resultList) empty() bool { return rl == nil || rl.l == nil || rl.l.Len() == 0 }

func (rl *resultList) len() int {
	if rl == nil || rl.l == nil {
		return 0
	}
	return rl.l.Len()
}
