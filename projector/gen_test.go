package projector_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

// Shoppers: the persons and distinct ids that tracked events are sent to.
// Their rows exist before the stream (genSetup) and are never deleted, so
// that whether an event counts does not depend on the order of delivery
// (an event for a distinct id without a person is not counted); within the
// stream they get property updates and merges among themselves (a distinct
// id's row, counters included, moves to another shopper).
const shoppers = 8

func shopperID(i int) string     { return fmt.Sprintf("e-%d", i) }
func shopperPerson(i int) string { return fmt.Sprintf("shopper-%d", i) }

// genSetup makes the shoppers' persons and rows in both teams.
func genSetup() []*ingestv1.Envelope {
	var out []*ingestv1.Envelope
	for _, team := range []int64{1, 2} {
		for i := range shoppers {
			v := int64(0)
			out = append(out, &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: team, PersonId: shopperPerson(i), DistinctIds: []string{shopperID(i)}, Version: &v}}})
		}
	}
	return out
}

// genStream generates n ingest messages from seed: person updates with
// $set/$set_once/$unset and distinct_ids, merges, deletes, group updates,
// group type mappings and events, over a small key space so that messages
// collide on persons, distinct_ids, keys and versions (ties included).
// Tracked events (checkout, purchase; eventSet) go to the shoppers, with
// timestamps spread over the 20 hours before now (all within the span in
// which an event's id is kept, so each counts once in any order); others
// ($pageview) to anyone, and are dropped.
func genStream(seed uint64, n int) []*ingestv1.Envelope {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	teams := []int64{1, 2}
	const persons, distinctIDs, keys, groups = 24, 48, 6, 6
	person := func() string { return fmt.Sprintf("person-%02d", r.IntN(persons)) }
	ids := func(min, max int) []string {
		k := min + r.IntN(max-min+1)
		out := make([]string, 0, k)
		for range k {
			out = append(out, fmt.Sprintf("d-%02d", r.IntN(distinctIDs)))
		}
		return out
	}
	values := []string{`5`, `5.0`, `"5"`, `true`, `false`, `null`, `"pro"`, `"free"`, `-1.25e3`, `[1,"a"]`, `{"x":{"y":2}}`, `""`, `"ünï"`}
	props := func(max int) map[string]string {
		k := r.IntN(max + 1)
		if k == 0 {
			return nil
		}
		m := make(map[string]string, k)
		for range k {
			m[fmt.Sprintf("k%d", r.IntN(keys))] = values[r.IntN(len(values))]
		}
		return m
	}
	keyList := func(max int) []string {
		k := r.IntN(max + 1)
		var out []string
		for range k {
			out = append(out, fmt.Sprintf("k%d", r.IntN(keys)))
		}
		return out
	}
	version := func() *int64 { v := int64(r.IntN(60)); return &v }
	ts := timestamppb.New(timestamppb.Now().AsTime().Truncate(1e9))
	groupNames := []string{"company", "team", "project"}

	out := make([]*ingestv1.Envelope, 0, n)
	for i := range n {
		team := teams[r.IntN(len(teams))]
		var env *ingestv1.Envelope
		switch x := r.IntN(100); {
		case x < 55:
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
				Team: team, PersonId: person(), DistinctIds: ids(0, 2),
				Set: props(3), SetOnce: props(2), Unset: keyList(1), Version: version(), Timestamp: ts,
			}}}
		case x < 70:
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
				Team: team, PersonId: person(), DistinctIds: ids(1, 2), Version: version(), Timestamp: ts,
				MergeKind: ingestv1.MergeKind(r.IntN(4)),
			}}}
		case x < 75:
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonDelete{PersonDelete: &ingestv1.PersonDelete{
				Team: team, PersonId: person(), Version: version(),
			}}}
		case x < 90:
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupUpdate{GroupUpdate: &ingestv1.GroupUpdate{
				Team: team, GroupTypeIndex: int32(r.IntN(3)), GroupKey: fmt.Sprintf("g%d", r.IntN(groups)),
				Set: props(3), Unset: keyList(1), Version: version(), Timestamp: ts,
			}}}
		case x < 93:
			gi := r.IntN(len(groupNames))
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_GroupTypeMapping{GroupTypeMapping: &ingestv1.GroupTypeMapping{
				Team: team, GroupTypeIndex: int32(gi), Name: groupNames[gi],
			}}}
		case x < 94:
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: &ingestv1.Event{
				Team: team, DistinctId: fmt.Sprintf("d-%02d", r.IntN(distinctIDs)), Event: "$pageview",
				Timestamp: ts, Uuid: fmt.Sprintf("u-%d", i), Properties: props(2),
			}}}
		case x < 96:
			v := int64(1 + r.IntN(60))
			if r.IntN(2) == 0 {
				env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
					Team: team, PersonId: shopperPerson(r.IntN(shoppers)), Set: props(2), Version: &v, Timestamp: ts,
				}}}
			} else {
				env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonMerge{PersonMerge: &ingestv1.PersonMerge{
					Team: team, PersonId: shopperPerson(r.IntN(shoppers)), DistinctIds: []string{shopperID(r.IntN(shoppers))}, Version: &v, Timestamp: ts,
				}}}
			}
		default:
			ev := &ingestv1.Event{Team: team, DistinctId: shopperID(r.IntN(shoppers)), Event: "checkout",
				Timestamp: timestamppb.New(ts.AsTime().Add(-time.Duration(r.IntN(20*3600)) * time.Second)), Uuid: fmt.Sprintf("u-%d", i)}
			if r.IntN(3) == 0 {
				ev.Event = "purchase"
				ev.Properties = map[string]string{"amount": fmt.Sprint(50 + r.IntN(100))}
			}
			env = &ingestv1.Envelope{Kind: &ingestv1.Envelope_Event{Event: ev}}
		}
		out = append(out, env)
	}
	return out
}

// messy returns msgs with about rate of them duplicated, shuffled.
func messy(seed uint64, msgs []*ingestv1.Envelope, rate float64) []*ingestv1.Envelope {
	r := rand.New(rand.NewPCG(seed, ^seed))
	out := make([]*ingestv1.Envelope, 0, len(msgs)+int(rate*float64(len(msgs)))+1)
	for _, m := range msgs {
		out = append(out, m)
		if r.Float64() < rate {
			out = append(out, m)
		}
	}
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
