// Package call is a stand-in for dagql/call: immutable call IDs whose recipe digest is
// precomputed when the ID is built and stored in the protobuf message (pb.Digest), as
// in the real engine. Digests are "xxh3:" + 16 lowercase hex digits (21 bytes); the
// hash itself is FNV-1a 64 (the real engine uses xxh3; only the format matters here).
package call

import (
	"strconv"

	"github.com/dagger/dagger/dagql/call/callpbv1"
)

// Digest is a content or recipe digest ("xxh3:<16 hex>"), like go-digest's Digest.
type Digest string

func (d Digest) String() string { return string(d) }

// ID is an immutable call ID. Size 56 (v0.20.8: no implicit inputs); pb at offset 0.
// The digests are not fields of ID: they live in pb.Digest and pb.ContentDigest.
type ID struct {
	pb       *callpbv1.Call // 0
	receiver *ID            // 8
	args     []*Argument    // 16
	module   *Module        // 40
	typ      *Type          // 48
}

// Argument is a named argument of a call.
type Argument struct {
	pb    *callpbv1.Argument
	value Literal
}

// Literal is an argument value.
type Literal struct {
	str    string
	callID *ID
}

// Module identifies the module providing a field.
type Module struct {
	pb *callpbv1.Module
}

// Type is the return type of a call.
type Type struct {
	pb *callpbv1.Type
}

// NewType returns a named, non-null type.
func NewType(name string) *Type {
	return &Type{pb: &callpbv1.Type{NamedType: name, NonNull: true}}
}

func (t *Type) NamedType() string {
	if t == nil {
		return ""
	}
	return t.pb.NamedType
}

// NewArgument returns a string-valued argument.
func NewArgument(name, value string) *Argument {
	return &Argument{
		pb:    &callpbv1.Argument{Name: name, Value: &callpbv1.Literal{String_: value}},
		value: Literal{str: value},
	}
}

// NewIDArgument returns an argument whose value is another ID.
func NewIDArgument(name string, id *ID) *Argument {
	return &Argument{
		pb:    &callpbv1.Argument{Name: name, Value: &callpbv1.Literal{CallDigest: string(id.Digest())}},
		value: Literal{callID: id},
	}
}

func (a *Argument) Name() string { return a.pb.Name }

func (a *Argument) Value() string {
	if a.value.callID != nil {
		return string(a.value.callID.Digest())
	}
	return a.value.str
}

// New returns the root (Query) ID.
func New() *ID {
	return nil
}

// Append returns a new ID selecting field on id (id may be nil for the root).
func (id *ID) Append(ret *Type, field string, nth int, args ...*Argument) *ID {
	next := &ID{
		pb: &callpbv1.Call{
			Type:  ret.pb,
			Field: field,
			Nth:   int64(nth),
		},
		receiver: id,
		args:     args,
		typ:      ret,
	}
	if id != nil {
		next.pb.ReceiverDigest = string(id.Digest())
		next.module = id.module
	}
	for _, a := range args {
		next.pb.Args = append(next.pb.Args, a.pb)
	}
	next.pb.Digest = string(next.calcDigest())
	return next
}

// WithContentDigest returns a copy of id whose output is content-addressed: the
// recipe digest is unchanged, pb.ContentDigest is set.
func (id *ID) WithContentDigest(d Digest) *ID {
	cp := id.clone()
	cp.pb.ContentDigest = string(d)
	return cp
}

func (id *ID) clone() *ID {
	pb := *id.pb
	cp := *id
	cp.pb = &pb
	return &cp
}

// Digest returns the recipe digest (precomputed, stored in pb.Digest).
func (id *ID) Digest() Digest {
	return Digest(id.pb.Digest)
}

// ContentDigest returns the content digest (pb.ContentDigest), usually empty.
func (id *ID) ContentDigest() Digest {
	return Digest(id.pb.ContentDigest)
}

func (id *ID) Field() string        { return id.pb.Field }
func (id *ID) Receiver() *ID        { return id.receiver }
func (id *ID) Args() []*Argument    { return id.args }
func (id *ID) Type() *Type          { return id.typ }
func (id *ID) Nth() int             { return int(id.pb.Nth) }
func (id *ID) Call() *callpbv1.Call { return id.pb }

// SelfDigest is the digest of the call without its receiver: field, args, nth
// and type. Together with the input digests (the receiver's, and those
// of ID-valued arguments) it forms the e-graph term of the call.
func (id *ID) SelfDigest() Digest {
	h := newHasher()
	h.str("self")
	h.str(id.pb.Field)
	h.str(id.typ.NamedType())
	h.str(strconv.FormatInt(id.pb.Nth, 10))
	for _, a := range id.args {
		h.str(a.Name())
		if a.value.callID != nil {
			h.str("<input>")
		} else {
			h.str(a.value.str)
		}
	}
	return h.digest()
}

// Inputs returns the digests of the call's inputs (receiver first, then ID-valued args).
func (id *ID) Inputs() []Digest {
	var inputs []Digest
	if id.receiver != nil {
		inputs = append(inputs, id.receiver.Digest())
	}
	for _, a := range id.args {
		if a.value.callID != nil {
			inputs = append(inputs, a.value.callID.Digest())
		}
	}
	return inputs
}

func (id *ID) calcDigest() Digest {
	h := newHasher()
	h.str("recipe")
	h.str(string(id.SelfDigest()))
	for _, in := range id.Inputs() {
		h.str(string(in))
	}
	return h.digest()
}

// Display is a short human form: receiver.field(args).
func (id *ID) Display() string {
	if id == nil {
		return "Query"
	}
	s := id.pb.Field
	if len(id.args) > 0 {
		s += "("
		for i, a := range id.args {
			if i > 0 {
				s += ", "
			}
			s += a.Name() + ": " + a.Value()
		}
		s += ")"
	}
	if id.receiver != nil {
		return id.receiver.Display() + "." + s
	}
	return s
}

// HashString digests arbitrary strings in the same format as IDs.
func HashString(parts ...string) Digest {
	h := newHasher()
	for _, p := range parts {
		h.str(p)
	}
	return h.digest()
}

// hasher is FNV-1a 64 with length-prefixed parts.
type hasher struct{ sum uint64 }

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func newHasher() *hasher { return &hasher{sum: fnvOffset64} }

func (h *hasher) byte1(b byte) {
	h.sum ^= uint64(b)
	h.sum *= fnvPrime64
}

func (h *hasher) str(s string) {
	n := len(s)
	for i := 0; i < 4; i++ {
		h.byte1(byte(n >> (8 * i)))
	}
	for i := 0; i < len(s); i++ {
		h.byte1(s[i])
	}
}

func (h *hasher) digest() Digest {
	const hexdigits = "0123456789abcdef"
	var buf [21]byte
	copy(buf[:], "xxh3:")
	for i := 0; i < 16; i++ {
		buf[5+i] = hexdigits[(h.sum>>(60-4*uint(i)))&0xf]
	}
	return Digest(buf[:])
}
