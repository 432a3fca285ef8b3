// Command sched is a scheduler-heavy benchmark target: it measures how fast goroutines hand
// work to each other over channels while other goroutines fight over a Mutex, so the same
// run can be timed with and without the tracer attached.
//
// The work runs in batches of at most 256 hand-offs per pair. Each batch starts, under one
// sync.WaitGroup made for that batch:
//
//   - P pairs of goroutines that play ping-pong with a counter over two unbuffered
//     channels: one sends it, the other receives it, adds one and sends it back, and so on.
//     Every hand-off parks one goroutine and readies the other. The batch's hand-offs are
//     shared out among the pairs; over all batches they add up to exactly N.
//   - 8 goroutines that lock one shared sync.Mutex (the same one for the whole run),
//     increment a counter and unlock, as many times in total as the batch has hand-offs.
//
// Main then waits on the WaitGroup and starts the next batch. At the end it checks both
// counters (each must be N; otherwise it exits 1).
//
// Flags:
//
//	-ops N        channel hand-offs in total (default 200000)
//	-pairs P      ping-pong pairs (default 64)
//	-gate FILE    start gate: if set, the program prints "waiting" on stdout and polls
//	              (every 1 ms) until FILE exists; only then does the work start. Without
//	              -gate it starts at once.
//	-duration D   run whole batches until D has passed, however many hand-offs that is
//	              (-ops is then ignored; for soak runs)
//
// Stdout gets one JSON line at the end (after "waiting", with -gate):
//
//	{"ops":N,"elapsed_ns":T,"ns_per_op":T/N,"go_version":"go1.26.6","pid":P}
//
// elapsed_ns covers the work after the gate only (monotonic clock).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"time"
)

const (
	perPair = 256 // most hand-offs one pair makes in a batch
	lockers = 8   // goroutines contending on the shared Mutex
)

type result struct {
	Ops       int     `json:"ops"`
	ElapsedNs int64   `json:"elapsed_ns"`
	NsPerOp   float64 `json:"ns_per_op"`
	GoVersion string  `json:"go_version"`
	Pid       int     `json:"pid"`
}

// volley receives the counter, adds one and passes it on, until it reaches k; it returns
// the counter's last value, which is k.
func volley(k int, in <-chan int, out chan<- int) int {
	for {
		v := <-in
		if v == k {
			return v
		}
		out <- v + 1
		if v+1 == k {
			return v + 1
		}
	}
}

// pair makes k hand-offs between two new goroutines and stores the final count in *got.
func pair(k int, got *int, done *sync.WaitGroup) {
	there, back := make(chan int), make(chan int)
	go func() {
		defer done.Done()
		if k == 0 {
			return
		}
		there <- 1
		if k > 1 {
			volley(k, back, there)
		}
	}()
	go func() {
		defer done.Done()
		if k > 0 {
			*got = volley(k, there, back)
		}
	}()
}

// locker increments *shared n times, each time under mu.
func locker(n int, mu *sync.Mutex, shared *int, done *sync.WaitGroup) {
	defer done.Done()
	for i := 0; i < n; i++ {
		mu.Lock()
		*shared++
		mu.Unlock()
	}
}

// share splits total into n parts that differ by at most one.
func share(total, n, i int) int {
	k := total / n
	if i < total%n {
		k++
	}
	return k
}

func main() {
	ops := flag.Int("ops", 200000, "channel hand-offs in total")
	pairs := flag.Int("pairs", 64, "ping-pong pairs")
	gate := flag.String("gate", "", "print \"waiting\", then wait until this file exists")
	duration := flag.Duration("duration", 0, "run whole batches until this much time has passed (-ops is then ignored)")
	flag.Parse()
	if *ops < 0 || *pairs < 1 {
		fmt.Fprintln(os.Stderr, "sched: need -ops >= 0 and -pairs >= 1")
		os.Exit(2)
	}

	if *gate != "" {
		fmt.Println("waiting")
		for {
			if _, err := os.Stat(*gate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}

	mu := new(sync.Mutex)
	locked := 0 // guarded by mu
	handed := 0
	got := make([]int, *pairs)
	start := time.Now()
	total := *ops
	if *duration > 0 {
		total = math.MaxInt
	}
	for left := total; left > 0; {
		if *duration > 0 && time.Since(start) >= *duration {
			break
		}
		batch := *pairs * perPair
		if batch > left {
			batch = left
		}
		left -= batch

		var done sync.WaitGroup
		done.Add(2**pairs + lockers)
		for i := range got {
			got[i] = 0
			pair(share(batch, *pairs, i), &got[i], &done)
		}
		for i := 0; i < lockers; i++ {
			go locker(share(batch, lockers, i), mu, &locked, &done)
		}
		done.Wait()
		for _, k := range got {
			handed += k
		}
	}
	elapsed := time.Since(start)

	want := *ops
	if *duration > 0 {
		want = handed
	}
	if handed != want || locked != want {
		fmt.Fprintf(os.Stderr, "sched: %d hand-offs and %d locked increments, want %d each\n",
			handed, locked, want)
		os.Exit(1)
	}
	r := result{
		Ops:       want,
		ElapsedNs: elapsed.Nanoseconds(),
		GoVersion: runtime.Version(),
		Pid:       os.Getpid(),
	}
	if want > 0 {
		r.NsPerOp = float64(elapsed.Nanoseconds()) / float64(want)
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}
