// Command matrix is the target program of the build-matrix and namespace tests. It is
// built every way users build Go: with and without cgo, PIE, -race, external linking,
// stripped or not. With cgo (and without the `nocgo` tag) main.mxNative calls into C
// (native_cgo.go); otherwise it is plain Go (native_go.go), under the same name.
//
// It keeps its imports minimal (no fmt, flag or encoding/json) so that the many build
// configurations compile little of the standard library.
//
// Arguments (all optional, `-name value`):
//
//	-truth FILE       write the ground truth here (JSON lines), at the end
//	-goroutines N     worker goroutines (default 3)
//	-calls K          main.mxWork calls per worker (default 40)
//	-ready FILE       create FILE once started (before waiting for the gate)
//	-gate FILE        wait until FILE exists before the first traced call (at most 30 s,
//	                  else exit status 3)
//
// Traced functions, all //go:noinline:
//
//	main.mxWork(x int, r *recorder) int    framed; calls mxLeaf(x) then mxNative(x);
//	                                       returns 3*mxLeaf(x) + mxNative(x)
//	main.mxLeaf(x int) int                 frameless leaf (without -race): 2*x + 1
//	main.mxNative(x int) int               x + 7, computed in C when built with cgo
//
// Every worker calls mxWork(base+i) for i < K, base = 1000*worker. The truth file has a
// "start" line ({"kind":"start","pid","go_version","cgo"}), then one line per traced call,
// grouped by goroutine and in entry order within a goroutine:
//
//	{"kind":"call","func":"main.mxWork","goid":7,"seq":0,"args":[1000],"ret":3008,"returned":true}
//
// ("args" holds the first integer argument only), and an "end" line with the number of
// calls per function and the workers' goroutine ids. Stdout gets one line at the end:
// `matrix: done calls=<total> cgo=<true|false>`.
package main

import (
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type call struct {
	fn   string
	goid int64
	seq  int
	arg  int
	ret  int
}

// recorder holds one goroutine's calls; only that goroutine touches it.
type recorder struct {
	goid  int64
	calls []call
}

func (r *recorder) enter(fn string, arg int) int {
	r.calls = append(r.calls, call{fn: fn, goid: r.goid, seq: len(r.calls), arg: arg})
	return len(r.calls) - 1
}

func (r *recorder) exit(i, ret int) { r.calls[i].ret = ret }

// curGoid parses "goroutine N [" from runtime.Stack.
func curGoid() int64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	s := string(buf[:n])
	const prefix = "goroutine "
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		panic("unexpected runtime.Stack output: " + s)
	}
	s = s[len(prefix):]
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	id, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}

//go:noinline
func mxLeaf(x int) int {
	return 2*x + 1
}

//go:noinline
func mxWork(x int, r *recorder) int {
	i := r.enter("main.mxWork", x)
	j := r.enter("main.mxLeaf", x)
	v := mxLeaf(x)
	r.exit(j, v)
	k := r.enter("main.mxNative", x)
	w := mxNative(x)
	r.exit(k, w)
	res := 3*v + w
	r.exit(i, res)
	return res
}

func fail(msg string) {
	os.Stderr.WriteString("matrix: " + msg + "\n")
	os.Exit(2)
}

func main() {
	truth, ready, gate := "", "", ""
	goroutines, calls := 3, 40
	args := os.Args[1:]
	for len(args) > 0 {
		if len(args) < 2 {
			fail("missing value for " + args[0])
		}
		name, val := args[0], args[1]
		args = args[2:]
		var err error
		switch name {
		case "-truth":
			truth = val
		case "-ready":
			ready = val
		case "-gate":
			gate = val
		case "-goroutines":
			goroutines, err = strconv.Atoi(val)
		case "-calls":
			calls, err = strconv.Atoi(val)
		default:
			fail("unknown argument " + name)
		}
		if err != nil {
			fail(name + ": " + err.Error())
		}
	}

	if ready != "" {
		f, err := os.Create(ready)
		if err != nil {
			fail(err.Error())
		}
		f.Close()
	}
	if gate != "" {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			if time.Now().After(deadline) {
				os.Stderr.WriteString("matrix: timed out waiting for " + gate + "\n")
				os.Exit(3)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	recs := make([]*recorder, goroutines)
	var wg sync.WaitGroup
	for w := 0; w < goroutines; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := &recorder{goid: curGoid()}
			recs[w] = r
			for i := 0; i < calls; i++ {
				mxWork(1000*w+i, r)
			}
		}(w)
	}
	wg.Wait()

	total := 0
	perFunc := map[string]int{}
	var out []byte
	out = append(out, `{"kind":"start","pid":`...)
	out = strconv.AppendInt(out, int64(os.Getpid()), 10)
	out = append(out, `,"go_version":`...)
	out = strconv.AppendQuote(out, runtime.Version())
	out = append(out, `,"cgo":`...)
	out = strconv.AppendBool(out, usesCgo)
	out = append(out, "}\n"...)
	for _, r := range recs {
		for _, c := range r.calls {
			total++
			perFunc[c.fn]++
			out = append(out, `{"kind":"call","func":`...)
			out = strconv.AppendQuote(out, c.fn)
			out = append(out, `,"goid":`...)
			out = strconv.AppendInt(out, c.goid, 10)
			out = append(out, `,"seq":`...)
			out = strconv.AppendInt(out, int64(c.seq), 10)
			out = append(out, `,"args":[`...)
			out = strconv.AppendInt(out, int64(c.arg), 10)
			out = append(out, `],"ret":`...)
			out = strconv.AppendInt(out, int64(c.ret), 10)
			out = append(out, `,"returned":true}`+"\n"...)
		}
	}
	out = append(out, `{"kind":"end","total":`...)
	out = strconv.AppendInt(out, int64(total), 10)
	out = append(out, `,"calls":{`...)
	for i, fn := range []string{"main.mxWork", "main.mxLeaf", "main.mxNative"} {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, fn)
		out = append(out, ':')
		out = strconv.AppendInt(out, int64(perFunc[fn]), 10)
	}
	out = append(out, `},"goids":[`...)
	for i, r := range recs {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendInt(out, r.goid, 10)
	}
	out = append(out, "]}\n"...)
	if truth != "" {
		if err := os.WriteFile(truth, out, 0o644); err != nil {
			fail(err.Error())
		}
	}
	os.Stdout.WriteString("matrix: done calls=" + strconv.Itoa(total) + " cgo=" + strconv.FormatBool(usesCgo) + "\n")
}
