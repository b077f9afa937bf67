//go:build goexperiment.jsonv2

package jsoncmp

import (
	jsonv2 "encoding/json/v2"
)

// encoding/json/v2 joins the comparison when built with
// GOEXPERIMENT=jsonv2 (Go 1.26 has it only as an experiment). It keeps
// numbers in a map[string]any as float64: it has no UseNumber.
func init() {
	unmarshal := func(b []byte, v any) error { return jsonv2.Unmarshal(b, v) }
	unmarshalers = append(unmarshalers, struct {
		name      string
		unmarshal func([]byte, any) error
	}{"encoding-json-v2", unmarshal})
	decoders = append(decoders, decoder{"encoding-json-v2", typed(unmarshal),
		func(b []byte, m map[string]any) error { return jsonv2.Unmarshal(b, &m) }})
}
