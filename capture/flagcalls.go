package capture

import (
	"bytes"
	"encoding/json"
)

// FlagCall is how often a request's events say an SDK evaluated one flag
// to one value in process.
type FlagCall struct {
	Key   string
	Value string // the variant, or "true" / "false"
	Count uint64
}

// flagCalls reads the local evaluations a request reports: PostHog's
// server SDKs evaluating locally send a $feature_flag_called event with
// locally_evaluated true, the flag in $feature_flag and the answer in
// $feature_flag_response (true, false or the variant). That is their only
// report of local evaluation; the SDKs send it once per distinct id, flag
// and value they have not yet reported (a bounded cache), so the count is
// a lower bound of the evaluations, enough to show the flag is in use. A
// remote evaluation (locally_evaluated false or absent) was counted when
// it was answered, and an event without a flag or an answer (an unknown
// flag) says nothing of a flag.
func flagCalls(b *batch) []FlagCall {
	var out []FlagCall
	for i := range b.events {
		e := &b.events[i]
		if e.Event != "$feature_flag_called" || !bytes.Equal(bytes.TrimSpace(e.Properties["locally_evaluated"]), []byte("true")) {
			continue
		}
		key := rawString(e.Properties["$feature_flag"])
		if key == "" {
			continue
		}
		var value string
		switch resp := bytes.TrimSpace(e.Properties["$feature_flag_response"]); {
		case bytes.Equal(resp, []byte("true")), bytes.Equal(resp, []byte("false")):
			value = string(resp)
		case len(resp) > 0 && resp[0] == '"':
			if json.Unmarshal(resp, &value) != nil || value == "" {
				continue
			}
		default:
			continue
		}
		found := false
		for j := range out {
			if out[j].Key == key && out[j].Value == value {
				out[j].Count++
				found = true
				break
			}
		}
		if !found {
			out = append(out, FlagCall{Key: key, Value: value, Count: 1})
		}
	}
	return out
}
