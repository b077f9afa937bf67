package projector_test

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
	ingestv1 "github.com/vexil-dev/vexil/proto/vexil/ingest/v1"
)

func personUpdate(team int64, person string, version int64, ids []string, set map[string]string) *ingestv1.Envelope {
	return &ingestv1.Envelope{Kind: &ingestv1.Envelope_PersonUpdate{PersonUpdate: &ingestv1.PersonUpdate{
		Team: team, PersonId: person, DistinctIds: ids, Set: set, Version: i64(version),
	}}}
}

func TestPoisonMessagesAreDeadLettered(t *testing.T) {
	e := startNATS(t)
	st := newMemStore(t)
	reg := prometheus.NewRegistry()
	p, err := projector.New(projector.Config{
		Conn: e.nc, Store: st, Teams: projector.AllowTeams(1, 2),
		Logger: testLogger(t), Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}

	var huge strings.Builder
	huge.WriteString(`{"type":"person_update","team":1,"person_id":"p","version":1,"$set":{`)
	for i := range 5000 {
		if i > 0 {
			huge.WriteByte(',')
		}
		huge.WriteString(`"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i))
	}
	huge.WriteString(`}}`)

	type poison struct {
		subject, contentType, payload string
		reason                        ingest.Reason
	}
	poisons := []poison{
		{"vexil.persons.1", "", "\x00garbage\xff\xfe", ingest.ReasonUndecodable},
		{"vexil.persons.1", ingest.ContentTypeJSON, "{garbage", ingest.ReasonUndecodable},
		{"vexil.persons.3", ingest.ContentTypeJSON, `{"type":"person_update","team":3,"person_id":"p","version":1}`, ingest.ReasonUnknownTeam},
		{"vexil.persons.1", ingest.ContentTypeJSON, `{"type":"person_update","team":1,"person_id":"p","version":"7"}`, ingest.ReasonWrongType},
		{"vexil.persons.1", ingest.ContentTypeJSON, `{"type":"person_update","team":1,"person_id":["p"],"version":7}`, ingest.ReasonWrongType},
		{"vexil.persons.1", ingest.ContentTypeJSON, huge.String(), ingest.ReasonTooLarge},
		{"vexil.persons.2", ingest.ContentTypeJSON, `{"type":"person_update","team":1,"person_id":"p","version":1}`, ingest.ReasonTeamMismatch},
		{"vexil.groups.1", ingest.ContentTypeJSON, `{"type":"person_update","team":1,"person_id":"p","version":1}`, ingest.ReasonWrongSubject},
		{"vexil.persons.1", ingest.ContentTypeJSON, `{"type":"person_upsert","team":1}`, ingest.ReasonUnknownKind},
		{"vexil.persons.1", "text/csv", `a,b`, ingest.ReasonContentType},
		{"vexil.persons.1", ingest.ContentTypeJSON, `{"type":"person_update","team":1,"person_id":"p"}`, ingest.ReasonMissingField},
	}

	// Valid messages around every poison message: person i sets n=i.
	wantSeq := map[uint64]poison{}
	valid := 0
	for i, pm := range poisons {
		e.publish(t, personUpdate(1, "person-"+strconv.Itoa(i), 1, []string{"d" + strconv.Itoa(i)}, map[string]string{"n": strconv.Itoa(i)}), ingest.Protobuf)
		valid++
		seq := e.publishRaw(t, pm.subject, pm.contentType, []byte(pm.payload))
		wantSeq[seq] = pm
	}
	e.publish(t, personUpdate(2, "last", 1, []string{"last"}, map[string]string{"n": "99"}), ingest.JSON)
	valid++

	r := run(p)
	e.waitApplied(t, projector.DefaultDurable)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	dls := e.deadLetters(t)
	if len(dls) != len(poisons) {
		t.Fatalf("%d dead letters, want %d", len(dls), len(poisons))
	}
	for _, dl := range dls {
		seq, err := strconv.ParseUint(dl.Header.Get(projector.HeaderOriginalSequence), 10, 64)
		if err != nil {
			t.Fatalf("dead letter without a sequence header: %v", dl.Header)
		}
		pm, ok := wantSeq[seq]
		if !ok {
			t.Fatalf("dead letter of sequence %d, which was not poison", seq)
		}
		delete(wantSeq, seq)
		if got := ingest.Reason(dl.Header.Get(projector.HeaderReason)); got != pm.reason {
			t.Errorf("seq %d (%.40q): reason %q, want %q (%s)", seq, pm.payload, got, pm.reason, dl.Header.Get(projector.HeaderReasonText))
		}
		if dl.Header.Get(projector.HeaderReasonText) == "" {
			t.Errorf("seq %d: no reason text", seq)
		}
		if dl.Subject != projector.DefaultDeadLetterPrefix+pm.subject || dl.Header.Get(projector.HeaderOriginalSubject) != pm.subject {
			t.Errorf("seq %d: dead letter on %s, original subject header %q; want %s", seq, dl.Subject, dl.Header.Get(projector.HeaderOriginalSubject), pm.subject)
		}
		if dl.Header.Get(projector.HeaderOriginalStream) != projector.DefaultStream {
			t.Errorf("seq %d: stream header %q", seq, dl.Header.Get(projector.HeaderOriginalStream))
		}
		if string(dl.Data) != pm.payload {
			t.Errorf("seq %d: payload changed", seq)
		}
		if dl.Header.Get(ingest.HeaderContentType) != pm.contentType {
			t.Errorf("seq %d: content type %q, want %q", seq, dl.Header.Get(ingest.HeaderContentType), pm.contentType)
		}
	}

	for i := range poisons {
		assertRow(t, st, 1, "d"+strconv.Itoa(i), "person-"+strconv.Itoa(i), `{"n":`+strconv.Itoa(i)+`}`)
	}
	assertRow(t, st, 2, "last", "last", `{"n":99}`)

	if got := metricValue(t, reg, "vexil_projector_applied_total", map[string]string{"kind": "person_update"}); got != float64(valid) {
		t.Errorf("applied_total = %v, want %d", got, valid)
	}
	perReason := map[ingest.Reason]int{}
	for _, pm := range poisons {
		perReason[pm.reason]++
	}
	for _, reason := range ingest.Reasons {
		if got := metricValue(t, reg, "vexil_projector_dead_lettered_total", map[string]string{"reason": string(reason)}); got != float64(perReason[reason]) {
			t.Errorf("dead_lettered_total{reason=%q} = %v, want %d", reason, got, perReason[reason])
		}
	}
}

// TestDeadLetterLogIsRateLimited: a flood of poison messages is
// dead-lettered and counted one by one, but logged as the first
// DeadLetterLogBurst lines and one line with the count of the rest.
func TestDeadLetterLogIsRateLimited(t *testing.T) {
	const (
		undecodable = 1500
		unknownTeam = 500
		burst       = 5
	)
	e := startNATS(t)
	rec := &projector.LogRecorder{}
	reg := prometheus.NewRegistry()
	p, err := projector.New(projector.Config{
		Conn: e.nc, Store: newMemStore(t), Teams: projector.AllowTeams(1), Logger: slog.New(rec), Registerer: reg,
		// One window for the whole test: the count is logged when the run ends.
		DeadLetterLogBurst: burst, DeadLetterLogInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range undecodable + unknownTeam {
		if i < undecodable {
			e.publishRaw(t, "vexil.persons.1", ingest.ContentTypeJSON, []byte("{garbage "+strconv.Itoa(i)))
		} else {
			e.publishRaw(t, "vexil.persons.3", ingest.ContentTypeJSON, []byte(`{"type":"person_update","team":3,"person_id":"p","version":1}`))
		}
	}
	r := run(p)
	e.waitApplied(t, projector.DefaultDurable)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Every message is on the dead-letter subject with its reason, and
	// counted.
	dls := e.deadLetters(t)
	if len(dls) != undecodable+unknownTeam {
		t.Fatalf("%d dead letters, want %d", len(dls), undecodable+unknownTeam)
	}
	perReason := map[ingest.Reason]int{}
	for _, dl := range dls {
		perReason[ingest.Reason(dl.Header.Get(projector.HeaderReason))]++
		if dl.Header.Get(projector.HeaderReasonText) == "" {
			t.Fatalf("dead letter %s without a reason text", dl.Header.Get(projector.HeaderOriginalSequence))
		}
	}
	if perReason[ingest.ReasonUndecodable] != undecodable || perReason[ingest.ReasonUnknownTeam] != unknownTeam {
		t.Errorf("dead letters by reason %v", perReason)
	}
	for reason, n := range map[ingest.Reason]int{ingest.ReasonUndecodable: undecodable, ingest.ReasonUnknownTeam: unknownTeam} {
		if got := metricValue(t, reg, "vexil_projector_dead_lettered_total", map[string]string{"reason": string(reason)}); got != float64(n) {
			t.Errorf("dead_lettered_total{reason=%q} = %v, want %d", reason, got, n)
		}
	}

	// The log: burst lines, then one count.
	if got := rec.Lines("dead-lettered"); len(got) != burst {
		t.Errorf("%d dead-lettered lines, want %d", len(got), burst)
	}
	more := strconv.Itoa(undecodable + unknownTeam - burst)
	sums := rec.Lines(more + " more dead letters in the last ")
	if len(sums) != 1 {
		t.Fatalf("count lines %+v, want one saying %s more", rec.Lines(""), more)
	}
	s := sums[0].Attrs
	if s["more"] != more || s["by_reason"] != "undecodable="+strconv.Itoa(undecodable-burst)+" unknown_team="+strconv.Itoa(unknownTeam) {
		t.Errorf("count line %v", s)
	}
	if s["sample_reason"] == "" || s["sample_text"] == "" || s["sample_subject"] == "" || s["sample_seq"] == "" {
		t.Errorf("count line without a sample: %v", s)
	}
	if n := len(rec.Lines("")); n > burst+3 {
		t.Errorf("%d log lines in all for %d dead letters: %+v", n, len(dls), rec.Lines(""))
	}
}
