package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/vexil-dev/vexil/catalog"
	"github.com/vexil-dev/vexil/catalog/memcatalog"
	"github.com/vexil-dev/vexil/changes"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/polltest"
)

// The projector's event sets follow the catalog: compiled on first use,
// cached, compiled again after a change notice of the team.
func TestCatalogEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := natstest.Start(t)
	cat := memcatalog.New(memcatalog.Config{})
	tm, err := cat.CreateTeam(ctx, catalog.Team{Name: "t"}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	behavioral := func(event string) flags.Cohort {
		return flags.Cohort{TeamID: tm.ID, Name: "c", Kind: flags.CohortBehavioral, Filters: flags.PropertyGroup{Type: "AND", Values: []flags.PropertyNode{{Filter: &flags.PropertyFilter{
			Key: event, Type: "behavioral", Value: json.RawMessage(`"performed_event"`), TimeValue: json.RawMessage(`1`), TimeInterval: "day"}}}}}
	}
	rec, err := cat.CreateCohort(ctx, catalog.CohortRecord{Cohort: behavioral("checkout")}, catalog.Change{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ev := newCatalogEvents(cat, namespace.Default, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- ev.Run(ctx, ns.Conn) }()

	if s := ev.Set(tm.ID); s == nil || !s.TracksEvent("checkout") || s.TracksEvent("signup") {
		t.Fatalf("first set %v", s)
	}
	if s := ev.Set(tm.ID + 100); s != nil {
		t.Fatalf("a missing team has a set: %v", s)
	}
	rec.Cohort.Filters = behavioral("signup").Filters
	if _, err := cat.UpdateCohort(ctx, rec, catalog.Change{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if s := ev.Set(tm.ID); !s.TracksEvent("checkout") {
		t.Fatal("the cached set changed without a notice")
	}
	n := changes.Notice{Team: tm.ID, Kind: changes.KindCohort, Op: "updated"}
	data, err := n.Encode()
	if err != nil {
		t.Fatal(err)
	}
	polltest.Eventually(t, time.Minute, func() error {
		if err := ns.Conn.Publish(n.Subject(namespace.Default), data); err != nil {
			return err
		}
		if s := ev.Set(tm.ID); !s.TracksEvent("signup") || s.TracksEvent("checkout") {
			return errors.New("the set did not follow the change notice")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
