// Package callpbv1 is a stand-in for the protoc-gen-go output of dagql/call/callpbv1
// (protoc-gen-go v1.34.2, google.golang.org/protobuf v1.36.x). There is no protobuf
// library here: the message structs only reproduce the generated field layout
// (protoimpl.MessageState = 8 bytes, protoimpl.SizeCache = int32,
// protoimpl.UnknownFields = []byte) so that every exported field sits at the same
// offset as in the real engine. The tracer reads Call.Digest (+120/+128),
// Call.Field (+64/+72) and Call.ContentDigest (+160/+168) from uprobes.
package callpbv1

// messageState mirrors protoimpl.MessageState: one pointer-sized word
// (pragma.NoUnkeyedLiterals, DoNotCompare, DoNotCopy are zero-sized; atomicMessageInfo
// is a pointer).
type messageState struct {
	_                 [0]func()
	atomicMessageInfo *messageInfo
}

type messageInfo struct {
	name string
}

type sizeCache = int32

type unknownFields = []byte

// Call is one field selection of an ID. Size 200 (v0.20.8 layout).
type Call struct {
	state         messageState  // 0
	sizeCache     sizeCache     // 8
	unknownFields unknownFields // 16

	ReceiverDigest string      `protobuf:"bytes,1,opt,name=receiverDigest,proto3" json:"receiverDigest,omitempty"`  // 40
	Type           *Type       `protobuf:"bytes,2,opt,name=type,proto3" json:"type,omitempty"`                      // 56
	Field          string      `protobuf:"bytes,3,opt,name=field,proto3" json:"field,omitempty"`                    // 64
	Args           []*Argument `protobuf:"bytes,4,rep,name=args,proto3" json:"args,omitempty"`                      // 80
	Nth            int64       `protobuf:"varint,5,opt,name=nth,proto3" json:"nth,omitempty"`                       // 104
	Module         *Module     `protobuf:"bytes,6,opt,name=module,proto3" json:"module,omitempty"`                  // 112
	Digest         string      `protobuf:"bytes,7,opt,name=digest,proto3" json:"digest,omitempty"`                  // 120
	View           string      `protobuf:"bytes,8,opt,name=view,proto3" json:"view,omitempty"`                      // 136
	IsCustomDigest bool        `protobuf:"varint,9,opt,name=isCustomDigest,proto3" json:"isCustomDigest,omitempty"` // 152
	ContentDigest  string      `protobuf:"bytes,10,opt,name=contentDigest,proto3" json:"contentDigest,omitempty"`   // 160
	EffectIds      []string    `protobuf:"bytes,11,rep,name=effectIds,proto3" json:"effectIds,omitempty"`           // 176
}

func (x *Call) GetReceiverDigest() string {
	if x != nil {
		return x.ReceiverDigest
	}
	return ""
}

func (x *Call) GetType() *Type {
	if x != nil {
		return x.Type
	}
	return nil
}

func (x *Call) GetField() string {
	if x != nil {
		return x.Field
	}
	return ""
}

func (x *Call) GetArgs() []*Argument {
	if x != nil {
		return x.Args
	}
	return nil
}

func (x *Call) GetNth() int64 {
	if x != nil {
		return x.Nth
	}
	return 0
}

func (x *Call) GetDigest() string {
	if x != nil {
		return x.Digest
	}
	return ""
}

func (x *Call) GetContentDigest() string {
	if x != nil {
		return x.ContentDigest
	}
	return ""
}

func (x *Call) GetView() string {
	if x != nil {
		return x.View
	}
	return ""
}

// ExtraDigest is an additional digest (e.g. label "content") of a call's output.
// Size 72: Digest 40/48, Label 56/64.
type ExtraDigest struct {
	state         messageState
	sizeCache     sizeCache
	unknownFields unknownFields

	Digest string `protobuf:"bytes,1,opt,name=digest,proto3" json:"digest,omitempty"` // 40
	Label  string `protobuf:"bytes,2,opt,name=label,proto3" json:"label,omitempty"`   // 56
}

func (x *ExtraDigest) GetDigest() string {
	if x != nil {
		return x.Digest
	}
	return ""
}

func (x *ExtraDigest) GetLabel() string {
	if x != nil {
		return x.Label
	}
	return ""
}

// Type is a GraphQL type reference. NamedType 40/48, Elem 56, NonNull 64.
type Type struct {
	state         messageState
	sizeCache     sizeCache
	unknownFields unknownFields

	NamedType string `protobuf:"bytes,1,opt,name=namedType,proto3" json:"namedType,omitempty"`
	Elem      *Type  `protobuf:"bytes,2,opt,name=elem,proto3" json:"elem,omitempty"`
	NonNull   bool   `protobuf:"varint,3,opt,name=nonNull,proto3" json:"nonNull,omitempty"`
}

func (x *Type) GetNamedType() string {
	if x != nil {
		return x.NamedType
	}
	return ""
}

// Argument is a named argument of a call. Name 40/48, Value 56.
type Argument struct {
	state         messageState
	sizeCache     sizeCache
	unknownFields unknownFields

	Name  string   `protobuf:"bytes,1,opt,name=name,proto3" json:"name,omitempty"`
	Value *Literal `protobuf:"bytes,2,opt,name=value,proto3" json:"value,omitempty"`
}

func (x *Argument) GetName() string {
	if x != nil {
		return x.Name
	}
	return ""
}

// Literal is an argument value. Only the string and call-digest cases are modelled.
type Literal struct {
	state         messageState
	sizeCache     sizeCache
	unknownFields unknownFields

	String_    string `protobuf:"bytes,1,opt,name=string,proto3" json:"string,omitempty"`
	CallDigest string `protobuf:"bytes,2,opt,name=callDigest,proto3" json:"callDigest,omitempty"`
}

// Module identifies the module that provides a call's field.
type Module struct {
	state         messageState
	sizeCache     sizeCache
	unknownFields unknownFields

	CallDigest string `protobuf:"bytes,1,opt,name=callDigest,proto3" json:"callDigest,omitempty"`
	Name       string `protobuf:"bytes,2,opt,name=name,proto3" json:"name,omitempty"`
	Ref        string `protobuf:"bytes,3,opt,name=ref,proto3" json:"ref,omitempty"`
	Pin        string `protobuf:"bytes,4,opt,name=pin,proto3" json:"pin,omitempty"`
}
