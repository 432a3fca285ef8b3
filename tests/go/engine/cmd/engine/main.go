// Command engine is the stand-in Dagger engine: a Server with the dagql cache and
// client sessions, driven in-process by a concurrent workload (no network), so that an
// eBPF tracer attached to it sees the real engine's functions, registers and structs.
//
// Usage:
//
//	engine [-scenario mixed|hits|joins|ttl|errors|leak|filesync|highrate] [-seed N]
//	       [-duration DUR] [-sessions N] [-truth FILE] [-start-gate FILE] [-serve]
//	       [-check-layout]
//
// -truth FILE gets JSON lines describing what actually happened (see README.md);
// records are written as they happen (buffered) and the file is complete, ending with
// an "end" record, when the workload is over (before -serve idles).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/engine/filesync"
	"github.com/dagger/dagger/engine/server"
)

func main() {
	var (
		scenarioName = flag.String("scenario", "mixed", "workload: mixed|hits|joins|ttl|errors|leak|filesync|highrate")
		seed         = flag.Int64("seed", 1, "seed of the workload's choices")
		duration     = flag.Duration("duration", 0, "run rounds until this much time has passed (default: one round; highrate 5s)")
		nSessions    = flag.Int("sessions", 4, "concurrent sessions")
		truthPath    = flag.String("truth", "", "write ground truth (JSON lines) to FILE")
		startGate    = flag.String("start-gate", "", "print \"ready <pid>\" on stderr and wait until FILE exists before starting")
		serve        = flag.Bool("serve", false, "after the workload, stay idle until SIGINT/SIGTERM")
		linger       = flag.Duration("linger", 0, "after the workload, stay this long before exiting (as a server outlives its calls' goroutines)")
		progress     = flag.Duration("progress", 0, "print calls made and CPU used so far on stderr this often (0: never)")
		checkLayout  = flag.Bool("check-layout", false, "assert struct offsets and sizes, print them, exit non-zero on a mismatch")
		verbose      = flag.Bool("v", false, "log session teardown")
	)
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

	truth, err := newTruthWriter(*truthPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "engine: %v\n", err)
		os.Exit(1)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		// interrupted during the workload: stop it; the truth is flushed on the way out
		cancel()
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

	srv, err := server.NewServer(ctx, server.Opts{NewRoot: newRoot, DebugLog: *verbose})
	if err != nil {
		fmt.Fprintf(os.Stderr, "engine: %v\n", err)
		os.Exit(1)
	}
	e := newEnv(srv, truth, sc.name, *seed, *nSessions)
	e.installHooks()

	start := time.Now()
	cpuStart := cpuNow()
	if *progress > 0 {
		go reportProgress(e, start, cpuStart, *progress)
	}
	deadline := start.Add(dur)
	for round := 0; ; round++ {
		sc.round(e, ctx, round, deadline)
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	cpu := cpuNow() - cpuStart

	end := e.end()
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
	fmt.Printf("engine: scenario %s calls=%d sessions=%d cache_entries=%d elapsed=%s rate=%.0f/s cpu_us=%d outcomes: %s",
		end.Scenario, end.Calls, end.Sessions, end.CacheEntries, elapsed.Round(time.Millisecond), rate, cpu.Microseconds(), strings.Join(parts, " "))
	if len(end.Changes) > 0 || end.Conflicts > 0 {
		fmt.Printf(" changes: hit=%d join=%d new=%d conflicts=%d", end.Changes["hit"], end.Changes["join"], end.Changes["new"], end.Conflicts)
	}
	if len(end.LeakedSession) > 0 {
		fmt.Printf(" leaked: %s", strings.Join(end.LeakedSession, ","))
	}
	fmt.Println()

	if *serve && ctx.Err() == nil {
		<-ctx.Done()
	}
	if *linger > 0 {
		time.Sleep(*linger)
	}
}

func newUnknownID(key string) *call.ID {
	return call.New().Append(containerType, "container", 0, call.NewArgument("k", key))
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
		fmt.Printf("layout: %d mismatch(es) of %d checks\n", bad, len(checks))
		return 1
	}
	fmt.Printf("layout: all %d checks ok\n", len(checks))
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
