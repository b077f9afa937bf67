package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/schema/schematest"
)

// TestThreeNodesOnJetStreamCluster: three vexil serve nodes, each
// connected to a different server of a 3-node NATS JetStream cluster the
// test starts, on one Cassandra keyspace. Every node answers the same
// /flags (equal to the engine's); a flag change made on one node is
// visible on the other two; one node killed while it applies writes loses
// none of them.
func TestThreeNodesOnJetStreamCluster(t *testing.T) {
	addr := schematest.Addr(t) // skips locally without Cassandra; fails under CI=true
	if testing.Short() {
		t.Skip("end-to-end: skipped with -short")
	}
	ks := schematest.Keyspace(t, schematest.Session(t))
	urls := natstest.StartCluster(t, 3)
	var nodes []*node
	var stops []func(bool)
	for _, u := range urls {
		c := config.Default()
		c.Scylla.Hosts, c.Scylla.Keyspace = strings.Split(addr, ","), ks
		c.NATS.URL, c.NATS.Listen = u, "127.0.0.1:-1" // the URL wins: no server in process
		n, stop := clusterNode(t, c)
		nodes, stops = append(nodes, n), append(stops, stop)
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	tm := defineTeam(t, a)
	const persons = 30
	seedE2E(t, a, tm, persons)
	for _, n := range nodes {
		waitAll(t, n, tm, persons)
		checkFlagsMatchEngine(t, n, tm, persons)
	}

	// A change on b reaches a and c: beta-dashboard disabled.
	conn, err := grpc.NewClient(b.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tm.personal)
	f, err := api.GetFlagByKey(actx, &adminv1.GetFlagByKeyRequest{TeamId: tm.id, Key: "beta-dashboard"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.DisableFlag(actx, &adminv1.DisableFlagRequest{TeamId: tm.id, FlagId: f.GetFlag().GetId(), Version: f.GetFlag().GetVersion()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, c} {
		polltest.Eventually(t, 30*time.Second, func() error {
			for i := range persons {
				did := fmt.Sprintf("user-%d", i)
				if got := flagsAnswer(t, n.adminSrv.HTTPAddr(), tm, did, "beta-dashboard"); got != false {
					return fmt.Errorf("%s on %s: beta-dashboard %v after it was disabled on b", did, n.adminSrv.HTTPAddr(), got)
				}
			}
			return nil
		})
	}
	snap, err := a.catalog.Snapshot(context.Background(), tm.id)
	if err != nil {
		t.Fatal(err)
	}
	tm.defs = snap.Definitions

	// c is killed while it applies a second load; a and b take over what
	// it held (redelivered after the ack wait) and no row is missing.
	const more = 300
	before := counterValue(t, c, "vexil_projector_applied_total")
	done := make(chan error, 1)
	go func() { done <- publishDemoPersons(context.Background(), a.nc, a.ns, tm.id, more) }()
	polltest.Eventually(t, time.Minute, func() error {
		if got := counterValue(t, c, "vexil_projector_applied_total"); got <= before {
			return fmt.Errorf("node c applied no message of the second load yet (%v)", got)
		}
		return nil
	})
	stops[2](true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b} {
		waitAll(t, n, tm, more)
		checkFlagsMatchEngine(t, n, tm, more)
	}
}
