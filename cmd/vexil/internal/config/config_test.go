package config

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// examplePath is the documented example, which must stay equal to the
// defaults and list every key.
const examplePath = "../../../../docs/config.example.yaml"

func TestDefaultsValidate(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.DataDir != ".data" || c.HTTPAddr != "127.0.0.1:8000" || c.Eval.StoreTimeout != 50*time.Millisecond ||
		!c.Precompute.Enabled || c.Scylla.Keyspace != "vexil" || c.Demo.Persons != 10_000 {
		t.Errorf("defaults changed: %+v", c)
	}
}

// fieldKeys returns the keys of the *FieldErrors joined in err.
func fieldKeys(err error) []string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var keys []string
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			keys = append(keys, fe.Key)
		}
	}
	return keys
}

func TestValidateNamesTheField(t *testing.T) {
	cases := []struct {
		key string
		bad func(*Config)
	}{
		{"data-dir", func(c *Config) { c.DataDir = "" }},
		{"data-dir", func(c *Config) { c.DataDir = strings.Repeat("d", maxPathBytes+1) }},
		{"log-level", func(c *Config) { c.LogLevel = "loud" }},
		{"http-addr", func(c *Config) { c.HTTPAddr = "8000" }},
		{"http-addr", func(c *Config) { c.HTTPAddr = "" }},
		{"grpc-addr", func(c *Config) { c.GRPCAddr = "127.0.0.1:70000" }},
		{"grpc-addr", func(c *Config) { c.GRPCAddr = "127.0.0.1:-1" }},
		{"gc-percent", func(c *Config) { c.GCPercent = -5 }},
		{"memory-limit-mb", func(c *Config) { c.MemoryLimitMB = -1 }},
		{"memory-limit-mb", func(c *Config) { c.MemoryLimitMB = maxMemoryLimitMB + 1 }},
		{"tls.key-file", func(c *Config) { c.TLS.CertFile = "server.crt" }},
		{"tls.cert-file", func(c *Config) { c.TLS.KeyFile = "server.key" }},
		{"tls.cert-file", func(c *Config) {
			c.TLS.CertFile, c.TLS.KeyFile = strings.Repeat("c", maxPathBytes+1), "server.key"
		}},
		{"tls.client-ca-file", func(c *Config) { c.TLS.ClientCAFile = "ca.pem" }},
		{"nats.url", func(c *Config) { c.NATS.URL = "http://example.com:4222" }},
		{"nats.url", func(c *Config) { c.NATS.URL = "nats://a:4222,nats://" }},
		{"nats.listen", func(c *Config) { c.NATS.Listen = "127.0.0.1:-2" }},
		{"scylla.hosts", func(c *Config) { c.Scylla.Hosts = []string{"a", ""} }},
		{"scylla.hosts", func(c *Config) { c.Scylla.Hosts = []string{"a b"} }},
		{"admin.cors-origins", func(c *Config) { c.Admin.CORSOrigins = []string{"https://a.example/"} }},
		{"scylla.hosts", func(c *Config) { c.Scylla.Hosts = slices.Repeat([]string{"h"}, maxHosts+1) }},
		{"scylla.keyspace", func(c *Config) { c.Scylla.Keyspace = "1bad-name" }},
		{"scylla.replication", func(c *Config) { c.Scylla.Replication = 0 }},
		{"scylla.replication", func(c *Config) { c.Scylla.Replication = 65 }},
		{"scylla.hedge-attempts", func(c *Config) { c.Scylla.HedgeAttempts = 5 }},
		{"scylla.hedge-attempts", func(c *Config) { c.Scylla.HedgeAttempts = -2 }},
		{"scylla.hedge-max-delay", func(c *Config) { c.Scylla.HedgeMaxDelay = 0 }},
		{"store.cache-mb", func(c *Config) { c.Store.CacheMB = -1 }},
		{"store.block-kb", func(c *Config) { c.Store.BlockKB = 65 }},
		{"store.compression", func(c *Config) { c.Store.Compression = "zstd" }},
		{"eval.store-timeout", func(c *Config) { c.Eval.StoreTimeout = -time.Second }},
		{"eval.store-timeout", func(c *Config) { c.Eval.StoreTimeout = time.Hour }},
		{"precompute.run-rate", func(c *Config) { c.Precompute.RunRate = -1 }},
		{"precompute.concurrency", func(c *Config) { c.Precompute.Concurrency = maxConcurrency + 1 }},
		{"precompute.metrics-addr", func(c *Config) { c.Precompute.MetricsAddr = "nowhere" }},
		{"demo.persons", func(c *Config) { c.Demo.Persons = 0 }},
		{"demo.flags", func(c *Config) { c.Demo.Flags = maxDemoFlags + 1 }},
		{"canary.tap-share", func(c *Config) { c.Canary.TapShare = -0.1 }},
		{"canary.tap-share", func(c *Config) { c.Canary.TapShare = 1.5 }},
		{"canary.tap-queue", func(c *Config) { c.Canary.TapQueue = 0 }},
		{"canary.tap-queue", func(c *Config) { c.Canary.TapQueue = 65537 }},
		{"admission.min-limit", func(c *Config) { c.Admission.MinLimit = 0 }},
		{"admission.min-limit", func(c *Config) { c.Admission.MinLimit = 5000 }},
		{"admission.initial-limit", func(c *Config) { c.Admission.InitialLimit = 4 }},
		{"admission.max-limit", func(c *Config) { c.Admission.MaxLimit = maxLimit + 1 }},
		{"admission.evaluate-target", func(c *Config) { c.Admission.EvaluateTarget = time.Microsecond }},
		{"admission.management-target", func(c *Config) { c.Admission.ManagementTarget = time.Hour }},
		{"admission.sched-target", func(c *Config) { c.Admission.SchedTarget = time.Microsecond }},
		{"admission.min-rate", func(c *Config) { c.Admission.MinRate = 0 }},
		{"admission.quota-rate", func(c *Config) { c.Admission.QuotaRate = -1 }},
		{"admission.quota-burst", func(c *Config) { c.Admission.QuotaBurst = -1 }},
		{"admission.team-quotas", func(c *Config) { c.Admission.TeamQuotas = []string{"42"} }},
		{"admission.team-quotas", func(c *Config) { c.Admission.TeamQuotas = []string{"0=5"} }},
		{"admission.team-quotas", func(c *Config) { c.Admission.TeamQuotas = []string{"4=x"} }},
		{"admission.team-quotas", func(c *Config) { c.Admission.TeamQuotas = []string{"4=5/-1"} }},
		{"admission.team-quotas", func(c *Config) { c.Admission.TeamQuotas = []string{"4=5", "4=6/10"} }},
	}
	for _, tc := range cases {
		c := Default()
		tc.bad(&c)
		err := c.Validate()
		if got := fieldKeys(err); !slices.Equal(got, []string{tc.key}) {
			t.Errorf("%s: Validate() = %v, want one error naming %s", tc.key, err, tc.key)
			continue
		}
		if !strings.HasPrefix(err.Error(), "config: "+tc.key+": ") {
			t.Errorf("%s: message %q does not start with the key", tc.key, err)
		}
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	c := Default()
	c.LogLevel, c.Scylla.Replication, c.Demo.Flags = "x", -1, -1
	want := []string{"log-level", "scylla.replication", "demo.flags"}
	if got := fieldKeys(c.Validate()); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
}

func TestValidAlternatives(t *testing.T) {
	c := Default()
	c.NATS.URL = "nats://a:4222, tls://b:4222,127.0.0.1:4223"
	c.NATS.Listen = "127.0.0.1:-1"
	c.Scylla.Hosts = []string{"10.0.0.1", "scylla-2:9042"}
	c.Precompute.MetricsAddr = ""
	c.LogLevel = "DEBUG"
	c.Store.CacheMB, c.Eval.StoreTimeout, c.GCPercent = 0, 0, 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func decode(t *testing.T, doc string) (Config, error) {
	t.Helper()
	c := Default()
	err := Decode(strings.NewReader(doc), &c)
	return c, err
}

func TestDecodeOverridesOnlyTheKeysGiven(t *testing.T) {
	c, err := decode(t, "http-addr: 127.0.0.1:9000\nnats:\n  url: nats://n:4222\nscylla:\n  hosts: [a, b]\neval:\n  store-timeout: 2s\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.HTTPAddr, want.NATS.URL, want.Scylla.Hosts, want.Eval.StoreTimeout = "127.0.0.1:9000", "nats://n:4222", []string{"a", "b"}, 2*time.Second
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", c, want)
	}
}

func TestDecodeRefuses(t *testing.T) {
	cases := []struct {
		name, doc, want string
		key             string // for unknown keys
	}{
		{"unknown top-level key", "data-dir: x\nhttp-adr: 1\n", `line 2: unknown key "http-adr"`, "http-adr"},
		{"unknown nested key", "nats:\n  listen: a:1\n  urll: x\n", `line 3: unknown key "nats.urll"`, "nats.urll"},
		{"a section's field at the top", "url: nats://x\n", `unknown key "url"`, "url"},
		{"wrong type", "demo:\n  persons: many\n", "line 2: demo.persons: cannot unmarshal", ""},
		{"bad duration", "eval:\n  store-timeout: soon\n", "store-timeout", ""},
		{"duplicate key", "log-level: info\nlog-level: warn\n", "already defined", ""},
		{"two documents", "log-level: info\n---\nlog-level: warn\n", "more than one YAML document", ""},
		{"not a mapping", "- a\n- b\n", "cannot unmarshal", ""},
		{"too large", "# " + strings.Repeat("x", MaxFileBytes) + "\n", "larger than", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode(t, tc.doc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			var uk *UnknownKeyError
			if got := errors.As(err, &uk); got != (tc.key != "") || (got && uk.Key != tc.key) {
				t.Errorf("UnknownKeyError %v, want key %q", uk, tc.key)
			}
		})
	}
}

func TestDecodeEmptyKeepsDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "\n\n"} {
		c, err := decode(t, doc)
		if err != nil || !reflect.DeepEqual(c, Default()) {
			t.Errorf("%q: %+v, %v; want the defaults", doc, c, err)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	c := Default()
	err := Load(t.TempDir()+"/nope.yaml", &c)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

// TestExample loads the documented example: it validates, equals the
// defaults, and lists every key of Config.
func TestExample(t *testing.T) {
	c := Config{}
	if err := Load(examplePath, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Scylla.Hosts) == 0 {
		c.Scylla.Hosts = nil // [] in the file
	}
	if len(c.Admission.TeamQuotas) == 0 {
		c.Admission.TeamQuotas = nil // [] in the file
	}
	if len(c.Admin.CORSOrigins) == 0 {
		c.Admin.CORSOrigins = nil // [] in the file
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("the example is not the defaults:\n%+v\nwant\n%+v", c, Default())
	}
	raw, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var inFile []string
	collectKeys(doc.Content[0], "", &inFile)
	var all []string
	structKeys(reflect.TypeFor[Config](), "", &all)
	slices.Sort(inFile)
	slices.Sort(all)
	if !slices.Equal(inFile, all) {
		t.Errorf("the example's keys\n%v\nConfig's keys\n%v", inFile, all)
	}
}

func collectKeys(n *yaml.Node, path string, out *[]string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if path != "" {
			k = path + "." + k
		}
		if v.Kind == yaml.MappingNode {
			collectKeys(v, k, out)
			continue
		}
		*out = append(*out, k)
	}
}

func structKeys(t reflect.Type, path string, out *[]string) {
	for f := range t.Fields() {
		k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if path != "" {
			k = path + "." + k
		}
		if f.Type.Kind() == reflect.Struct {
			structKeys(f.Type, k, out)
			continue
		}
		*out = append(*out, k)
	}
}

func TestParseTeamQuota(t *testing.T) {
	cases := []struct {
		in   string
		want TeamQuota
	}{
		{"42=500", TeamQuota{Team: 42, Rate: 500}},
		{"7=0.5/3", TeamQuota{Team: 7, Rate: 0.5, Burst: 3}},
		{"9=0", TeamQuota{Team: 9}},
	}
	for _, tc := range cases {
		got, err := ParseTeamQuota(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "=5", "a=5", "5=", "5=NaN", "5=-1", "5=1e10", "5=1/", "5=1/2000000"} {
		if _, err := ParseTeamQuota(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
