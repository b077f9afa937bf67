package projector_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/polltest"
	"github.com/vexil-dev/vexil/projector"
	"github.com/vexil-dev/vexil/projector/ingest"
)

// TestSlowBatchIsKeptInProgress: a store write that takes several ack
// waits does not get its batch, nor the batches queued behind it,
// redelivered while the run is alive: the run keeps them in progress.
func TestSlowBatchIsKeptInProgress(t *testing.T) {
	const (
		msgs    = 50
		ackWait = 3 * time.Second
	)
	e := startNATS(t)
	st := &blockingStore{Store: newMemStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	p, err := projector.New(projector.Config{
		Conn: e.nc, Store: st, AtomicStore: true, Logger: testLogger(t), Registerer: reg,
		BatchSize: 10, MaxAckPending: 2 * msgs, AckWait: ackWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range msgs {
		id := strconv.Itoa(i)
		e.publish(t, pu(1, "p"+id, 1, []string{"d" + id}, map[string]string{"n": id}, nil), ingest.Protobuf)
	}
	r := run(p)
	defer r.stop()
	<-st.entered
	waitConsumer(t, e, "every message delivered", func(ci *jetstream.ConsumerInfo) bool {
		return ci.NumAckPending == msgs
	})

	// Keep the first batch's write stuck until every message was kept in
	// progress four times: with in-progress acks at most every AckWait/4
	// apart per message, that is more than two ack waits.
	polltest.Eventually(t, 2*time.Minute, func() error {
		if got := metricValue(t, reg, "vexil_projector_progress_acks_total", nil); got < 4*msgs {
			return fmt.Errorf("progress acks = %v, want %d", got, 4*msgs)
		}
		return nil
	})
	if ci := consumerInfo(t, e); ci.Delivered.Consumer != msgs || ci.NumRedelivered != 0 {
		t.Fatalf("while stuck: %d deliveries, %d redelivered; want %d and 0", ci.Delivered.Consumer, ci.NumRedelivered, msgs)
	}

	close(st.release)
	e.waitApplied(t, projector.DefaultDurable)
	for i := range msgs {
		id := strconv.Itoa(i)
		assertRow(t, st, 1, "d"+id, "p"+id, `{"n":`+id+`}`)
	}
	if ci := consumerInfo(t, e); ci.Delivered.Consumer != msgs {
		t.Errorf("%d deliveries, want %d: a message was redelivered to the live run", ci.Delivered.Consumer, msgs)
	}
	if got := metricValue(t, reg, "vexil_projector_applied_total", map[string]string{"kind": "person_update"}); got != msgs {
		t.Errorf("applied_total = %v, want %d (each message once)", got, msgs)
	}
}
