package wire

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/vexil-dev/vexil/flags"
)

func sampleResponse() *Response {
	return &Response{
		RequestID:         uuid.MustParse("0c9a3e1b-5a7c-4a55-9b3e-6f1d2f2f0d11"),
		EvaluatedAtMillis: 1735689600123,
		Records: []Record{
			{Key: "new-checkout", Enabled: true, Variant: "test", ID: 17, Version: 4, Payload: []byte(`"{\"price\": 9}"`), HasExperiment: true,
				Reason: flags.Reason{Code: flags.ReasonConditionMatch, ConditionIndex: 1, Description: "Matched condition set 2"}},
			{Key: "dark-mode", ID: 18, Version: 1, Payload: []byte(`"ignored when disabled"`),
				Reason: flags.Reason{Code: flags.ReasonOutOfRolloutBound, ConditionIndex: 0, Description: "Out of rollout bound"}},
			{Key: "beta", Enabled: true, ID: 19, Version: 2, Description: "Beta \"quoted\"",
				Reason: flags.Reason{Code: flags.ReasonConditionMatch, ConditionIndex: 0, Description: "Matched condition set 1"}},
			{Key: "broken", Failed: true, ID: 20, Reason: flags.Reason{Code: flags.ReasonError, ConditionIndex: -1, Description: "Could not evaluate"}},
		},
		ErrorsWhileComputing: true,
	}
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return m
}

func TestResponseV2(t *testing.T) {
	m := decode(t, sampleResponse().AppendJSON(nil, ShapeV2))
	fl := m["flags"].(map[string]any)
	nc := fl["new-checkout"].(map[string]any)
	if nc["enabled"] != true || nc["variant"] != "test" || nc["key"] != "new-checkout" {
		t.Errorf("new-checkout %v", nc)
	}
	reason := nc["reason"].(map[string]any)
	if reason["code"] != "condition_match" || reason["condition_index"] != 1.0 || reason["description"] != "Matched condition set 2" {
		t.Errorf("reason %v", reason)
	}
	meta := nc["metadata"].(map[string]any)
	if meta["id"] != 17.0 || meta["version"] != 4.0 || meta["payload"] != `{"price": 9}` || meta["description"] != nil || meta["has_experiment"] != true {
		t.Errorf("metadata %v", meta)
	}
	dm := fl["dark-mode"].(map[string]any)
	if dm["enabled"] != false || dm["variant"] != nil || dm["metadata"].(map[string]any)["payload"] != nil {
		t.Errorf("a disabled flag has no variant and no payload: %v", dm)
	}
	if _, has := dm["failed"]; has {
		t.Error("failed must be left out when the flag did not fail")
	}
	if fl["broken"].(map[string]any)["failed"] != true {
		t.Error("a failed flag carries failed: true")
	}
	if fl["beta"].(map[string]any)["metadata"].(map[string]any)["description"] != `Beta "quoted"` {
		t.Error("description lost")
	}
	if m["errorsWhileComputingFlags"] != true || m["requestId"] == "" || m["evaluatedAt"] != 1735689600123.0 {
		t.Errorf("top level %v", m)
	}
	if _, has := m["quotaLimited"]; has {
		t.Error("quotaLimited only when limited")
	}
	if _, has := m["supportedCompression"]; has {
		t.Error("config keys only when asked")
	}
}

func TestResponseLegacyAndDecide(t *testing.T) {
	r := sampleResponse()
	r.Config = true
	m := decode(t, r.AppendJSON(nil, ShapeLegacy))
	ff := m["featureFlags"].(map[string]any)
	if ff["new-checkout"] != "test" || ff["dark-mode"] != false || ff["beta"] != true || len(ff) != 3 {
		t.Errorf("featureFlags %v (a failed flag is left out)", ff)
	}
	fp := m["featureFlagPayloads"].(map[string]any)
	if fp["new-checkout"] != `{"price": 9}` || len(fp) != 1 {
		t.Errorf("featureFlagPayloads %v", fp)
	}
	if m["supportedCompression"] == nil || m["config"] == nil {
		t.Errorf("config keys missing: %v", m)
	}
	v1 := decode(t, r.AppendJSON(nil, ShapeDecideV1))["featureFlags"].([]any)
	if len(v1) != 2 || v1[0] != "new-checkout" || v1[1] != "beta" {
		t.Errorf("decide v1 %v", v1)
	}
	v2 := decode(t, r.AppendJSON(nil, ShapeDecideV2))["featureFlags"].(map[string]any)
	if len(v2) != 2 || v2["new-checkout"] != "test" || v2["beta"] != true {
		t.Errorf("decide v2 %v", v2)
	}
}

func TestResponseQuotaLimited(t *testing.T) {
	r := sampleResponse()
	r.QuotaLimited, r.ErrorsWhileComputing = true, false
	m := decode(t, r.AppendJSON(nil, ShapeV2))
	if len(m["flags"].(map[string]any)) != 0 {
		t.Error("a quota-limited response has no flags")
	}
	if q := m["quotaLimited"].([]any); len(q) != 1 || q[0] != "feature_flags" {
		t.Errorf("quotaLimited %v", q)
	}
}

// TestPlainPrefix: the eight-bytes-at-a-time scan stops where a byte at
// a time does, on strings of every byte value and of plain ASCII with one
// byte that is not, at every position.
func TestPlainPrefix(t *testing.T) {
	ref := func(s string) int {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
				return i
			}
		}
		return len(s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	plain := []byte("abcdefghijklmnopqrstuvwxyz0123456789 _-.:/{}[]~!")
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = plain[r.IntN(len(plain))]
		}
		if len(b) > 0 && r.IntN(4) > 0 {
			b[r.IntN(len(b))] = byte(r.IntN(256))
		}
		if s := string(b); plainPrefix(s) != ref(s) {
			t.Fatalf("plainPrefix(%q) = %d, want %d", s, plainPrefix(s), ref(s))
		}
	}
	for c := range 256 {
		for pos := range 17 {
			b := []byte(strings.Repeat("x", 17))
			b[pos] = byte(c)
			if s := string(b); plainPrefix(s) != ref(s) {
				t.Fatalf("plainPrefix(%q) = %d, want %d", s, plainPrefix(s), ref(s))
			}
		}
	}
}

// appendString must agree with encoding/json on every string it is given.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", "\"", "\\", "\n", "\t", "\x00", "\x1f", "é", "😀", "\u2028", "<", ">", "&", "\xff", "\xc3",
		"abcdefgh", "condition set ", "x", "y"}
	for range 5000 {
		var b strings.Builder
		for range r.IntN(16) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		s := b.String()
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, got, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if !utf8.ValidString(s) {
			// Each invalid byte becomes one U+FFFD, as encoding/json does.
			want = string(json.RawMessage(mustMarshal(t, s)))
			var w string
			_ = json.Unmarshal([]byte(want), &w)
			want = w
		}
		if back != want {
			t.Fatalf("%q round-trips to %q, want %q", s, back, want)
		}
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPrerenderedSameBytes: a response written with prerendered parts is
// byte for byte the one written without, and parts rendered for another
// definition (key, id, version, description or experiment) are ignored.
func TestPrerenderedSameBytes(t *testing.T) {
	want := sampleResponse().AppendJSON(nil, ShapeV2)
	resp := sampleResponse()
	for i := range resp.Records {
		r := &resp.Records[i]
		r.Pre = Prerender(r.Key, r.ID, r.Version, r.Description, r.HasExperiment)
	}
	if got := resp.AppendJSON(nil, ShapeV2); string(got) != string(want) {
		t.Fatalf("prerendered:\n%s\nwant:\n%s", got, want)
	}
	stale := sampleResponse()
	for i := range stale.Records {
		r := &stale.Records[i]
		switch i % 4 {
		case 0:
			r.Pre = Prerender(r.Key+"x", r.ID, r.Version, r.Description, r.HasExperiment)
		case 1:
			r.Pre = Prerender(r.Key, r.ID, r.Version+1, r.Description, r.HasExperiment)
		case 2:
			r.Pre = Prerender(r.Key, r.ID, r.Version, r.Description+"x", r.HasExperiment)
		case 3:
			r.Pre = Prerender(r.Key, r.ID+1, r.Version, r.Description, !r.HasExperiment)
		}
	}
	if got := stale.AppendJSON(nil, ShapeV2); string(got) != string(want) {
		t.Fatalf("with parts of other definitions:\n%s\nwant:\n%s", got, want)
	}
}

// TestPrerenderedReasons: one flag's prerendered parts, used over and over
// with every reason it may give (so that its reason slots are hit,
// filled, and overwritten by reasons that share a slot), write each record
// exactly as it is written without them.
func TestPrerenderedReasons(t *testing.T) {
	codes := []flags.ReasonCode{flags.ReasonConditionMatch, flags.ReasonNoConditionMatch, flags.ReasonOutOfRolloutBound,
		flags.ReasonFlagDisabled, flags.ReasonError, flags.ReasonHoldout, flags.ReasonOverride}
	descs := []string{"Matched condition set 1", "Out of rollout bound", "No matching condition set", "a \"quoted\" condition", ""}
	pre := Prerender("k", 7, 3, "", false)
	r := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		rec := Record{Key: "k", ID: 7, Version: 3, Enabled: r.IntN(2) == 0,
			Reason: flags.Reason{Code: codes[r.IntN(len(codes))], ConditionIndex: r.IntN(40) - 1, Description: descs[r.IntN(len(descs))]}}
		if r.IntN(3) == 0 {
			rec.Variant = "v"
		}
		want := (&Response{Records: []Record{rec}}).AppendJSON(nil, ShapeV2)
		rec.Pre = pre
		if got := (&Response{Records: []Record{rec}}).AppendJSON(nil, ShapeV2); string(got) != string(want) {
			t.Fatalf("reason %+v prerendered:\n%s\nwant:\n%s", rec.Reason, got, want)
		}
	}
}

// TestAppendUUID: the request id is written as uuid.String spells it.
func TestAppendUUID(t *testing.T) {
	for _, u := range []uuid.UUID{uuid.Nil, uuid.Max, uuid.MustParse("0C9A3E1B-5A7C-4A55-9B3E-6F1D2F2F0D11"), uuid.New(), uuid.New()} {
		if got := string(appendUUID([]byte("x"), u)); got != "x"+u.String() {
			t.Errorf("appendUUID %s, want x%s", got, u)
		}
	}
}
