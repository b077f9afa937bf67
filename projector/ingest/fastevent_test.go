package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// checkEventDecoder fails when decodeEvent accepts data that
// proto.Unmarshal decodes differently or refuses.
func checkEventDecoder(t *testing.T, data []byte) (accepted bool) {
	t.Helper()
	fast, ok := decodeEvent(data)
	if !ok {
		return false
	}
	slow := new(ingestv1.Envelope)
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, slow); err != nil {
		t.Fatalf("decodeEvent accepted %x, proto.Unmarshal refuses it: %v", data, err)
	}
	if !proto.Equal(fast, slow) {
		t.Fatalf("decodeEvent(%x) =\n%v\nproto.Unmarshal =\n%v", data, fast, slow)
	}
	return true
}

func randomEvent(r *rand.Rand) *ingestv1.Envelope {
	strs := []string{"", "a", "u1", "ü", "x y", `"pro"`, "5.00", "{}", "[1,2]", "$pageview"}
	str := func() string { return strs[r.IntN(len(strs))] }
	ev := &ingestv1.Event{Team: r.Int64N(5) - 1, DistinctId: str(), Event: str(), Uuid: str()}
	if n := r.IntN(5); n > 0 {
		ev.Properties = map[string]string{}
		for range n {
			ev.Properties[str()] = str()
		}
	}
	if r.IntN(4) > 0 {
		ev.Timestamp = &timestamppb.Timestamp{Seconds: r.Int64N(1e10) - 5, Nanos: r.Int32N(2e9) - 1e9}
	}
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: ev}}
}

// TestEventDecoder compares the fast decoder with proto.Unmarshal on
// random events, which it must accept, and on their truncations and on
// other kinds, which it may refuse but never decode wrongly.
func TestEventDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		data, err := proto.Marshal(randomEvent(r))
		if err != nil {
			t.Fatal(err)
		}
		if !checkEventDecoder(t, data) {
			t.Fatalf("decodeEvent refused a valid event %x", data)
		}
		for cut := range len(data) {
			checkEventDecoder(t, data[:cut])
		}
	}
	for range 200 {
		data, _ := proto.Marshal(randomPersonUpdate(r))
		if _, ok := decodeEvent(data); ok && len(data) > 0 {
			t.Fatal("decodeEvent accepted a PersonUpdate")
		}
	}
}

func FuzzEventDecoder(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		data, _ := proto.Marshal(randomEvent(r))
		f.Add(data)
	}
	f.Add([]byte(fmt.Sprint("\x32\x04\x08\x01\x12\x00")))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkEventDecoder(t, data)
	})
}
