package dagql

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dagger/dagger/dagql/call"
	"github.com/dagger/dagger/dagql/digest"
)

// ResultCallKind distinguishes field calls from synthetic ones.
type ResultCallKind string

const ResultCallKindField ResultCallKind = "field"

// ResultCallType is the return type of a call (32 B).
type ResultCallType struct {
	NamedType string
	NonNull   bool
	Elem      *ResultCallType
}

// ResultCallModule is the module a call belongs to (56 B).
type ResultCallModule struct {
	ResultRef *ResultCallRef
	Name      string
	Ref       string
	Pin       string
}

// ResultCallArg is one argument (literal only in the stand-in).
type ResultCallArg struct {
	Name        string
	IsSensitive bool
	Value       *ResultCallLiteral
}

// ResultCallLiteral is an argument's value (v0.21.8 result_call_frame.go:123-138, 160 B):
// Kind 0/8, BoolValue 16, IntValue 24, FloatValue 32, StringValue 40/48, EnumValue 56/64,
// DigestedStringValue 72/80, DigestedStringDigest 88/96, ResultRef 104, ListItems 112,
// ObjectFields 136.
type ResultCallLiteral struct {
	Kind                 string
	BoolValue            bool
	IntValue             int64
	FloatValue           float64
	StringValue          string
	EnumValue            string
	DigestedStringValue  string
	DigestedStringDigest string
	ResultRef            *ResultCallRef
	ListItems            []*ResultCallLiteral
	ObjectFields         []*ResultCallArg
}

// hashedValue is what an argument contributes to a digest: a sensitive one only "***".
func (a *ResultCallArg) hashedValue() string {
	if a.IsSensitive {
		return "***"
	}
	if a.Value == nil {
		return "null"
	}
	return a.Value.Kind + ":" + a.Value.StringValue
}

// pad:63
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// ResultCallRef points at the call (and, when attached, the result) a call uses as
// receiver (24 B: ResultID 0, Call 8, shared 16).
type ResultCallRef struct {
	ResultID uint64
	Call     *ResultCall

	shared *sharedResult
}

// pad:170
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// ResultCall is the recipe of a call (288 B). The recipe digest is derived once
// (recipeDigestOnce) and memoized in recipeDigest (+224/+232).
type ResultCall struct {
	Kind             ResultCallKind     // 0/8
	Type             *ResultCallType    // 16
	Field            string             // 24/32
	SyntheticOp      string             // 40/48
	View             string             // 56/64
	Nth              int64              // 72
	EffectIDs        []string           // 80
	ExtraDigests     []call.ExtraDigest // 104
	Receiver         *ResultCallRef     // 128
	Module           *ResultCallModule  // 136
	Args             []*ResultCallArg   // 144
	ImplicitInputs   []*ResultCallArg   // 168
	recipeDigestOnce sync.Once          // 192
	recipeDigestErr  error              // 208
	_                shiftPad           // [8]byte under -tags shifted, else empty
	recipeDigest     digest.Digest      // 224/232

	contentPreferredDigestOnce sync.Once     // 240
	contentPreferredDigestErr  error         // 256
	contentPreferredDigest     digest.Digest // 272/280
}

// pad:202
//
//
//
//
//
//

// ResultCallStructuralInputRef is one structural input of a call (its receiver).
type ResultCallStructuralInputRef struct {
	Result *ResultCallRef
	Digest digest.Digest
}

// HeldRecipeDigest returns the recipe digest the frame holds ("" if not derived).
// Stand-in helper for the ground truth.
func (frame *ResultCall) HeldRecipeDigest() digest.Digest {
	if frame == nil {
		return ""
	}
	return frame.recipeDigest
}

// RecipeDigest derives (and memoizes) the recipe digest, as dagql's telemetry does
// before calling the cache.
func (frame *ResultCall) RecipeDigest(c *Cache) (digest.Digest, error) {
	return frame.deriveRecipeDigest(c)
}

// pad:266
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (frame *ResultCall) deriveRecipeDigest(c *Cache) (digest.Digest, error) {
	return frame.recipeDigestWithVisiting(c, nil)
}

// pad:610
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// recipeDigestWithVisiting derives the recipe digest (field, type, literal args, nth,
// module and, recursively, the receiver's recipe digest) once per frame.
//
//go:noinline
func (frame *ResultCall) recipeDigestWithVisiting(c *Cache, visiting map[sharedResultID]struct{}) (digest.Digest, error) {
	if frame == nil {
		return "", errors.New("recipe digest: nil result call")
	}
	frame.recipeDigestOnce.Do(func() {
		var b strings.Builder
		b.WriteString("recipe\x00")
		b.WriteString(string(frame.Kind))
		b.WriteByte(0)
		if frame.Type != nil {
			b.WriteString(frame.Type.NamedType)
		}
		b.WriteByte(0)
		b.WriteString(frame.Field)
		b.WriteByte(0)
		if frame.Receiver != nil && frame.Receiver.Call != nil {
			if visiting == nil {
				visiting = map[sharedResultID]struct{}{}
			}
			if id := sharedResultID(frame.Receiver.ResultID); id != 0 {
				if _, seen := visiting[id]; seen {
					frame.recipeDigestErr = fmt.Errorf("recipe digest: cycle through result %d", id)
					return
				}
				visiting[id] = struct{}{}
			}
			recv, err := frame.Receiver.Call.recipeDigestWithVisiting(c, visiting)
			if err != nil {
				frame.recipeDigestErr = fmt.Errorf("receiver: %w", err)
				return
			}
			b.WriteString(recv.String())
		}
		b.WriteByte(0)
		writeArgs(&b, frame.Args)
		b.WriteString(strconv.FormatInt(frame.Nth, 10))
		if frame.Module != nil {
			b.WriteString("\x00module:" + frame.Module.Name)
		}
		frame.recipeDigest = digest.FromString(b.String())
	})
	return frame.recipeDigest, frame.recipeDigestErr
}

func writeArgs(b *strings.Builder, args []*ResultCallArg) {
	sorted := append([]*ResultCallArg(nil), args...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, a := range sorted {
		if a == nil {
			continue
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(a.hashedValue())
		b.WriteByte(0)
	}
}

// pad:816
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

// selfDigestAndInputRefs: the call without its inputs (self digest) and its
// structural inputs (the receiver).
//
//go:noinline
func (frame *ResultCall) selfDigestAndInputRefs(c *Cache) (digest.Digest, []ResultCallStructuralInputRef, error) {
	if frame == nil {
		return "", nil, errors.New("self digest: nil result call")
	}
	var b strings.Builder
	b.WriteString("self\x00")
	if frame.Type != nil {
		b.WriteString(frame.Type.NamedType)
	}
	b.WriteByte(0)
	b.WriteString(frame.Field)
	b.WriteByte(0)
	writeArgs(&b, frame.Args)
	b.WriteString(strconv.FormatInt(frame.Nth, 10))
	var refs []ResultCallStructuralInputRef
	if frame.Receiver != nil {
		refs = append(refs, ResultCallStructuralInputRef{Result: frame.Receiver})
	}
	return digest.FromString(b.String()), refs, nil
}

// pad:939
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (ref ResultCallStructuralInputRef) inputDigest(c *Cache) (digest.Digest, error) {
	if ref.Digest != "" {
		return ref.Digest, nil
	}
	if ref.Result == nil || ref.Result.Call == nil {
		return "", errors.New("structural input: missing call")
	}
	return ref.Result.Call.deriveRecipeDigest(c)
}
