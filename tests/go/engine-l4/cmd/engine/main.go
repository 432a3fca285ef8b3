// Command engine is the stand-in Dagger engine for code line L4 (main 13d493ee6e,
// v1.0.0-beta.11-dev; build tags l4beta10, l4beta4, l4unknown select older/impossible
// variants): a Server with the engine-wide dagql cache and client sessions, driven
// in-process by a concurrent workload, so that an eBPF tracer attached to it sees the
// real engine's functions, registers and structs. See README.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
	"github.com/dagger/dagger/engine/server"
	"github.com/dagger/dagger/engine/wcprof"
)

func main() {
	var (
		scenarioName = flag.String("scenario", "mixed", "workload: mixed|anomalies|locks|highrate|sequence")
		seed         = flag.Int64("seed", 1, "seed of the workload's choices")
		duration     = flag.Duration("duration", 0, "run rounds until this much time has passed (default: one round; highrate 5s)")
		nSessions    = flag.Int("sessions", 4, "concurrent sessions")
		truthPath    = flag.String("truth", "", "write ground truth (JSON lines) to FILE")
		startGate    = flag.String("start-gate", "", "print \"ready <pid>\" on stderr and wait until FILE exists before starting")
		serve        = flag.Bool("serve", false, "after the workload, stay idle until SIGINT/SIGTERM")
		linger       = flag.Duration("linger", 0, "after the workload, stay this long before exiting (as a server outlives its calls' goroutines)")
		progress     = flag.Duration("progress", 0, "print calls made and CPU used so far on stderr this often (0: never)")
		checkLayout  = flag.Bool("check-layout", false, "assert struct offsets and sizes, print them, exit non-zero on a mismatch")
		profile      = flag.Bool("wcprof", false, "turn the wcprof profiler on (getOrInitCall then calls wcprof.BeginOp)")
		verbose      = flag.Bool("v", false, "log session teardown")
	)
	flag.BoolVar(&viaInterface, "via-interface", false, "make top-level cache calls through an interface (an indirect call the tracer finds no call site for)")
	flag.Parse()

	if *checkLayout {
		os.Exit(runLayoutCheck())
	}
	sc, ok := scenarios[*scenarioName]
	if !ok {
		fmt.Fprintf(os.Stderr, "engine: unknown scenario %q\n", *scenarioName)
		os.Exit(2)
	}
	if *nSessions < sc.minSessions {
		*nSessions = sc.minSessions
	}
	dur := *duration
	if dur == 0 {
		dur = sc.defaultDur
	}
	if *profile {
		wcprof.Enable(true)
	}

	truth, err := newTruthWriter(*truthPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "engine: %v\n", err)
		os.Exit(1)
	}

	var stop atomic.Bool
	stopped := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		// end the workload (at the end of the round; highrate at once)
		stop.Store(true)
		close(stopped)
		<-sigs
		_ = truth.close()
		os.Exit(130)
	}()

	if *startGate != "" {
		fmt.Fprintf(os.Stderr, "ready %d\n", os.Getpid())
		for {
			if _, err := os.Stat(*startGate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}

	srv := server.NewServer(*verbose)
	e := newEnv(srv, truth, sc.name, *seed)
	viaCache = e.cache
	e.installHooks()

	start := time.Now()
	cpuStart := cpuNow()
	if *progress > 0 {
		go reportProgress(e, start, cpuStart, *progress)
	}
	startNs := nanotime()
	deadline := start.Add(dur)
	for round := 0; ; round++ {
		sc.round(e, &stop, round, *nSessions, deadline)
		if stop.Load() || !time.Now().Before(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	cpu := cpuNow() - cpuStart

	end := endRec{
		Kind:         "end",
		CodeLine:     "L4",
		Variant:      variant,
		Scenario:     sc.name,
		Seed:         *seed,
		Calls:        e.calls.Load(),
		Outcomes:     map[string]int{},
		Sessions:     int(e.sessionsN.Load()),
		CacheEntries: srv.Cache().Size(),
		CacheAddr:    uint64(srv.DagqlCacheAddr()),
		DurationNs:   nanotime() - startNs,
	}
	e.mu.Lock()
	for k, v := range e.outcomes {
		end.Outcomes[k] = v
	}
	changes := map[string]int{}
	for k, v := range e.changes {
		changes[k] = v
	}
	e.mu.Unlock()
	truth.write(end)
	if err := truth.close(); err != nil {
		fmt.Fprintf(os.Stderr, "engine: truth: %v\n", err)
		os.Exit(1)
	}

	keys := make([]string, 0, len(end.Outcomes))
	for k := range end.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, end.Outcomes[k]))
	}
	rate := float64(end.Calls) / elapsed.Seconds()
	fmt.Printf("engine: L4/%s scenario %s calls=%d sessions=%d cache_entries=%d elapsed=%s rate=%.0f/s cpu_us=%d outcomes: %s",
		variant, end.Scenario, end.Calls, end.Sessions, end.CacheEntries, elapsed.Round(time.Millisecond), rate, cpu.Microseconds(), strings.Join(parts, " "))
	if len(changes) > 0 {
		fmt.Printf(" changes: hit=%d join=%d new=%d conflicts=%d", changes["hit"], changes["join"], changes["new"], e.conflicts.Load())
	}
	if *profile {
		fmt.Printf(" wcprof_events=%d", wcprof.Events())
	}
	fmt.Println()

	if *serve && !stop.Load() {
		<-stopped
	}
	if *linger > 0 {
		time.Sleep(*linger)
	}
}

func runLayoutCheck() int {
	type check struct {
		what      string
		got, want uintptr
	}
	var checks []check
	for _, l := range dagql.Layout() {
		checks = append(checks, check{"dagql: " + l.What, l.Got, l.Want})
	}
	for _, l := range filesync.Layout() {
		checks = append(checks, check{"filesync: " + l.What, l.Got, l.Want})
	}
	for _, l := range server.Layout() {
		checks = append(checks, check{"server: " + l.What, l.Got, l.Want})
	}
	for _, l := range engine.ClientMetadataLayout() {
		checks = append(checks, check{"engine: " + l[0].(string), l[1].(uintptr), l[2].(uintptr)})
	}
	for _, l := range wcprof.Layout() {
		checks = append(checks, check{"wcprof: " + l.What, l.Got, l.Want})
	}
	bad := 0
	for _, c := range checks {
		status := "ok"
		if c.got != c.want {
			status = "MISMATCH"
			bad++
		}
		fmt.Printf("%-70s got %3d want %3d  %s\n", c.what, c.got, c.want, status)
	}
	if bad > 0 {
		fmt.Printf("layout: %d mismatch(es) of %d checks (variant %s)\n", bad, len(checks), variant)
		return 1
	}
	fmt.Printf("layout: all %d checks ok (variant %s)\n", len(checks), variant)
	return 0
}

// cpuNow is the CPU time (user and system) the process has used: with uprobes attached
// it includes the kernel's work for every probe hit, which is charged to the thread that
// hit it, and not the time the process waited for a CPU another program held.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
