// Command bench is the benchmark target for the tracer: it calls main.probed in a
// tight loop on one goroutine and reports the time per call.
//
// main.probed(x int) int is //go:noinline and framed: it has the small-frame stack
// check (`CMPQ SP, 0x10(R14); JBE`), then `PUSHQ BP`, because it calls the noinline
// helper main.benchHelper. It returns benchHelper(x)+1 = (x ^ 0x55) + 1.
//
// Flags:
//
//	-n N          timed calls (default 200000)
//	-warmup W     untimed calls made just before the timed loop (default 1000)
//	-go FILE      start gate: if set, the program prints "ready <pid>" on stderr and
//	              polls (every 1 ms) until FILE exists; only then does it run the
//	              warmup and the timed loop. Without -go it starts at once.
//
// main.probed is called exactly W + N times in total, all after the gate opens,
// all on the same goroutine. Stdout gets exactly one JSON line at the end:
//
//	{"calls":N,"warmup":W,"total_calls":W+N,"elapsed_ns":T,"ns_per_call":T/N,
//	 "go_version":"go1.26.6","pid":P,"checksum":C}
//
// elapsed_ns covers the N timed calls only (monotonic clock).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

var sinkV int

//go:noinline
func benchHelper(x int) int {
	return x ^ 0x55
}

//go:noinline
func probed(x int) int {
	return benchHelper(x) + 1
}

type result struct {
	Calls      int     `json:"calls"`
	Warmup     int     `json:"warmup"`
	TotalCalls int     `json:"total_calls"`
	ElapsedNs  int64   `json:"elapsed_ns"`
	NsPerCall  float64 `json:"ns_per_call"`
	GoVersion  string  `json:"go_version"`
	Pid        int     `json:"pid"`
	Checksum   int     `json:"checksum"`
}

func main() {
	n := flag.Int("n", 200000, "timed calls")
	warmup := flag.Int("warmup", 1000, "untimed warmup calls")
	gate := flag.String("go", "", "wait until this file exists before running")
	flag.Parse()

	if *gate != "" {
		fmt.Fprintf(os.Stderr, "ready %d\n", os.Getpid())
		for {
			if _, err := os.Stat(*gate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}

	sum := 0
	for i := 0; i < *warmup; i++ {
		sum += probed(i)
	}
	start := time.Now()
	for i := 0; i < *n; i++ {
		sum += probed(i)
	}
	elapsed := time.Since(start)
	sinkV = sum

	r := result{
		Calls:      *n,
		Warmup:     *warmup,
		TotalCalls: *n + *warmup,
		ElapsedNs:  elapsed.Nanoseconds(),
		GoVersion:  runtime.Version(),
		Pid:        os.Getpid(),
		Checksum:   sum,
	}
	if *n > 0 {
		r.NsPerCall = float64(elapsed.Nanoseconds()) / float64(*n)
	}
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}
