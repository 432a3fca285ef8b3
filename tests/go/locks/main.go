// Command locks produces known sync.Mutex and sync.RWMutex contention, one scenario at a
// time, and writes the ground truth a lock-contention tracer's output is compared to.
//
// A contended acquisition is a Lock or RLock call that finds the lock held and takes the
// slow path: sync.(*Mutex).lockSlow (internal/sync on Go >= 1.24) and a semacquire, or, for
// an RWMutex, a semacquire on its reader semaphore (RLock behind a writer) or on its writer
// semaphore (Lock waiting for readers). Every round runs three scenarios, one after the
// other, on two heap-allocated locks that stay the same for the whole run:
//
//   - mutex: a holder goroutine locks the Mutex, then W waiters call main.waitMutex, which
//     calls Lock. Once all of them are parked the holder unlocks, and the waiters get the
//     lock one after another, each keeping it 5 ms. Each acquisition was released by the
//     goroutine that held the lock just before it (the holder, for the first).
//   - rwmutex_read: a writer goroutine holds Lock; W readers call main.waitRead, which calls
//     RLock and waits on the reader semaphore. Once all are parked the writer unlocks,
//     which releases every one of them; each keeps its read lock 5 ms.
//   - rwmutex_write: W readers hold RLock; a writer calls main.waitWrite, which calls Lock
//     and waits for the readers on the writer semaphore. Once it is parked the readers
//     RUnlock one at a time, 20 ms apart, in the order they locked: the last one releases
//     the writer, which keeps the lock 5 ms.
//
// Parking is checked, not assumed: the program polls runtime.Stack(all) until every waiter
// is in the expected wait state (sync.Mutex.Lock, sync.RWMutex.RLock, sync.RWMutex.Lock;
// "semacquire" on Go 1.19) with the expected frame on its stack, and it also keeps every
// waiter blocked for at least -hold. If they have not parked within 30 s it prints the dump
// on stderr and exits 1.
//
// Nothing else ever touches these two locks; the program coordinates its goroutines with
// channels only (no WaitGroup, no other sync lock). For noise, two background goroutines
// lock and unlock a private Mutex each in a loop for the whole run: those are never
// contended, so there is no truth about them.
//
// Flags:
//
//	-truth FILE    write the ground truth here at the end (atomically: FILE.tmp, then rename)
//	-gate FILE     start gate: print "waiting" on stdout, then poll (every 1 ms) until FILE
//	               exists; only then run the rounds. Without -gate it starts at once.
//	-rounds N      rounds (default 3)
//	-waiters W     waiters per scenario (default 3, at least 1)
//	-hold D        the least time a scenario's waiters stay blocked (default 100ms)
//
// Stdout: "waiting" (only with -gate); once the rounds start, "mutex 0x<addr>" and
// "rwmutex 0x<addr>"; and "done" once the truth file is written (then it exits 0).
//
// The truth file has one JSON line per contended acquisition, N*(2W+1) in all, round by
// round and scenario by scenario (mutex waiters in the order they got the lock; addresses
// and goroutine ids are numbers):
//
//	{"kind":"contended","lock":"mutex","addr":A,"type":"mutex","waiter":G,"released_by":R,"func":"main.waitMutex"}
//	{"kind":"contended","lock":"rwmutex","addr":A,"type":"rwmutex_read","waiter":G,"released_by":R,"func":"main.waitRead"}
//	{"kind":"contended","lock":"rwmutex","addr":A,"type":"rwmutex","waiter":G,"released_by":R,"func":"main.waitWrite"}
//
// followed by one line per lock:
//
//	{"kind":"lock","lock":"mutex","addr":A}
//	{"kind":"lock","lock":"rwmutex","addr":A}
//
// The holder's Lock, the writer's Lock in rwmutex_read and the readers' RLock in
// rwmutex_write are uncontended: they have no truth line.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// contended is the truth about one contended acquisition.
type contended struct {
	Kind       string  `json:"kind"`
	Lock       string  `json:"lock"`
	Addr       uintptr `json:"addr"`
	Type       string  `json:"type"`
	Waiter     uint64  `json:"waiter"`
	ReleasedBy uint64  `json:"released_by"`
	Func       string  `json:"func"`
}

// lockInfo names one of the two locks.
type lockInfo struct {
	Kind string  `json:"kind"`
	Lock string  `json:"lock"`
	Addr uintptr `json:"addr"`
}

// How long a waiter keeps the lock once it has it, and the gap between the readers'
// RUnlocks in the rwmutex_write scenario.
const (
	keep      = 5 * time.Millisecond
	unlockGap = 20 * time.Millisecond
)

var (
	waiters int
	hold    time.Duration
	truth   []contended // only the main goroutine touches it
)

// goid returns the current goroutine's id, from the "goroutine N [" header.
func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		panic("cannot parse goroutine id from " + string(buf[:n]))
	}
	return id
}

// The functions that make the contended calls: the tracer reports them as the caller.

//go:noinline
func waitMutex(mu *sync.Mutex) {
	mu.Lock()
}

//go:noinline
func waitRead(rw *sync.RWMutex) {
	rw.RLock()
}

//go:noinline
func waitWrite(rw *sync.RWMutex) {
	rw.Lock()
}

// noise locks and unlocks its own Mutex forever; nobody else ever sees that Mutex.
func noise(seed int) {
	private := new(sync.Mutex)
	n := seed
	for i := 1; ; i++ {
		private.Lock()
		n = n*31 + i
		private.Unlock()
		if i%4096 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// mutexRound runs the "mutex" scenario once.
func mutexRound(mu *sync.Mutex) {
	// holders lists the goroutines that held mu, in order; only read or written under mu.
	var holders []uint64
	held := make(chan struct{})
	release := make(chan struct{})
	finished := make(chan struct{}, waiters+1)

	go func() {
		mu.Lock()
		holders = append(holders, goid())
		held <- struct{}{}
		<-release
		mu.Unlock()
		finished <- struct{}{}
	}()
	<-held
	since := time.Now()

	ids := make(chan uint64, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			id := goid()
			ids <- id
			waitMutex(mu)
			holders = append(holders, id)
			time.Sleep(keep)
			mu.Unlock()
			finished <- struct{}{}
		}()
	}
	blocked := receiveAll(ids)
	waitParked(blocked, []string{"sync.Mutex.Lock", "semacquire"}, "main.waitMutex", "lockSlow")
	sleepUntil(since.Add(hold))

	close(release)
	for i := 0; i <= waiters; i++ {
		<-finished
	}
	// Every goroutine is done with mu: holders can be read without it.
	if len(holders) != waiters+1 {
		fail(fmt.Sprintf("mutex: %d holders, want %d", len(holders), waiters+1))
	}
	for i := 1; i < len(holders); i++ {
		truth = append(truth, contended{
			Kind: "contended", Lock: "mutex", Addr: uintptr(unsafe.Pointer(mu)), Type: "mutex",
			Waiter: holders[i], ReleasedBy: holders[i-1], Func: "main.waitMutex",
		})
	}
}

// readRound runs the "rwmutex_read" scenario once.
func readRound(rw *sync.RWMutex) {
	writer := make(chan uint64)
	release := make(chan struct{})
	finished := make(chan struct{}, waiters+1)

	go func() {
		rw.Lock()
		writer <- goid()
		<-release
		rw.Unlock()
		finished <- struct{}{}
	}()
	writerID := <-writer
	since := time.Now()

	ids := make(chan uint64, waiters)
	got := make(chan uint64, waiters)
	for i := 0; i < waiters; i++ {
		go func() {
			id := goid()
			ids <- id
			waitRead(rw)
			got <- id
			time.Sleep(keep)
			rw.RUnlock()
			finished <- struct{}{}
		}()
	}
	blocked := receiveAll(ids)
	waitParked(blocked, []string{"sync.RWMutex.RLock", "semacquire"}, "main.waitRead")
	sleepUntil(since.Add(hold))

	close(release)
	for _, id := range receiveAll(got) {
		truth = append(truth, contended{
			Kind: "contended", Lock: "rwmutex", Addr: uintptr(unsafe.Pointer(rw)), Type: "rwmutex_read",
			Waiter: id, ReleasedBy: writerID, Func: "main.waitRead",
		})
	}
	for i := 0; i <= waiters; i++ {
		<-finished
	}
}

// writeRound runs the "rwmutex_write" scenario once.
func writeRound(rw *sync.RWMutex) {
	// Start the readers one at a time, so their order is known.
	readers := make([]uint64, waiters)
	releases := make([]chan struct{}, waiters)
	unlocked := make(chan struct{})
	for i := range readers {
		locked := make(chan uint64)
		releases[i] = make(chan struct{})
		go func(release <-chan struct{}) {
			rw.RLock()
			locked <- goid()
			<-release
			rw.RUnlock()
			unlocked <- struct{}{}
		}(releases[i])
		readers[i] = <-locked
	}
	since := time.Now()

	writer := make(chan uint64, 1)
	finished := make(chan struct{})
	go func() {
		writer <- goid()
		waitWrite(rw)
		time.Sleep(keep)
		rw.Unlock()
		close(finished)
	}()
	writerID := <-writer
	waitParked([]uint64{writerID}, []string{"sync.RWMutex.Lock", "semacquire"}, "main.waitWrite")
	sleepUntil(since.Add(hold))

	for i, release := range releases {
		if i > 0 {
			time.Sleep(unlockGap)
		}
		release <- struct{}{}
		<-unlocked
	}
	<-finished
	truth = append(truth, contended{
		Kind: "contended", Lock: "rwmutex", Addr: uintptr(unsafe.Pointer(rw)), Type: "rwmutex",
		Waiter: writerID, ReleasedBy: readers[len(readers)-1], Func: "main.waitWrite",
	})
}

// receiveAll receives one value per waiter.
func receiveAll(ch <-chan uint64) []uint64 {
	out := make([]uint64, waiters)
	for i := range out {
		out[i] = <-ch
	}
	return out
}

func sleepUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d)
	}
}

func dumpAll() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitParked polls runtime.Stack(all) until each goroutine in ids waits in one of the given
// states (the wait reason, before any ", N minutes") with every one of frames somewhere in
// its stack text.
func waitParked(ids []uint64, states []string, frames ...string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		dump := dumpAll()
		ok := true
		for _, id := range ids {
			if !parked(dump, id, states, frames) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			os.Stderr.Write(dump)
			fail(fmt.Sprintf("goroutines %v did not park in %v with %v", ids, states, frames))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func parked(dump []byte, id uint64, states, frames []string) bool {
	head := []byte(fmt.Sprintf("goroutine %d [", id))
	i := bytes.Index(dump, head)
	if i < 0 {
		return false
	}
	block := dump[i+len(head):]
	if end := bytes.Index(block, []byte("\n\n")); end >= 0 {
		block = block[:end]
	}
	state := block[:bytes.IndexByte(block, ']')]
	if comma := bytes.IndexByte(state, ','); comma >= 0 {
		state = state[:comma]
	}
	known := false
	for _, s := range states {
		if string(state) == s {
			known = true
		}
	}
	if !known {
		return false
	}
	for _, f := range frames {
		if !bytes.Contains(block, []byte(f)) {
			return false
		}
	}
	return true
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "locks:", msg)
	os.Exit(1)
}

func main() {
	truthPath := flag.String("truth", "", "write ground truth JSON lines here at the end")
	gate := flag.String("gate", "", "print \"waiting\", then wait until this file exists")
	rounds := flag.Int("rounds", 3, "rounds of the three scenarios")
	flag.IntVar(&waiters, "waiters", 3, "waiters per scenario")
	flag.DurationVar(&hold, "hold", 100*time.Millisecond, "least time the waiters stay blocked")
	linger := flag.Duration("linger", 0, "stay alive this long after \"done\" (for scrapes of a finished workload)")
	flag.Parse()
	if waiters < 1 || *rounds < 0 || hold < 0 {
		fmt.Fprintln(os.Stderr, "locks: need -waiters >= 1, -rounds >= 0, -hold >= 0")
		os.Exit(2)
	}

	mu := new(sync.Mutex)
	rw := new(sync.RWMutex)
	go noise(1)
	go noise(2)

	if *gate != "" {
		fmt.Println("waiting")
		for {
			if _, err := os.Stat(*gate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}

	fmt.Printf("mutex %#x\n", uintptr(unsafe.Pointer(mu)))
	fmt.Printf("rwmutex %#x\n", uintptr(unsafe.Pointer(rw)))
	for r := 0; r < *rounds; r++ {
		mutexRound(mu)
		readRound(rw)
		writeRound(rw)
	}

	if *truthPath != "" {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		for _, c := range truth {
			enc.Encode(c)
		}
		enc.Encode(lockInfo{"lock", "mutex", uintptr(unsafe.Pointer(mu))})
		enc.Encode(lockInfo{"lock", "rwmutex", uintptr(unsafe.Pointer(rw))})
		writeAtomic(*truthPath, out.Bytes())
	}
	fmt.Println("done")
	time.Sleep(*linger)
}

func writeAtomic(path string, data []byte) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		panic(err)
	}
}
