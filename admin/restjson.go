package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// restMarshaler is the REST surface's JSON, PostHog's conventions on top
// of protojson: snake_case names, every scalar written even when zero,
// 64-bit integers (ids, versions) as JSON numbers rather than protojson's
// strings, unknown fields of a request ignored (as PostHog's API does, so
// that a flag read from PostHog's API can be posted back unchanged), and a
// property value in a request that a double would change read as a string
// of its text (see exactNumbers; the engine compares both alike).
type restMarshaler struct {
	runtime.JSONPb
}

func newRESTMarshaler() *restMarshaler {
	return &restMarshaler{runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// Marshal writes v; a message has its 64-bit integers as numbers.
func (m *restMarshaler) Marshal(v any) ([]byte, error) {
	data, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	msg, ok := v.(proto.Message)
	if !ok {
		return data, nil
	}
	g, err := decodeGeneric(data)
	if err != nil {
		return nil, err
	}
	int64Numbers(msg.ProtoReflect().Descriptor(), g)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(g); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// NewEncoder writes through Marshal.
func (m *restMarshaler) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		data, err := m.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
}

// Unmarshal reads data into v.
func (m *restMarshaler) Unmarshal(data []byte, v any) error {
	return m.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// NewDecoder reads one JSON value, turns the property values a double would
// change into strings, and decodes it with protojson.
func (m *restMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		dec := json.NewDecoder(r)
		dec.UseNumber()
		var g any
		if err := dec.Decode(&g); err != nil {
			return err
		}
		data, err := json.Marshal(exactNumbers(g))
		if err != nil {
			return err
		}
		return m.JSONPb.Unmarshal(data, v)
	})
}

// int64Numbers rewrites, in a message's protojson form decoded with
// UseNumber, the 64-bit integer fields from strings to numbers.
func int64Numbers(md protoreflect.MessageDescriptor, v any) {
	obj, ok := v.(map[string]any)
	if !ok || strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return
	}
	for name, val := range obj {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			continue
		}
		switch {
		case fd.IsMap():
			entries, _ := val.(map[string]any)
			for k, e := range entries {
				entries[k] = int64Value(fd.MapValue(), e)
			}
		case fd.IsList():
			items, _ := val.([]any)
			for i, e := range items {
				items[i] = int64Value(fd, e)
			}
		default:
			obj[name] = int64Value(fd, val)
		}
	}
}

// int64Value converts one value of field fd.
func int64Value(fd protoreflect.FieldDescriptor, v any) any {
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if s, ok := v.(string); ok {
			return json.Number(s)
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		int64Numbers(fd.Message(), v)
	}
	return v
}
