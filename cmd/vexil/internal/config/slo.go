package config

import "time"

// SLO is the service level objective of evaluation, one definition for
// remote evaluation (/flags, /decide, gRPC Evaluate) and local evaluation
// (definitions polls), and the public status page that shows it (package
// slo). Config file only.
type SLO struct {
	// Target is the share of evaluation requests in Window that must
	// succeed within Latency, 0.9 to 0.99999. Default 0.9999 (99.99%).
	Target float64 `yaml:"target"`
	// Latency is the slowest good answer, 100µs to 1m. Default 50ms.
	Latency time.Duration `yaml:"latency"`
	// Window is the objective's period, 1h to 2160h. Default 720h (30
	// days).
	Window time.Duration `yaml:"window"`
	// FlushInterval is how often a node writes its current minute's
	// rollup to the store, 1s to 1m. Default 10s.
	FlushInterval time.Duration `yaml:"flush-interval"`
	// StatusPage serves the public status page at /status and
	// /status.json (no key). Default true.
	StatusPage bool `yaml:"status-page"`
}

func defaultSLO() SLO {
	return SLO{Target: 0.9999, Latency: 50 * time.Millisecond, Window: 720 * time.Hour,
		FlushInterval: 10 * time.Second, StatusPage: true}
}

func (c *Config) validateSLO(bad func(key, format string, args ...any)) {
	s := &c.SLO
	if !(s.Target >= 0.9 && s.Target <= 0.99999) {
		bad("slo.target", "%v out of range 0.9..0.99999", s.Target)
	}
	if s.Latency < 100*time.Microsecond || s.Latency > time.Minute {
		bad("slo.latency", "%v out of range 100µs..1m", s.Latency)
	}
	if s.Window < time.Hour || s.Window > 2160*time.Hour {
		bad("slo.window", "%v out of range 1h..2160h", s.Window)
	}
	if s.FlushInterval < time.Second || s.FlushInterval > time.Minute {
		bad("slo.flush-interval", "%v out of range 1s..1m", s.FlushInterval)
	}
}
