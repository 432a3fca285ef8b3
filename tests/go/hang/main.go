// Command hang forms four known hangs inside a process that keeps running other goroutines,
// and writes ground truth for `tracer hang`:
//
//   - AB-BA: goroutine X locks A then B, goroutine Y locks B then A (a real deadlock);
//   - RWMutex writer starvation: a reader holds RLock forever, a writer blocks in Lock, and a
//     later reader blocks in RLock behind the writer;
//   - a channel nobody sends on;
//   - a WaitGroup whose Done never comes.
//
// Besides, one goroutine sits in a read(2) system call on a pipe nobody writes to.
//
// Once every hang has formed it writes one JSON line per blocked goroutine to -truth
// ({"name","goid","kind","addr"}), then one line per mutex of the AB-BA pair that its
// goroutine holds ({"name":"abba_x_holds","goid","kind":"holds","addr"}, likewise
// abba_y_holds: the mutex that goroutine locked first), and prints "ready". On SIGUSR1 it
// writes its own runtime.Stack(all) dump to -dump (atomically). -idle N parks N more
// goroutines on a channel (for the snapshot benchmark). -gate FILE holds the hangs back:
// once the busy goroutines and the GC loop run it prints "waiting" and polls (every 1 ms)
// until FILE exists, and only then forms the hangs. It runs until killed, with busy
// goroutines and a GC every 100 ms (the GC is what records each blocked goroutine's wait
// start).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type truth struct {
	Name string  `json:"name"`
	Goid uint64  `json:"goid"`
	Kind string  `json:"kind"`
	Addr uintptr `json:"addr"`
	// The function that recorded it: the goroutine's start function (blocked goroutines).
	Func string `json:"func"`
}

var (
	mu      sync.Mutex
	records []truth
	holds   []truth // written after records, so the blocked goroutines' lines come first
	sink    uint64
)

func goid() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := strings.Fields(string(buf[:n]))
	id, _ := strconv.ParseUint(f[1], 10, 64)
	return id
}

func record(name, kind string, addr uintptr) {
	// CallersFrames, not FuncForPC: record may be inlined into its caller.
	pcs := make([]uintptr, 1)
	frame, _ := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)]).Next()
	caller := frame.Function
	mu.Lock()
	records = append(records, truth{name, goid(), kind, addr, caller})
	mu.Unlock()
}

// recordHold notes that the calling goroutine holds m.
func recordHold(name string, m *sync.Mutex) {
	mu.Lock()
	holds = append(holds, truth{name, goid(), "holds", uintptr(unsafe.Pointer(m)), ""})
	mu.Unlock()
}

//go:noinline
func lockPair(name string, first, second *sync.Mutex, both *sync.WaitGroup) {
	first.Lock()
	defer first.Unlock()
	recordHold(name+"_holds", first)
	both.Done()
	both.Wait()
	record(name, "mutex", uintptr(unsafe.Pointer(second)))
	second.Lock()
	defer second.Unlock()
}

//go:noinline
func holdRead(rw *sync.RWMutex, held chan<- struct{}, forever <-chan struct{}) {
	rw.RLock()
	defer rw.RUnlock()
	record("rw_holder", "chan", reflect.ValueOf(forever).Pointer())
	held <- struct{}{}
	<-forever
}

//go:noinline
func writer(rw *sync.RWMutex) {
	record("rw_writer", "rwmutex", uintptr(unsafe.Pointer(rw)))
	rw.Lock()
	rw.Unlock()
}

//go:noinline
func lateReader(rw *sync.RWMutex) {
	record("rw_reader", "rwmutex_read", uintptr(unsafe.Pointer(rw)))
	rw.RLock()
	rw.RUnlock()
}

//go:noinline
func receiver(ch chan int) {
	record("chan_receiver", "chan", reflect.ValueOf(ch).Pointer())
	sink += uint64(<-ch)
}

//go:noinline
func waiter(wg *sync.WaitGroup) {
	record("wg_waiter", "waitgroup", uintptr(unsafe.Pointer(wg)))
	wg.Wait()
}

//go:noinline
func idle(ch chan struct{}) { <-ch }

// readForever blocks in read(2) on a pipe nobody writes to: a goroutine in a system call,
// whose stack a snapshot must unwind from what entersyscall saved.
//
//go:noinline
func readForever(fd int) {
	var b [1]byte
	syscall.Read(fd, b[:])
}

// busy keeps the process doing work while the hangs sit there.
func busy(i int) {
	buf := make([]byte, 0, 1024)
	for n := 0; ; n++ {
		buf = strconv.AppendInt(buf[:0], int64(n*i), 10)
		if n%1000 == 0 {
			time.Sleep(time.Millisecond)
			go func() { sink += uint64(len(buf)) }()
		}
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

// waitBlocked waits until every recorded goroutine shows as blocked in the dump.
func waitBlocked(n int) {
	for {
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		got := append([]truth(nil), records...)
		mu.Unlock()
		if len(got) < n {
			continue
		}
		dump := dumpAll()
		ok := true
		for _, r := range got {
			head := fmt.Sprintf("goroutine %d [", r.Goid)
			i := bytes.Index(dump, []byte(head))
			if i < 0 {
				ok = false
				break
			}
			state := dump[i+len(head):]
			state = state[:bytes.IndexByte(state, ']')]
			if bytes.HasPrefix(state, []byte("running")) || bytes.HasPrefix(state, []byte("runnable")) {
				ok = false
			}
		}
		if ok {
			return
		}
	}
}

func main() {
	truthPath := flag.String("truth", "", "write ground truth here")
	dumpPath := flag.String("dump", "", "write runtime.Stack(all) here on SIGUSR1")
	idleN := flag.Int("idle", 0, "park this many extra goroutines on a channel")
	gate := flag.String("gate", "", "print \"waiting\", then form the hangs once this file exists")
	flag.Parse()

	for i := 1; i <= 3; i++ {
		go busy(i)
	}
	go func() {
		for {
			time.Sleep(100 * time.Millisecond)
			runtime.GC()
		}
	}()

	if *gate != "" {
		fmt.Println("waiting")
		for {
			if _, err := os.Stat(*gate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}

	a, b := new(sync.Mutex), new(sync.Mutex)
	var both sync.WaitGroup
	both.Add(2)
	go lockPair("abba_x", a, b, &both)
	go lockPair("abba_y", b, a, &both)

	rw := new(sync.RWMutex)
	held, forever := make(chan struct{}), make(chan struct{})
	go holdRead(rw, held, forever)
	<-held
	go writer(rw)
	// The writer must be queued before the late reader comes, or the reader just gets in.
	for {
		time.Sleep(10 * time.Millisecond)
		if strings.Contains(string(dumpAll()), "sync.(*RWMutex).Lock") {
			break
		}
	}
	go lateReader(rw)

	ch := make(chan int)
	go receiver(ch)
	wg := new(sync.WaitGroup)
	wg.Add(1)
	go waiter(wg)

	var pipe [2]int
	if err := syscall.Pipe(pipe[:]); err != nil {
		panic(err)
	}
	go readForever(pipe[0])

	park := make(chan struct{})
	for i := 0; i < *idleN; i++ {
		go idle(park)
	}

	waitBlocked(7)
	// Listen before saying "ready": a SIGUSR1 that arrives before Notify is dropped.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	// A GC records each blocked goroutine's wait start (g.waitsince), as the time of the
	// previous GC's mark termination, which is zero before the first: so two.
	runtime.GC()
	runtime.GC()
	if *truthPath != "" {
		var out bytes.Buffer
		mu.Lock()
		for _, list := range [][]truth{records, holds} {
			for _, r := range list {
				line, _ := json.Marshal(r)
				out.Write(line)
				out.WriteByte('\n')
			}
		}
		mu.Unlock()
		writeAtomic(*truthPath, out.Bytes())
	}
	fmt.Println("ready")

	for range sigs {
		if *dumpPath != "" {
			writeAtomic(*dumpPath, dumpAll())
		}
	}
	runtime.KeepAlive(ch)
	runtime.KeepAlive(wg)
	close(park)
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
