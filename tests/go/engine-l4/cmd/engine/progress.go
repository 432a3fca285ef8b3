package main

import (
	"fmt"
	"os"
	"time"
)

// reportProgress prints the calls made and the CPU used so far every `every`, on stderr:
// a benchmark that attaches and detaches a tracer while the workload runs compares the
// rates of adjacent stretches, so the machine's drift between runs cancels out.
func reportProgress(e *env, start time.Time, cpuStart time.Duration, every time.Duration) {
	for range time.Tick(every) {
		fmt.Fprintf(os.Stderr, "progress elapsed_us=%d calls=%d cpu_us=%d\n",
			time.Since(start).Microseconds(), e.calls.Load(), (cpuNow() - cpuStart).Microseconds())
	}
}
