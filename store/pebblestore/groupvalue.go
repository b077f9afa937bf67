package pebblestore

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vexil-dev/vexil/store"
)

// A group value is either the group's canonical encoding
// (store.Group.MarshalBinary, results included), once the group was put,
// or, for results written to a group never put, a results-only record:
//
//	resultsOnly byte
//	stamp       varint (ResultsStamp)
//	results     the rest
//
// resultsOnly differs from the canonical encoding's kind byte.
const resultsOnly = 'x'

// appendGroupValue appends the value of g: its canonical encoding when
// present, else the results-only record of g's results.
func appendGroupValue(b []byte, g *store.Group, present bool) ([]byte, error) {
	if present {
		return g.AppendBinary(b)
	}
	b = binary.AppendVarint(append(b, resultsOnly), g.ResultsStamp)
	return append(b, g.Results...), nil
}

// decodeGroupValue decodes buf, which the caller owns: present reports a
// put group; otherwise only Results and ResultsStamp are set.
func decodeGroupValue(buf []byte) (g *store.Group, present bool, err error) {
	if len(buf) > 0 && buf[0] == resultsOnly {
		stamp, n := binary.Varint(buf[1:])
		if n <= 0 {
			return nil, false, fmt.Errorf("%w: bad group results record", store.ErrCorrupt)
		}
		g = &store.Group{ResultsStamp: stamp}
		if rest := buf[1+n:]; len(rest) > 0 {
			g.Results = slices.Clip(rest)
		}
		return g, false, nil
	}
	g = new(store.Group)
	if err := g.UnmarshalBinary(buf); err != nil {
		return nil, false, err
	}
	return g, true, nil
}
