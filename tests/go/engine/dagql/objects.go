package dagql

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/dagger/dagger/dagql/call"
)

// Typed is any value that has a GraphQL type.
type Typed interface {
	TypeName() string
}

// AnyResult is a cached (or detached) result: a Result[T] or an ObjectResult[T].
// Both begin with {shared *sharedResult; id *call.ID; hitCache bool}.
type AnyResult interface {
	Typed
	Unwrap() Typed
	ID() *call.ID
	HitCache() bool
	Release(context.Context) error
	WithID(*call.ID) AnyResult
	cacheSharedResult() *sharedResult
	withHitCache(bool) AnyResult
}

// AnyObjectResult is an AnyResult whose value is an object with selectable fields.
type AnyObjectResult interface {
	AnyResult
	Select(ctx context.Context, s *Server, sel Selector) (AnyResult, error)
}

// ObjectType reconstructs typed results from a cached sharedResult.
type ObjectType interface {
	TypeName() string
	New(shared *sharedResult, id *call.ID, hitCache bool) (AnyResult, error)
}

// PersistableValue is implemented by values whose cache metadata may be persisted
// (TTL rows are only written for results that are safe to persist).
type PersistableValue interface {
	SafeToPersistCache() bool
}

// OnReleaser is implemented by values that own resources freed when the last ref to
// their cached result is released.
type OnReleaser interface {
	OnRelease(context.Context) error
}

// NamedInput is one argument of a selection.
type NamedInput struct {
	Name  string
	Value string
}

// View selects a schema view.
type View string

// Selector selects a field of an object. Size 64: Field 0/8, Args 16/24/32, Nth 40,
// View 48/56.
type Selector struct {
	Field string
	Args  []NamedInput
	Nth   int
	View  View
}

// FieldSpec describes a field's caching behaviour.
type FieldSpec struct {
	Name string
	Type *call.Type
	// DoNotCache: the resolver runs on every call, synchronously on the caller.
	DoNotCache bool
	// TTL (seconds): cache metadata is kept in the DB and expires.
	TTL int64
	// NoConcurrencyKey: concurrent identical calls do not join (each one executes).
	NoConcurrencyKey bool
	// ContentArg: name of an argument whose value is hashed into a "content" extra
	// digest of the call's ID (content-addressed results).
	ContentArg string
}

// Field is a selectable field of objects of type T.
type Field[T Typed] struct {
	Spec *FieldSpec
	Func func(ctx context.Context, self ObjectResult[T], args map[string]string, id *call.ID) (AnyResult, error)
}

// SourceMap locates a type's definition.
type SourceMap struct {
	Module   string
	Filename string
	Line     int
}

// Class is the object class of T: 6 words (inner, idable, fields, fieldsL,
// invalidateSchemaCache, sourceMap), as in the real engine.
type Class[T Typed] struct {
	inner                 T
	idable                bool
	fields                map[string]*Field[T]
	fieldsL               *sync.Mutex
	invalidateSchemaCache func()
	sourceMap             *SourceMap
}

// NewClass returns an empty class for T.
func NewClass[T Typed](inner T) Class[T] {
	return Class[T]{
		inner:                 inner,
		idable:                true,
		fields:                map[string]*Field[T]{},
		fieldsL:               new(sync.Mutex),
		invalidateSchemaCache: func() {},
	}
}

// Install adds fields to the class.
func (class Class[T]) Install(fields ...*Field[T]) {
	class.fieldsL.Lock()
	defer class.fieldsL.Unlock()
	for _, f := range fields {
		class.fields[f.Spec.Name] = f
	}
	class.invalidateSchemaCache()
}

func (class Class[T]) Field(name string) (*Field[T], bool) {
	class.fieldsL.Lock()
	defer class.fieldsL.Unlock()
	f, ok := class.fields[name]
	return f, ok
}

func (class Class[T]) TypeName() string {
	return class.inner.TypeName()
}

// New (ObjectType) reconstructs an ObjectResult[T] around a cached sharedResult.
func (class Class[T]) New(shared *sharedResult, id *call.ID, hitCache bool) (AnyResult, error) {
	if shared.hasValue {
		if _, ok := shared.self.(T); !ok {
			return nil, fmt.Errorf("cannot reconstruct %s result from %T", class.TypeName(), shared.self)
		}
	}
	return ObjectResult[T]{
		Result: Result[T]{shared: shared, id: id, hitCache: hitCache},
		class:  class,
	}, nil
}

// NewResultForID returns a detached (not cache-backed) result.
func NewResultForID[T Typed](self T, id *call.ID) Result[T] {
	return Result[T]{
		shared: newDetachedSharedResult(self, nil),
		id:     id,
	}
}

// NewObjectResultForID returns a detached object result.
func NewObjectResultForID[T Typed](self T, class Class[T], id *call.ID) ObjectResult[T] {
	return ObjectResult[T]{
		Result: Result[T]{shared: newDetachedSharedResult(self, class), id: id},
		class:  class,
	}
}

func newDetachedSharedResult(self Typed, objType ObjectType) *sharedResult {
	res := &sharedResult{
		self:     self,
		objType:  objType,
		hasValue: self != nil,
	}
	if p, ok := self.(PersistableValue); ok {
		res.safeToPersistCache = p.SafeToPersistCache()
	}
	if r, ok := self.(OnReleaser); ok {
		res.onRelease = r.OnRelease
	}
	return res
}

// Select selects a field of the object through the session's cache.
func (r ObjectResult[T]) Select(ctx context.Context, s *Server, sel Selector) (AnyResult, error) {
	return r.call(ctx, s, sel)
}

// preselectResult: inputArgs +0, newID +8, cacheKey +16 (ID +16, ConcurrencyKey
// +24/+32, TTL +40, DoNotCache +48).
type preselectResult struct {
	inputArgs map[string]string
	newID     *call.ID
	cacheKey  CacheKey
}

// pad:346
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (r ObjectResult[T]) preselect(ctx context.Context, s *Server, sel Selector) (*preselectResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	field, ok := r.class.Field(sel.Field)
	if !ok {
		return nil, fmt.Errorf("%s has no such field: %q", r.class.TypeName(), sel.Field)
	}
	inputArgs := make(map[string]string, len(sel.Args))
	idArgs := make([]*call.Argument, 0, len(sel.Args))
	sorted := append([]NamedInput(nil), sel.Args...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, arg := range sorted {
		if _, dup := inputArgs[arg.Name]; dup {
			return nil, fmt.Errorf("duplicate argument %q", arg.Name)
		}
		inputArgs[arg.Name] = arg.Value
		idArgs = append(idArgs, call.NewArgument(arg.Name, arg.Value))
	}
	if sel.View != "" {
		inputArgs["__view"] = string(sel.View)
	}
	newID := r.ID().Append(field.Spec.Type, sel.Field, sel.Nth, idArgs...)
	if field.Spec.ContentArg != "" {
		if content, ok := inputArgs[field.Spec.ContentArg]; ok {
			newID = newID.WithExtraDigest(call.ExtraDigest{
				Digest: call.HashString("content", field.Spec.Type.NamedType(), content),
				Label:  call.ExtraDigestLabelContent,
			})
		}
	}
	if s == nil || s.Cache == nil {
		return nil, fmt.Errorf("select %s: no server cache", sel.Field)
	}
	return &preselectResult{
		inputArgs: inputArgs,
		newID:     newID,
		cacheKey:  newCacheKey(ctx, newID, field.Spec),
	}, nil
}

// pad:462
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// newCacheKey derives the cache key of a field call from its spec.
func newCacheKey(ctx context.Context, id *call.ID, fieldSpec *FieldSpec) CacheKey {
	cacheKey := CacheKey{
		ID: id,
	}
	if fieldSpec == nil {
		return cacheKey
	}
	if fieldSpec.DoNotCache {
		cacheKey.DoNotCache = true
		return cacheKey
	}
	if fieldSpec.TTL != 0 {
		cacheKey.TTL = fieldSpec.TTL
	}
	if !fieldSpec.NoConcurrencyKey {
		cacheKey.ConcurrencyKey = string(id.Digest())
	}
	if v := ctx.Value(concurrencyScopeCtxKey{}); v != nil && cacheKey.ConcurrencyKey != "" {
		cacheKey.ConcurrencyKey = cacheKey.ConcurrencyKey + "@" + v.(string)
	}
	return cacheKey
}

type concurrencyScopeCtxKey struct{}

// pad:538
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// call resolves a selection through the session cache; call.func2 is the fn handed
// to the cache.
func (r ObjectResult[T]) call(ctx context.Context, s *Server, sel Selector) (AnyResult, error) {
	pre, err := r.preselect(ctx, s, sel)
	if err != nil {
		return nil, err
	}
	field, _ := r.class.Field(sel.Field)
	var depth int
	defer func() {
		if depth > 0 {
			s.noteDepth(depth)
		}
	}()
	// pad:554
	//
	//
	//
	res, err := s.Cache.GetOrInitCall(ctx, pre.cacheKey, func(ctx context.Context) (AnyResult, error) {
		depth = callDepth(ctx)
		val, err := field.Func(ctx, r, pre.inputArgs, pre.newID)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		if val.ID() == nil {
			val = val.WithID(pre.newID)
		}
		return val, nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

func callDepth(ctx context.Context) int {
	keys, _ := ctx.Value(cacheCallKeysCtxKey{}).([]string)
	return len(keys)
}

// Itoa is a small helper for callers building selectors.
func Itoa(i int) string { return strconv.Itoa(i) }
