package streams_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/natstest"
	"github.com/vexil-dev/vexil/streams"
)

func TestClaim(t *testing.T) {
	ctx := context.Background()
	js := natstest.Start(t).JetStream

	// Production's nodes start at once: they all agree.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = streams.Claim(ctx, js, "", "scylla keyspace prod") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	// Staging in its own namespace, with its own store.
	if err := streams.Claim(ctx, js, "staging", "scylla keyspace staging"); err != nil {
		t.Fatalf("staging: %v", err)
	}
	if err := streams.Claim(ctx, js, "staging", "scylla keyspace staging"); err != nil {
		t.Fatalf("staging again: %v", err)
	}

	cases := []struct {
		name  string
		ns    namespace.Name
		store string
		want  []string
	}{
		{"staging's store in production's namespace", namespace.Default, "scylla keyspace staging",
			[]string{`namespace "vexil" on this NATS serves the store "scylla keyspace prod"`, `this node's store is "scylla keyspace staging"`, "-namespace"}},
		{"a new store in production's namespace", "", "scylla keyspace fresh",
			[]string{`serves the store "scylla keyspace prod"`, `"scylla keyspace fresh"`}},
		{"production's store in a new namespace", "other", "scylla keyspace prod",
			[]string{`the store "scylla keyspace prod" is served by namespace "vexil"`, `this node's namespace is "other"`, "-namespace vexil"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := streams.Claim(ctx, js, c.ns, c.store)
			if !errors.Is(err, streams.ErrClaimed) {
				t.Fatalf("Claim = %v, want ErrClaimed", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// The refusals changed nothing: both environments still start, and the
	// namespace refused with production's store is still free.
	if err := streams.Claim(ctx, js, "other", "scylla keyspace other"); err != nil {
		t.Errorf("a third environment after the refusals: %v", err)
	}
	if err := streams.Claim(ctx, js, "", "scylla keyspace prod"); err != nil {
		t.Errorf("production after the refusals: %v", err)
	}
	if err := streams.Claim(ctx, js, "staging", "scylla keyspace staging"); err != nil {
		t.Errorf("staging after the refusals: %v", err)
	}

	for _, bad := range []struct {
		ns    namespace.Name
		store string
	}{{"Bad", "s"}, {"", ""}, {"", strings.Repeat("s", streams.MaxStoreID+1)}} {
		if err := streams.Claim(ctx, js, bad.ns, bad.store); err == nil || errors.Is(err, streams.ErrClaimed) {
			t.Errorf("Claim(%q, %d bytes) = %v, want an input error", bad.ns, len(bad.store), err)
		}
	}
}
