package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/vexil-dev/vexil/projector/ingest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/snapshot"
)

// TestSnapshotRestoreServesFlags: a production node's snapshot restored
// into a fresh data directory carries the catalog's definitions (with
// their ids and versions) and the team's project token, so "vexil serve"
// on it answers /flags for sample persons exactly as production does; the
// replay after the cut dead-letters a message of a team production does
// not know. A flag targets a static cohort whose members (every third
// demo person) come back with it.
func TestSnapshotRestoreServesFlags(t *testing.T) {
	ctx := context.Background()
	n := testNode(t)
	tm := defineTeam(t, n)
	const persons = 30
	seedE2E(t, n, tm, persons)
	var members []string
	for i := 0; i < persons; i += 3 {
		did, _ := demoPerson(i)
		members = append(members, did)
	}
	staticFlag(t, n, tm, members)
	snap := filepath.Join(t.TempDir(), "s1")
	if _, err := snapshot.Create(ctx, snapshot.Options{Store: n.store, Catalog: n.catalog, Backend: "pebble", Dir: snap,
		Cut: snapshot.StreamCut(n.js, n.ns), End: snapshot.StreamEnd(n.js, n.ns)}); err != nil {
		t.Fatal(err)
	}
	// After the cut: a message of a team production does not know, which
	// its projector dead-letters, and so must the replay.
	m := &nats.Msg{Subject: ingest.Subject(n.ns, ingest.Persons, 999), Header: nats.Header{"Content-Type": []string{"application/json"}},
		Data: []byte(`{"type":"person_update","team":999,"person_id":"x","distinct_ids":["x"],"version":1,"$set":{"plan":"pro"}}`)}
	js, err := jetstream.New(n.nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	laptop := t.TempDir()
	code, out, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", laptop, "--replay", "--nats-url", n.nc.ConnectedUrl())
	if code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	if !strings.Contains(out, "dead-lettered 1 messages, as production's projector does (unknown_team 1)") {
		t.Fatalf("restore --replay said %q, want the team 999 message dead-lettered", out)
	}
	wantLine := fmt.Sprintf("restored the definitions of 1 teams: %d flags, 1 cohorts, 0 early access features, 1 project tokens, %d static cohort members", len(tm.defs.Flags)+1, len(members))
	if !strings.Contains(out, wantLine) {
		t.Fatalf("restore said %q, want %q", out, wantLine)
	}
	// A second restore into the same data directory is refused (the
	// store and the catalog are not empty).
	if code, _, errs := vexil(t, "snapshot", "restore", "--snapshot", snap, "--data-dir", laptop); code == 0 || !strings.Contains(errs, "--replace-definitions") {
		t.Fatalf("restore into a restored catalog: %d %s, want refused naming --replace-definitions", code, errs)
	}
	if _, err := os.Stat(filepath.Join(laptop, restoreMarker)); !os.IsNotExist(err) {
		t.Fatalf("a refused restore marked the complete data directory incomplete: %v", err)
	}

	addr, _, stop := startServe(t, laptop)
	defer stop()
	prod := n.adminSrv.HTTPAddr()
	for i := range persons {
		did, _ := demoPerson(i)
		company, _ := demoCompany(i % 200)
		body := fmt.Sprintf(`{"token":%q,"distinct_id":%q,"groups":{"company":%q}}`, tm.token, did, company)
		want, got := postFlags(t, prod, body), postFlags(t, addr, body)
		if got["errorsWhileComputingFlags"] != false || want["errorsWhileComputingFlags"] != false {
			t.Fatalf("%s: errors while computing: production %v, restored %v", did, want, got)
		}
		if !reflect.DeepEqual(got["flags"], want["flags"]) {
			t.Fatalf("%s: restored node answers\n%v\nproduction\n%v", did, got["flags"], want["flags"])
		}
		if len(want["flags"].(map[string]any)) != len(tm.defs.Flags)+1 {
			t.Fatalf("%s: %d flags answered, want %d", did, len(want["flags"].(map[string]any)), len(tm.defs.Flags)+1)
		}
		// The answer is the membership, not two equal mistakes.
		f, _ := got["flags"].(map[string]any)["static-beta"].(map[string]any)
		if enabled, _ := f["enabled"].(bool); enabled != (i%3 == 0) {
			t.Fatalf("%s: static-beta %v on the restored node, want enabled=%v (member of the static cohort)", did, f, i%3 == 0)
		}
	}
}

// staticFlag creates, through the gRPC API, a static cohort holding
// members and a flag "static-beta" on for its members only.
func staticFlag(t *testing.T, n *node, tm e2eTeam, members []string) {
	t.Helper()
	conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tm.personal)
	co, err := api.CreateCohort(actx, &adminv1.CreateCohortRequest{TeamId: tm.id, Cohort: &adminv1.CohortInput{Name: "beta testers", IsStatic: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.AddCohortMembers(actx, &adminv1.AddCohortMembersRequest{TeamId: tm.id, CohortId: co.GetCohort().GetId(), DistinctIds: members}); err != nil {
		t.Fatal(err)
	}
	filters, err := structOf(fmt.Sprintf(`{"groups":[{"rollout_percentage":100,"properties":[{"key":"id","type":"cohort","value":%d}]}]}`, co.GetCohort().GetId()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: tm.id, Flag: &adminv1.FlagInput{Key: "static-beta", Name: "static beta", Active: true, Filters: filters}}); err != nil {
		t.Fatal(err)
	}
}
