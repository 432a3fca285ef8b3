// Command engine is the stand-in Dagger engine for code line L3 (v0.21.8): the
// engine-wide dagql Cache and client sessions, driven in-process by a concurrent
// workload, so that an eBPF tracer attached to it sees the real engine's functions,
// registers, structs and source lines. See README.md.
//
// Usage:
//
//	engine [-scenario mixed|anomalies|locks|highrate] [-seed N] [-duration DUR]
//	       [-sessions N] [-truth FILE] [-start-gate FILE] [-serve] [-check-layout] [-v]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/engine"
	"github.com/dagger/dagger/engine/filesync"
	"github.com/dagger/dagger/engine/server"
)

func main() {
	var (
		scenarioName = flag.String("scenario", "mixed", "workload: mixed|anomalies|locks|highrate")
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
		cancel() // stop the workload; the truth is completed on the way out
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

	srv := server.NewServer()
	srv.DebugLog = *verbose
	dagql.EnableTracing(truth.enabled())
	e := newEnv(srv, truth, sc.name, *seed, *nSessions)
	installFilesyncHooks(e)

	// the workload's sessions live on a context the first signal does not cancel
	// (rounds end at their end); highrate workers watch ctx directly
	start := time.Now()
	cpuStart := cpuNow()
	if *progress > 0 {
		go reportProgress(e, start, cpuStart, *progress)
	}
	deadline := start.Add(dur)
	for round := 0; ; round++ {
		sc.round(e, roundCtx(ctx, sc.name), round, deadline)
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	cpu := cpuNow() - cpuStart

	variant := "v0.21.8"
	if dagql.Shifted {
		variant = "shifted"
	}
	end := e.end(variant)
	truth.write(end)
	if err := truth.close(); err != nil {
		fmt.Fprintf(os.Stderr, "engine: truth: %v\n", err)
		os.Exit(1)
	}
	rate := float64(end.Calls) / elapsed.Seconds()
	fmt.Printf("engine: L3 version=%q scenario %s calls=%d sessions=%d cache_entries=%d elapsed=%s rate=%.0f/s cpu_us=%d outcomes: %s changes: hit=%d join=%d new=%d conflicts=%d\n",
		engine.Version, end.Scenario, end.Calls, end.Sessions, end.CacheEntries, elapsed.Round(time.Millisecond), rate, cpu.Microseconds(), summary(end),
		e.changes["hit"], e.changes["join"], e.changes["new"], e.conflicts.Load())

	if *serve && ctx.Err() == nil {
		<-ctx.Done()
	}
	if *linger > 0 {
		time.Sleep(*linger)
	}
}

// roundCtx: highrate stops at once on a signal; other scenarios finish the round.
func roundCtx(ctx context.Context, scenario string) context.Context {
	if scenario == "highrate" {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

func runLayoutCheck() int {
	if dagql.Shifted {
		fmt.Println("layout: skipped (-tags shifted moves ResultCall.recipeDigest on purpose)")
		return 0
	}
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
