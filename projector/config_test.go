package projector

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/projector/ingest"
	"github.com/vexil-dev/vexil/store/memstore"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Conn: &nats.Conn{}, Store: memstore.New()}
	cases := []struct {
		name   string
		change func(*Config)
		valid  bool
	}{
		{"defaults", func(*Config) {}, true},
		{"no conn", func(c *Config) { c.Conn = nil }, false},
		{"no store", func(c *Config) { c.Store = nil }, false},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }, false},
		{"ack pending below batch", func(c *Config) { c.BatchSize, c.MaxAckPending = 100, 10 }, false},
		{"negative wait", func(c *Config) { c.MaxWait = -time.Second }, false},
		{"tiny ack wait", func(c *Config) { c.AckWait = time.Millisecond }, false},
		{"prefix without dot", func(c *Config) { c.DeadLetterPrefix = "dlq" }, false},
		{"prefix wildcard", func(c *Config) { c.DeadLetterPrefix = "dlq.*." }, false},
		{"prefix inside ingest", func(c *Config) { c.DeadLetterPrefix = "vexil.persons.dlq." }, false},
		{"custom prefix", func(c *Config) { c.DeadLetterPrefix = "dlq.vexil." }, true},
		{"negative dead-letter log burst", func(c *Config) { c.DeadLetterLogBurst = -1 }, false},
		{"sub-second dead-letter log interval", func(c *Config) { c.DeadLetterLogInterval = time.Millisecond }, false},
		{"negative dead-letter log interval", func(c *Config) { c.DeadLetterLogInterval = -time.Minute }, false},
		{"dead-letter log of one a second", func(c *Config) { c.DeadLetterLogBurst, c.DeadLetterLogInterval = 1, time.Second }, true},
		{"negative limit", func(c *Config) { c.Limits = ingest.Limits{MaxProperties: -1} }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.change(&cfg)
			err := cfg.Validate()
			if c.valid != (err == nil) {
				t.Fatalf("Validate() = %v, want valid=%v", err, c.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
	d := ok.withDefaults()
	if d.Stream != DefaultStream || d.Durable != DefaultDurable || d.BatchSize != DefaultBatchSize ||
		d.MaxAckPending != 4*DefaultBatchSize || d.AckWait != DefaultAckWait || d.DeadLetterPrefix != DefaultDeadLetterPrefix ||
		d.Limits.MaxProperties != ingest.DefaultMaxProperties ||
		d.DeadLetterLogBurst != DefaultDeadLetterLogBurst || d.DeadLetterLogInterval != DefaultDeadLetterLogInterval {
		t.Errorf("defaults = %+v", d)
	}
}

func TestTeams(t *testing.T) {
	teams := AllowTeams(1, 3)
	for team, want := range map[int64]bool{1: true, 2: false, 3: true} {
		if teams.Known(team) != want {
			t.Errorf("Known(%d) = %v", team, !want)
		}
	}
}

// TestNamesOfNamespaces: the default namespace keeps the names Vexil has
// always used; another namespace shares none of them.
func TestNamesOfNamespaces(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{StreamName(""), DefaultStream},
		{DurableName(""), DefaultDurable},
		{DeadLetterStreamName(""), DefaultDeadLetterStream},
		{DeadLetterPrefixOf(""), DefaultDeadLetterPrefix},
		{StreamName("staging"), "STAGING_INGEST"},
		{DurableName("staging"), "staging-projector"},
		{DeadLetterStreamName("staging"), "STAGING_DEADLETTER"},
		{DeadLetterPrefixOf("staging"), "staging.deadletter."},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if got := IngestStreamConfig("S", "staging").Subjects; !slices.Equal(got, []string{"staging.persons.*", "staging.groups.*", "staging.events.*"}) {
		t.Errorf("staging's ingest subjects = %q", got)
	}
}
