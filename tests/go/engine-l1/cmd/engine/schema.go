package main

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/dagger/dagger/dagql"
	"github.com/dagger/dagger/dagql/call"
)

// Query is the root object.
type Query struct{}

func (*Query) TypeName() string { return "Query" }

// Container is the object every field returns.
type Container struct {
	Key     string
	Persist bool
}

func (*Container) TypeName() string { return "Container" }

// SafeToPersistCache: TTL metadata is only written for persistable results.
func (c *Container) SafeToPersistCache() bool { return c.Persist }

var (
	containerType = call.NewType("Container")
	queryClass    = dagql.NewClass[*Query](&Query{})
	containerCls  = dagql.NewClass[*Container](&Container{})

	// failedOnce: keys whose "failonce" resolver already failed once.
	failedOnce sync.Map
)

func init() {
	installFields(queryClass)
	installFields(containerCls)
}

// Fields (the same on Query and Container). Arguments drive the resolver:
//
//	k        identity of the call (part of the ID)
//	sleep    milliseconds of work (honours cancellation)
//	fail     if set, the resolver fails with this message
//	nest     number of nested "dep" calls made from inside the resolver
//	recurse  "1": the resolver calls its own ID again (-> "recursive call detected")
//	failonce "1": the first execution for this k fails, later ones succeed
//	content  (file only) content: hashed into the ID's content digest
func installFields[T dagql.Typed](class dagql.Class[T]) {
	spec := func(name string, mod func(*dagql.FieldSpec)) *dagql.FieldSpec {
		s := &dagql.FieldSpec{Name: name, Type: containerType}
		if mod != nil {
			mod(s)
		}
		return s
	}
	class.Install(
		&dagql.Field[T]{Spec: spec("container", nil), Func: resolve[T]},
		&dagql.Field[T]{Spec: spec("dep", nil), Func: resolve[T]},
		&dagql.Field[T]{Spec: spec("file", func(s *dagql.FieldSpec) { s.ContentArg = "content" }), Func: resolve[T]},
		&dagql.Field[T]{Spec: spec("now", func(s *dagql.FieldSpec) { s.DoNotCache = true }), Func: resolve[T]},
		&dagql.Field[T]{Spec: spec("ttlLong", func(s *dagql.FieldSpec) { s.TTL = 3600 }), Func: resolvePersist[T]},
	)
}

func resolvePersist[T dagql.Typed](ctx context.Context, self dagql.ObjectResult[T], args map[string]string, id *call.ID) (dagql.AnyResult, error) {
	return doResolve(ctx, self, args, id, true)
}

func resolve[T dagql.Typed](ctx context.Context, self dagql.ObjectResult[T], args map[string]string, id *call.ID) (dagql.AnyResult, error) {
	return doResolve(ctx, self, args, id, false)
}

func doResolve[T dagql.Typed](ctx context.Context, self dagql.ObjectResult[T], args map[string]string, id *call.ID, persist bool) (dagql.AnyResult, error) {
	w := workerFrom(ctx)
	if w != nil {
		w.env.fnRunning.Add(1)
		defer w.env.fnRunning.Add(-1)
	}
	if ms, _ := strconv.Atoi(args["sleep"]); ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		}
	}
	if msg := args["fail"]; msg != "" {
		return nil, errors.New(msg)
	}
	if args["failonce"] == "1" {
		if _, failed := failedOnce.LoadOrStore(args["k"], true); !failed {
			return nil, errors.New("transient failure")
		}
	}
	if w != nil && args["recurse"] == "1" {
		// the resolver selects its own ID again: the cache detects the cycle
		_, _ = w.selectOn(ctx, self, selector(id.Field(), args), string(id.Digest()))
	}
	if n, _ := strconv.Atoi(args["nest"]); n > 0 && w != nil {
		for i := 0; i < n; i++ {
			child := selector("dep", map[string]string{
				"k":     args["k"] + "/" + strconv.Itoa(i),
				"sleep": args["childsleep"],
			})
			if _, err := w.selectOn(ctx, self, child, string(id.Digest())); err != nil {
				return nil, err
			}
		}
	}
	return dagql.NewObjectResultForID[*Container](&Container{Key: args["k"], Persist: persist}, containerCls, id), nil
}

// selector builds a Selector from args (empty values dropped).
func selector(field string, args map[string]string) dagql.Selector {
	sel := dagql.Selector{Field: field}
	for _, name := range []string{"k", "sleep", "fail", "failonce", "nest", "childsleep", "recurse", "content", "path"} {
		if v := args[name]; v != "" {
			sel.Args = append(sel.Args, dagql.NamedInput{Name: name, Value: v})
		}
	}
	return sel
}

func newRoot() dagql.AnyObjectResult {
	return dagql.NewObjectResultForID[*Query](&Query{}, queryClass, nil)
}
