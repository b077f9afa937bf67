package ingest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// checkPersonUpdateDecoder fails when decodePersonUpdate accepts data that
// proto.Unmarshal decodes differently or refuses.
func checkPersonUpdateDecoder(t *testing.T, data []byte) (accepted bool) {
	t.Helper()
	fast, ok := decodePersonUpdate(data)
	if !ok {
		return false
	}
	slow := new(ingestv1.Envelope)
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, slow); err != nil {
		t.Fatalf("decodePersonUpdate accepted %x, proto.Unmarshal refuses it: %v", data, err)
	}
	if !proto.Equal(fast, slow) {
		t.Fatalf("decodePersonUpdate(%x) =\n%v\nproto.Unmarshal =\n%v", data, fast, slow)
	}
	return true
}

func randomPersonUpdate(r *rand.Rand) *ingestv1.Envelope {
	strs := []string{"", "a", "p1", "ü", "x y", `"pro"`, "5.00", "{}", "[1,2]"}
	str := func() string { return strs[r.IntN(len(strs))] }
	pu := &ingestv1.PersonUpdate{Team: r.Int64N(5) - 1, PersonId: str()}
	for range r.IntN(3) {
		pu.DistinctIds = append(pu.DistinctIds, str())
	}
	for range r.IntN(3) {
		pu.Unset = append(pu.Unset, str())
	}
	if n := r.IntN(4); n > 0 {
		pu.Set = map[string]string{}
		for range n {
			pu.Set[str()] = str()
		}
	}
	if r.IntN(2) == 0 {
		pu.SetOnce = map[string]string{str(): str()}
	}
	if r.IntN(3) > 0 {
		pu.Version = new(r.Int64N(1000) - 10)
	}
	if r.IntN(3) == 0 {
		pu.Timestamp = &timestamppb.Timestamp{Seconds: r.Int64N(1e10) - 5, Nanos: r.Int32N(2e9) - 1e9}
	}
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: pu}}
}

// TestPersonUpdateDecoder compares the fast decoder with proto.Unmarshal on
// random person updates, concatenations of them (repeated fields merge),
// other kinds, and single-byte mutations.
func TestPersonUpdateDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	accepted := 0
	for i := range 20000 {
		data, err := proto.Marshal(randomPersonUpdate(r))
		if err != nil {
			t.Fatal(err)
		}
		if r.IntN(4) == 0 {
			more, _ := proto.Marshal(randomPersonUpdate(r))
			data = append(data, more...)
		}
		switch r.IntN(4) {
		case 0: // flip a byte
			if len(data) > 0 {
				data[r.IntN(len(data))] ^= byte(1 + r.IntN(255))
			}
		case 1: // cut short
			data = data[:r.IntN(len(data)+1)]
		}
		if checkPersonUpdateDecoder(t, data) {
			accepted++
		}
		if i == 0 {
			other, _ := proto.Marshal(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonDelete{PersonDelete: &ingestv1.PersonDelete{Team: 1, PersonId: "p"}}})
			if checkPersonUpdateDecoder(t, other) {
				t.Fatal("decodePersonUpdate accepted a PersonDelete")
			}
		}
	}
	if accepted < 5000 {
		t.Fatalf("only %d of 20000 inputs took the fast path", accepted)
	}
	t.Logf("%d of 20000 took the fast path", accepted)
}

func FuzzPersonUpdateDecoder(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		data, _ := proto.Marshal(randomPersonUpdate(r))
		f.Add(data)
	}
	f.Add([]byte(fmt.Sprint("\x0a\x05\x08\x01\x12\x01p")))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkPersonUpdateDecoder(t, data)
	})
}

// BenchmarkDecodePersonUpdate decodes the projector benchmark's person
// update (three $set properties, one distinct id).
func BenchmarkDecodePersonUpdate(b *testing.B) {
	data, err := proto.Marshal(&ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: 1, PersonId: "person-0000042", DistinctIds: []string{"distinct-0000042"},
		Set:     map[string]string{"plan": `"pro"`, "seats": "42", "email": `"user42@example.com"`},
		Version: new(int64(42)),
	}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode("", "vexil.persons.1", ContentTypeProtobuf, data, Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		for b.Loop() {
			env := new(ingestv1.Envelope)
			if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, env); err != nil {
				b.Fatal(err)
			}
			if err := validate(env, Limits{}.WithDefaults()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
