package dagql

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// ResultCall is the semantic shape of a call (288 B): Kind 0, Type 16, Field 24/32,
// SyntheticOp 40, View 56, Nth 72, EffectIDs 80, ExtraDigests 104, Receiver 128,
// Module 136, Args 144, ImplicitInputs 168, ProfileSkip 192, recipeDigestOnce 196,
// recipeDigestErr 208, recipeDigest 224/232, contentPreferredDigestOnce 240,
// contentPreferredDigestErr 256, contentPreferredDigest 272.
type ResultCall struct {
	Kind           string
	Type           *ResultCallType
	Field          string
	SyntheticOp    string
	View           string
	Nth            int64
	EffectIDs      []string
	ExtraDigests   []ResultCallExtraDigest
	Receiver       *ResultCallRef
	Module         *ResultCallModule
	Args           []*ResultCallArg
	ImplicitInputs []*ResultCallArg
	ProfileSkip    bool

	recipeDigestOnce sync.Once
	recipeDigestErr  error
	recipeDigest     string

	contentPreferredDigestOnce sync.Once
	contentPreferredDigestErr  error
	contentPreferredDigest     string
}

// ResultCallExtraDigest (32 B): Digest 0/8, Label 16/24.
type ResultCallExtraDigest struct {
	Digest string
	Label  string
}

// ResultCallRef (24 B): ResultID 0, Call 8, shared 16.
type ResultCallRef struct {
	ResultID uint64
	Call     *ResultCall
	shared   *sharedResult
}

// ResultCallType (32 B): NamedType 0/8, NonNull 16, Elem 24.
type ResultCallType struct {
	NamedType string
	NonNull   bool
	Elem      *ResultCallType
}

// ResultCallModule (56 B): ResultRef 0, Name 8, Ref 24, Pin 40.
type ResultCallModule struct {
	ResultRef *ResultCallRef
	Name      string
	Ref       string
	Pin       string
}

// ResultCallArg is one argument (result_call_frame.go HEAD:106-110, 32 B): Name 0/8,
// IsSensitive 16, Value 24.
type ResultCallArg struct {
	Name        string
	IsSensitive bool
	Value       *ResultCallLiteral
}

// ResultCallLiteral is an argument's value (HEAD:138-153, 160 B): Kind 0/8, BoolValue 16,
// IntValue 24, FloatValue 32, StringValue 40/48, EnumValue 56/64, DigestedStringValue
// 72/80, DigestedStringDigest 88/96, ResultRef 104, ListItems 112, ObjectFields 136.
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

// HeldRecipeDigest returns the memoized recipe digest, if it was derived.
func (frame *ResultCall) HeldRecipeDigest() (string, bool) {
	if frame == nil || frame.recipeDigest == "" {
		return "", false
	}
	return frame.recipeDigest, true
}

// RecipeDigest derives (and memoizes) the recipe digest, as the telemetry hook
// does before the cache call.
func (frame *ResultCall) RecipeDigest() (string, error) {
	return frame.deriveRecipeDigest(nil)
}

func (frame *ResultCall) clone() *ResultCall {
	if frame == nil {
		return nil
	}
	return &ResultCall{
		Kind:         frame.Kind,
		Type:         frame.Type,
		Field:        frame.Field,
		View:         frame.View,
		Nth:          frame.Nth,
		ExtraDigests: append([]ResultCallExtraDigest(nil), frame.ExtraDigests...),
		Receiver:     frame.Receiver,
		Module:       frame.Module,
		Args:         append([]*ResultCallArg(nil), frame.Args...),
		ProfileSkip:  frame.ProfileSkip,
	}
}

// pad:314
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

func (frame *ResultCall) deriveRecipeDigest(c *Cache) (string, error) {
	return frame.recipeDigestWithVisiting(c, map[*ResultCall]struct{}{})
}

// selfDigestAndInputRefs: the term's self digest (field + args) and its inputs (the
// receiver).
func (frame *ResultCall) selfDigestAndInputRefs(c *Cache) (string, []*ResultCallRef, error) {
	if frame == nil {
		return "", nil, errors.New("nil call frame")
	}
	h := newHasher()
	h.str("self")
	h.str(frame.Field)
	h.str(strconv.FormatInt(frame.Nth, 10))
	for _, a := range frame.Args {
		h.str(a.Name)
		h.str(a.hashedValue())
	}
	var refs []*ResultCallRef
	if frame.Receiver != nil {
		refs = append(refs, frame.Receiver)
	}
	return h.digest(), refs, nil
}

// inputDigest is the digest a term input is indexed by: the input call's recipe digest.
func (ref *ResultCallRef) inputDigest(c *Cache) (string, error) {
	if ref == nil || ref.Call == nil {
		return "", errors.New("nil input ref")
	}
	return ref.Call.deriveRecipeDigest(c)
}

// pad:680
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (frame *ResultCall) recipeDigestWithVisiting(c *Cache, visiting map[*ResultCall]struct{}) (string, error) {
	if frame == nil {
		return "", errors.New("derive recipe digest: nil call frame")
	}
	if _, cyclic := visiting[frame]; cyclic {
		return "", fmt.Errorf("derive recipe digest: cycle at field %q", frame.Field)
	}
	frame.recipeDigestOnce.Do(func() {
		visiting[frame] = struct{}{}
		defer delete(visiting, frame)

		h := newHasher()
		h.str("recipe")
		h.str(frame.Kind)
		if frame.Receiver != nil {
			if frame.Receiver.Call == nil {
				frame.recipeDigestErr = errors.New("derive recipe digest: receiver without call")
				return
			}
			recv, err := frame.Receiver.Call.recipeDigestWithVisiting(c, visiting)
			if err != nil {
				frame.recipeDigestErr = err
				return
			}
			h.str(recv)
		}
		if frame.Module != nil {
			h.str(frame.Module.Name)
		}
		h.str(frame.Field)
		h.str(frame.View)
		h.str(strconv.FormatInt(frame.Nth, 10))
		for _, a := range frame.Args {
			h.str(a.Name)
			h.str(a.hashedValue())
		}
		for _, a := range frame.ImplicitInputs {
			h.str(a.Name)
			h.str(a.hashedValue())
		}
		dig := h.digest()
		// pad:772
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		//
		frame.recipeDigest = dig
	})
	return frame.recipeDigest, frame.recipeDigestErr
}

// pad:895
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//
//

//go:noinline
func (frame *ResultCall) pairingDigest(c *Cache) (string, error) {
	self, refs, err := frame.selfDigestAndInputRefs(c)
	if err != nil {
		return "", err
	}
	h := newHasher()
	h.str("pairing")
	h.str(self)
	for _, ref := range refs {
		d, err := ref.inputDigest(c)
		if err != nil {
			return "", err
		}
		h.str(d)
	}
	return h.digest(), nil
}
