// Command funcs is the target program for the tracer's `funcs` mode tests.
//
// It records its own ground truth about every call of its traced functions and
// writes it as JSON lines to the file named by -truth. Standard library only;
// builds with every Go toolchain from 1.19 on (go.mod says `go 1.19`).
//
// Stdout carries exactly one line, printed at the end: `funcs: done calls=<total>`
// where <total> is the number of "call" records (all traced functions). Diagnostics
// and totals go to stderr.
//
// # Flags
//
//	-mode basic|stress|spin   (default basic)
//	-truth FILE               ground-truth file (JSON lines); none written if empty
//	-goroutines N             worker goroutines (default 4; basic and stress)
//	-calls K                  main.add9 calls per goroutine (default 100; basic)
//	-leafcalls L              main.leaf calls per goroutine (default 10; basic)
//	-depth D                  main.recurse depth (default 2000; stress)
//	-rounds R                 rounds per goroutine (default 10; stress)
//	-start-delay DUR          sleep before the first traced call (default 0; all modes)
//	-seconds S                spin: stop after S seconds (default 0 = run until SIGINT/SIGTERM)
//	-interval DUR             spin: sleep between calls (default 10ms)
//
// # Traced functions (names are stable; all //go:noinline)
//
// Prologues below are as compiled by Go 1.19 to 1.27 on amd64. After the stack check,
// Go 1.21+ sets up the frame with `PUSHQ BP; MOVQ SP, BP; SUBQ $n, SP`; Go 1.19/1.20 with
// `SUBQ $n, SP; MOVQ BP, n-8(SP); LEAQ n-8(SP), BP` (no PUSHQ).
//
//	main.add9(a1, ..., a9 int) int        framed, small frame: prologue `CMPQ SP, 0x10(R14)`.
//	                                      ret = a1*1 + a2*2 + ... + a9*9
//	main.leaf(x int) int                  frameless leaf, no stack check. ret = 3*x + 1
//	main.recurse(depth, pad int, r *recorder) int
//	                                      frame > 4 KiB (8*600 bytes of locals): the big-frame
//	                                      stack check `MOVQ SP, R12; SUBQ $n, R12; JB;
//	                                      CMPQ R12, 0x10(R14); JBE`; recursion to depth 0 grows the goroutine
//	                                      stack (copystack) many times. Only depth and pad are
//	                                      recorded as args (the pointer is not).
//	main.mayPanic(n, mode int, r *recorder) int
//	                                      medium frame (512 bytes of locals): the
//	                                      `LEAQ -x(SP), R12; CMPQ R12, 0x10(R14)` stack check.
//	                                      Recurses to n == 0; there it panics if mode == 1,
//	                                      otherwise returns. ret = (n+1) + v0 where v0 is the
//	                                      bottom's value; record args [n, mode].
//	main.catcher(n int, r *recorder) error
//	                                      calls mayPanic(n, 1), recovers the panic in a deferred
//	                                      closure and returns normally (err != nil). Frame
//	                                      > 128 bytes: the LEAQ/R12 stack check.
//
// main.shield(n int, r *recorder) bool is NOT traced/recorded: it calls mayPanic(n, 1)
// and recovers in its own deferred closure (panics recovered in an untraced frame).
//
// # Truth file schema (one JSON object per line)
//
// First line, always (in spin mode written and flushed at start-up):
//
//	{"kind":"start","mode":"basic|stress|spin","pid":<int>,"go_version":"go1.26.6"}
//
// Then one line per call of a traced function, in this order: grouped by goroutine
// (in goroutine start order), each group in entry order (seq ascending). In spin mode
// each call line is appended and flushed right after the call returns.
//
//	{"kind":"call",
//	 "func":"main.add9",            // main.add9 | main.leaf | main.recurse | main.mayPanic | main.catcher
//	 "goid":<int>,                  // goroutine id ("goroutine N [" of runtime.Stack)
//	 "seq":<int>,                   // entry order within this goroutine, from 0 (shared by all funcs)
//	 "args":[<int>...],             // integer args in register order (add9: 9, leaf: 1,
//	                                //   recurse: [depth,pad], mayPanic: [n,mode], catcher: [n])
//	 "ret":<int>|null,              // integer result; null when unwound or for catcher
//	 "returned":true|false,         // false = frame was unwound by a panic (never reached its RET)
//	 "recovered":true,              // only on main.catcher records whose deferred recover fired
//	 "err":"...",                   // only on main.catcher records: the returned error text
//	 "t_ns":<int>}                  // wall clock (UnixNano) at entry
//
// Last line (missing only if the process was killed by SIGKILL):
//
//	{"kind":"end","mode":"...","total":<int>,
//	 "calls":{"main.add9":<int>,...},      // records per function
//	 "unwound":{"main.mayPanic":<int>,...}, // records with returned=false per function
//	 "goids":[<int>...]}                    // goroutine ids of the workers, in record order
//
// Counts with default flags: basic = 4*100 add9 + 4*10 leaf = 440 records.
// stress = per goroutine and round: catcher(3+round%5) -> 1 catcher + (n+1) unwound mayPanic;
// mayPanic(2+round%3, 0) -> n+1 returned mayPanic; shield(2+round%4) -> n+1 unwound
// mayPanic; and on rounds 0, 5, 10, ...: recurse(depth) -> depth+1 returned recurse.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ---------------------------------------------------------------- recording

type record struct {
	Kind      string  `json:"kind"`
	Func      string  `json:"func"`
	Goid      int64   `json:"goid"`
	Seq       int64   `json:"seq"`
	Args      []int64 `json:"args"`
	Ret       *int64  `json:"ret"`
	Returned  bool    `json:"returned"`
	Recovered bool    `json:"recovered,omitempty"`
	Err       *string `json:"err,omitempty"`
	TNs       int64   `json:"t_ns"`
}

// recorder holds the records of one goroutine; it is only touched by that goroutine.
type recorder struct {
	goid int64
	seq  int64
	recs []record
}

var (
	recordersMu sync.Mutex
	recorders   []*recorder
)

func newRecorder() *recorder {
	r := &recorder{goid: curGoid()}
	recordersMu.Lock()
	recorders = append(recorders, r)
	recordersMu.Unlock()
	return r
}

func (r *recorder) enter(fn string, args ...int64) int {
	a := make([]int64, len(args))
	copy(a, args)
	r.recs = append(r.recs, record{Kind: "call", Func: fn, Goid: r.goid, Seq: r.seq, Args: a, TNs: time.Now().UnixNano()})
	r.seq++
	return len(r.recs) - 1
}

func (r *recorder) exit(i int, returned bool, ret int) {
	rec := &r.recs[i]
	rec.Returned = returned
	if returned {
		v := int64(ret)
		rec.Ret = &v
	}
}

func curGoid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		panic("cannot parse goroutine id from runtime.Stack: " + err.Error())
	}
	return id
}

// ---------------------------------------------------------------- traced functions

var sinkV int

//go:noinline
func sink(x int) int {
	sinkV = x
	return x
}

//go:noinline
func add9(a1, a2, a3, a4, a5, a6, a7, a8, a9 int) int {
	s := a1 + 2*a2 + 3*a3 + 4*a4 + 5*a5 + 6*a6 + 7*a7 + 8*a8 + 9*a9
	return sink(s)
}

//go:noinline
func leaf(x int) int {
	return 3*x + 1
}

//go:noinline
func touch(b []int, v int) int {
	n := len(b)
	b[(v%n+n)%n] = v
	b[((v*7)%n+n)%n] += 3
	return b[(v%n+n)%n] + b[((v*7)%n+n)%n]
}

//go:noinline
func recurse(depth, pad int, r *recorder) (ret int) {
	i := r.enter("main.recurse", int64(depth), int64(pad))
	done := false
	defer func() { r.exit(i, done, ret) }()
	var buf [600]int
	v := touch(buf[:], depth+pad)
	if depth <= 0 {
		ret = v % 1000
		done = true
		return
	}
	ret = recurse(depth-1, pad, r) + buf[depth%600]%3
	done = true
	return
}

type stressPanic struct{ n int }

func (p stressPanic) String() string { return fmt.Sprintf("stress panic at n=%d", p.n) }

//go:noinline
func mayPanic(n, mode int, r *recorder) (ret int) {
	i := r.enter("main.mayPanic", int64(n), int64(mode))
	done := false
	defer func() { r.exit(i, done, ret) }()
	var buf [64]int
	v := touch(buf[:], n)
	if n <= 0 {
		if mode == 1 {
			panic(stressPanic{n})
		}
		ret = v
		done = true
		return
	}
	ret = mayPanic(n-1, mode, r) + 1
	done = true
	return
}

//go:noinline
func catcher(n int, r *recorder) (err error) {
	i := r.enter("main.catcher", int64(n))
	done := false
	recovered := false
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("recovered: %v", p)
			recovered = true
		}
		rec := &r.recs[i]
		rec.Returned = done || recovered
		rec.Recovered = recovered
		if rec.Returned {
			s := "<nil>"
			if err != nil {
				s = err.Error()
			}
			rec.Err = &s
		}
	}()
	sinkV = mayPanic(n, 1, r)
	done = true
	return nil
}

// shield is deliberately not recorded: it is the "untraced" recovering frame.
//
//go:noinline
func shield(n int, r *recorder) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = true
		}
	}()
	sinkV = mayPanic(n, 1, r)
	return false
}

// ---------------------------------------------------------------- modes

func argsFor(g, c int) [9]int {
	var a [9]int
	base := (g+1)*1000000 + c*10
	for j := 0; j < 8; j++ {
		a[j] = base + j + 1
	}
	a[8] = -(base + 9)
	return a
}

func callAdd9(r *recorder, g, c int) {
	a := argsFor(g, c)
	i := r.enter("main.add9", int64(a[0]), int64(a[1]), int64(a[2]), int64(a[3]), int64(a[4]), int64(a[5]), int64(a[6]), int64(a[7]), int64(a[8]))
	ret := add9(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])
	r.exit(i, true, ret)
}

func runBasic(goroutines, calls, leafCalls int) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	var ready sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		ready.Add(1)
		go func(g int) {
			defer wg.Done()
			r := newRecorder()
			ready.Done()
			<-start
			for c := 0; c < calls; c++ {
				callAdd9(r, g, c)
			}
			for c := 0; c < leafCalls; c++ {
				x := (g+1)*1000 + c
				i := r.enter("main.leaf", int64(x))
				ret := leaf(x)
				r.exit(i, true, ret)
			}
		}(g)
	}
	ready.Wait()
	close(start)
	wg.Wait()
}

func runStress(goroutines, depth, rounds int) {
	stop := make(chan struct{})
	var gcDone sync.WaitGroup
	gcDone.Add(1)
	go func() { // GC pressure
		defer gcDone.Done()
		var keep [][]byte
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			keep = append(keep, make([]byte, 1024+i%4096))
			if len(keep) > 2000 {
				keep = nil
			}
			if i%500 == 0 {
				runtime.GC()
			}
			if i%50 == 0 {
				runtime.Gosched()
			}
		}
	}()

	var wg sync.WaitGroup
	start := make(chan struct{})
	var ready sync.WaitGroup
	var shielded int64
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		ready.Add(1)
		go func(g int) {
			defer wg.Done()
			r := newRecorder()
			ready.Done()
			<-start
			for round := 0; round < rounds; round++ {
				if round%5 == 0 {
					sinkV = recurse(depth, g*1000+round, r)
				}
				if err := catcher(3+round%5, r); err == nil {
					panic("catcher returned nil error")
				}
				sinkV = mayPanic(2+round%3, 0, r)
				if !shield(2+round%4, r) {
					panic("shield did not recover")
				}
				atomic.AddInt64(&shielded, 1)
				// keep some garbage of our own alive across a GC
				junk := make([]int, 256+round)
				sinkV = len(junk)
			}
		}(g)
	}
	ready.Wait()
	close(start)
	wg.Wait()
	close(stop)
	gcDone.Wait()
}

type output struct {
	f    *os.File
	mode string
}

func (o *output) write(v interface{}) {
	if o.f == nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	b = append(b, '\n')
	if _, err := o.f.Write(b); err != nil {
		fmt.Fprintf(os.Stderr, "funcs: write truth: %v\n", err)
		os.Exit(1)
	}
}

type startRec struct {
	Kind      string `json:"kind"`
	Mode      string `json:"mode"`
	Pid       int    `json:"pid"`
	GoVersion string `json:"go_version"`
}

type endRec struct {
	Kind    string         `json:"kind"`
	Mode    string         `json:"mode"`
	Total   int            `json:"total"`
	Calls   map[string]int `json:"calls"`
	Unwound map[string]int `json:"unwound"`
	Goids   []int64        `json:"goids"`
}

func summarize(mode string, recs []record, goids []int64) endRec {
	e := endRec{Kind: "end", Mode: mode, Total: len(recs), Calls: map[string]int{}, Unwound: map[string]int{}, Goids: goids}
	if e.Goids == nil {
		e.Goids = []int64{}
	}
	for _, r := range recs {
		e.Calls[r.Func]++
		if !r.Returned {
			e.Unwound[r.Func]++
		}
	}
	return e
}

func printTotals(e endRec) {
	names := make([]string, 0, len(e.Calls))
	for k := range e.Calls {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(os.Stderr, "funcs: %s calls=%d unwound=%d\n", k, e.Calls[k], e.Unwound[k])
	}
}

func main() {
	mode := flag.String("mode", "basic", "basic | stress | spin")
	truth := flag.String("truth", "", "ground-truth JSON-lines file")
	goroutines := flag.Int("goroutines", 4, "worker goroutines (basic, stress)")
	calls := flag.Int("calls", 100, "main.add9 calls per goroutine (basic)")
	leafCalls := flag.Int("leafcalls", 10, "main.leaf calls per goroutine (basic)")
	depth := flag.Int("depth", 2000, "main.recurse depth (stress)")
	rounds := flag.Int("rounds", 10, "rounds per goroutine (stress)")
	startDelay := flag.Duration("start-delay", 0, "sleep before the first traced call")
	seconds := flag.Float64("seconds", 0, "spin: stop after this many seconds (0 = until SIGINT/SIGTERM)")
	interval := flag.Duration("interval", 10*time.Millisecond, "spin: sleep between calls")
	flag.Parse()

	out := &output{mode: *mode}
	if *truth != "" {
		f, err := os.OpenFile(*truth, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "funcs: %v\n", err)
			os.Exit(2)
		}
		out.f = f
	}
	switch *mode {
	case "basic", "stress", "spin":
	default:
		fmt.Fprintf(os.Stderr, "funcs: unknown -mode %q\n", *mode)
		os.Exit(2)
	}
	out.write(startRec{Kind: "start", Mode: *mode, Pid: os.Getpid(), GoVersion: runtime.Version()})
	fmt.Fprintf(os.Stderr, "funcs: pid %d mode %s\n", os.Getpid(), *mode)

	if *startDelay > 0 {
		time.Sleep(*startDelay)
	}

	var total int
	switch *mode {
	case "basic", "stress":
		if *mode == "basic" {
			runBasic(*goroutines, *calls, *leafCalls)
		} else {
			runStress(*goroutines, *depth, *rounds)
		}
		var all []record
		var goids []int64
		recordersMu.Lock()
		for _, r := range recorders {
			all = append(all, r.recs...)
			goids = append(goids, r.goid)
		}
		recordersMu.Unlock()
		for i := range all {
			out.write(&all[i])
		}
		e := summarize(*mode, all, goids)
		out.write(e)
		printTotals(e)
		total = len(all)
	case "spin":
		total = runSpin(out, *seconds, *interval)
	}
	if out.f != nil {
		if err := out.f.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "funcs: close truth: %v\n", err)
			os.Exit(1)
		}
	}
	fmt.Printf("funcs: done calls=%d\n", total)
}

func runSpin(out *output, seconds float64, interval time.Duration) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var deadline <-chan time.Time
	if seconds > 0 {
		deadline = time.After(time.Duration(seconds * float64(time.Second)))
	}
	stop := make(chan struct{})
	done := make(chan []record)
	go func() {
		r := newRecorder()
		var all []record
		for c := 0; ; c++ {
			select {
			case <-stop:
				done <- all
				return
			default:
			}
			callAdd9(r, 0, c)
			rec := r.recs[len(r.recs)-1]
			r.recs = r.recs[:0]
			out.write(&rec)
			all = append(all, rec)
			time.Sleep(interval)
		}
	}()
	select {
	case s := <-sigs:
		fmt.Fprintf(os.Stderr, "funcs: got %v, stopping\n", s)
	case <-deadline:
	}
	close(stop)
	all := <-done
	var goids []int64
	recordersMu.Lock()
	for _, r := range recorders {
		goids = append(goids, r.goid)
	}
	recordersMu.Unlock()
	e := summarize("spin", all, goids)
	out.write(e)
	printTotals(e)
	return len(all)
}
