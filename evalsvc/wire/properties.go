package wire

import (
	"errors"
	"io"
)

// errNotObject is a JSON value that is neither an object nor null where
// properties are expected; encoding/json reports it as an UnmarshalTypeError.
var errNotObject = errors.New("wire: properties are not a JSON object")

// DecodeProperties decodes the stored JSON object b into m, as
// json.NewDecoder(bytes.NewReader(b)) with UseNumber decoding into &m does,
// but with fewer allocations: m receives the same keys and values (numbers
// as json.Number keeping their text; strings, bools, nil, []any and
// map[string]any), a later duplicate key wins, and anything after the
// object is ignored. Empty b decodes to nothing (nil error), and so does
// the literal null. Input that encoding/json rejects, or a value other than
// an object or null, returns an error (wrapping ErrInvalidJSON for a syntax
// error) and leaves m unchanged. With a nil m, b is only validated.
//
// No value aliases b: strings are copies, and may be shared with earlier
// results of DecodeProperties and DecodeFlagsRequest (strings are
// immutable). The caller may clear m and reuse it.
func DecodeProperties(b []byte, m map[string]any) error {
	if len(b) == 0 {
		return nil
	}
	p := getParser(b)
	defer putParser(p)
	p.ws()
	if p.i >= len(b) {
		return io.EOF // what json.Decoder says of blank input
	}
	switch b[p.i] {
	case '{':
		ok := p.members()
		if ok && m != nil {
			for _, e := range p.mems {
				m[e.key] = e.val
			}
		}
		clear(p.mems)
		p.mems = p.mems[:0]
		if !ok {
			return p.err
		}
		return nil
	case 'n':
		if !p.literal("null") {
			return p.err
		}
		return nil
	default:
		if !p.skip() {
			return p.err
		}
		return errNotObject
	}
}
