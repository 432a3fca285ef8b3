package dagql

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/engine"
)

// Typed is any value that has a GraphQL type.
type Typed interface {
	TypeName() string
}

// AnyResult is a cached (or detached) result: a Result[T] or an ObjectResult[T].
// Both begin with {shared *sharedResult; idOverride *call.ID; hitCache bool;
// hitContentDigestCache bool}.
type AnyResult interface {
	Typed
	Unwrap() Typed
	ID() *call.ID
	HitCache() bool
	HitContentDigestCache() bool
	PostCall(context.Context) error
	IsSafeToPersistCache() bool
	Release(context.Context) error
}

// AnyObjectResult is an AnyResult whose value is an object with selectable fields.
type AnyObjectResult interface {
	AnyResult
	ObjectType() ObjectType
	Select(ctx context.Context, s *Server, sel Selector) (AnyResult, error)
}

// ObjectType rebuilds typed object results around a cached Result.
type ObjectType interface {
	TypeName() string
	New(Result[Typed]) (AnyResult, error)
}

// PersistableValue is implemented by values whose TTL metadata may be persisted.
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
	// ContentArg: name of an argument whose value is hashed into the call ID's
	// content digest (content-addressed results).
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

// New (ObjectType) rebuilds an ObjectResult[T] around a cached Result.
func (class Class[T]) New(r Result[Typed]) (AnyResult, error) {
	if r.shared != nil && r.shared.hasValue {
		if _, ok := r.shared.self.(T); !ok {
			return nil, fmt.Errorf("cannot reconstruct %s result from %T", class.TypeName(), r.shared.self)
		}
	}
	return ObjectResult[T]{
		Result: Result[T]{
			shared:                r.shared,
			idOverride:            r.idOverride,
			hitCache:              r.hitCache,
			hitContentDigestCache: r.hitContentDigestCache,
		},
		class: class,
	}, nil
}

// NewObjectResultForID returns a detached object result constructed by id.
func NewObjectResultForID[T Typed](self T, class Class[T], id *call.ID) ObjectResult[T] {
	res := ObjectResult[T]{Result: newDetachedResult[T](id, self), class: class}
	if p, ok := any(self).(PersistableValue); ok {
		res.shared.safeToPersistCache = p.SafeToPersistCache()
	}
	return res
}

// Select selects a field of the object through the session's cache.
func (r ObjectResult[T]) Select(ctx context.Context, s *Server, sel Selector) (AnyResult, error) {
	pre, err := r.preselect(ctx, s, sel)
	if err != nil {
		return nil, err
	}
	return r.call(ctx, s, pre.newID, pre.inputArgs, pre.cacheKey)
}

// preselectResult: inputArgs +0, newID +8, cacheKey +16 (ID +16, ConcurrencyKey
// +24/+32, TTL +40, DoNotCache +48).
type preselectResult struct {
	inputArgs map[string]string
	newID     *call.ID
	cacheKey  CacheKey
}

// pad:358
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
		return nil, fmt.Errorf("Select: %s has no such field: %q", r.class.TypeName(), sel.Field)
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
	newID := r.ID().Append(field.Spec.Type, sel.Field, sel.Nth, idArgs...)
	if field.Spec.ContentArg != "" {
		if content, ok := inputArgs[field.Spec.ContentArg]; ok {
			newID = newID.WithContentDigest(call.HashString("content", field.Spec.Type.NamedType(), content))
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

// pad:454
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

// newCacheKey derives the cache key of a field call (not inlined, as in the engine).
//
//go:noinline
func newCacheKey(ctx context.Context, id *call.ID, fieldSpec *FieldSpec) CacheKey {
	cacheKey := CacheKey{
		ID:         id,
		TTL:        fieldSpec.TTL,
		DoNotCache: fieldSpec.DoNotCache,
	}
	// concurrent identical calls of one client share one execution
	// pad:465
	//
	//
	//
	clientMD, err := engine.ClientMetadataFromContext(ctx)
	if err == nil {
		cacheKey.ConcurrencyKey = clientMD.ClientID
	}
	return cacheKey
}

// pad:530
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
func (r ObjectResult[T]) call(
	ctx context.Context,
	s *Server,
	newID *call.ID,
	inputArgs map[string]string,
	cacheKey CacheKey,
) (AnyResult, error) {
	var opts []CacheCallOpt
	if s.telemetry != nil {
		// pad:547
		//
		//
		//
		//
		//
		//
		//
		opts = append(opts, WithTelemetry(func(ctx context.Context) (context.Context, func(AnyResult, bool, *error)) {
			return s.telemetry(ctx, newID)
		}))
	}

	// pad:553
	res, err := s.Cache.GetOrInitCall(ctx, cacheKey, func(ctx context.Context) (AnyResult, error) {
		field, ok := r.class.Field(newID.Field())
		if !ok {
			return nil, fmt.Errorf("Call: %s has no such field: %q", r.class.TypeName(), newID.Field())
		}
		val, err := field.Func(ctx, r, inputArgs, newID)
		if err != nil {
			return nil, err
		}
		if val == nil {
			return nil, nil
		}
		return val, nil
	}, opts...)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Itoa is a small helper for callers building selectors.
func Itoa(i int) string { return strconv.Itoa(i) }
