package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vexil-dev/vexil/canary"
	"github.com/vexil-dev/vexil/namespace"
)

func init() {
	register(&command{
		name:    "canary",
		summary: "side canary: send the same /flags and definitions requests to a baseline and a candidate, compare every answer and p99 (-gate for a pipeline)",
		run:     runCanary,
	})
}

func runCanary(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("canary", stderr)
	var b, c canary.Target
	fs.StringVar(&b.URL, "baseline", "", "the baseline node's base URL (http://host:8000)")
	fs.StringVar(&c.URL, "candidate", "", "the candidate node's base URL")
	fs.StringVar(&b.Token, "token", "", "the baseline's project token (generated requests carry it; the candidate's replaces it)")
	fs.StringVar(&b.PersonalKey, "personal-key", "", "the baseline's personal API key, for definitions polls")
	fs.StringVar(&c.Token, "candidate-token", "", "the candidate's project token, when it differs (another environment)")
	fs.StringVar(&c.PersonalKey, "candidate-personal-key", "", "the candidate's personal API key, when it differs")
	source := fs.String("source", "", "where requests come from: generate, log (-log), or nats: a running node's tap (serve -canary-tap-share), each with the answer the node gave; default log with -log, else generate")
	natsURL := fs.String("nats", "", "with -source nats, the NATS server the node publishes its tap to (nats://host:4222)")
	nsName := fs.String("namespace", string(namespace.Default), "with -source nats, the node's NATS namespace (the tap's subject is <namespace>.canary.tap)")
	duration := fs.Duration("duration", 0, "with -source nats, stop after this long (0: after -requests tapped requests, or at an interrupt)")
	buffer := fs.Int("buffer", 4096, "with -source nats, tapped requests held while the canary is busy (1..65536); past it they are lost, and counted")
	logFile := fs.String("log", "", "a recorded request log to replay (JSON lines: method, path, headers, body; - is stdin); without it requests are generated")
	share := fs.Float64("share", 1, "the share of the log's requests mirrored to both sides (0 < share <= 1)")
	count := fs.Int("requests", 2000, "generated requests; with -source nats, tapped requests read")
	persons := fs.Int("persons", 10000, "generated distinct ids user-0 ... user-<persons-1>")
	zipf := fs.Float64("zipf", 0, "draw generated distinct ids Zipf-distributed with this exponent (> 1); 0 draws uniformly")
	companies := fs.Int("companies", 0, "when > 0, each generated /flags names company-<i mod companies>")
	pollEvery := fs.Int("poll-every", 20, "one generated request in this many is a definitions poll (0: none; needs -personal-key)")
	seed := fs.Uint64("seed", 1, "seed of the generator and of the share's draw")
	conc := fs.Int("concurrency", 4, "requests compared at once (1..256)")
	examples := fs.Int("examples", 20, "divergences printed with their request")
	gate := fs.Bool("gate", false, "exit non-zero on any divergence or a p99 regression beyond -max-p99-regression and -p99-slack")
	maxRatio := fs.Float64("max-p99-regression", 0.2, "with -gate, the candidate's p99 may exceed the baseline's by this share")
	slack := fs.Duration("p99-slack", 2*time.Millisecond, "with -gate, and by at least this much (timing noise)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	proxyAddr := fs.String("proxy", "", "full canary: listen here and proxy live traffic, the candidate answering -share of the evaluation requests (each checked against the baseline) until a rollback sends all to the baseline; GET /canary/status tells the state")
	maxDiv := fs.Int("max-divergences", 1, "with -proxy, roll back after this many divergent answers")
	maxErr := fs.Float64("max-error-rate", 0.01, "with -proxy, roll back when more than this share of the candidate's last -error-window answers failed (5xx or no answer)")
	errWindow := fs.Int("error-window", 200, "with -proxy, the candidate answers the error rate is judged on")
	slowAfter := fs.Duration("slow-after", 0, "with -proxy, a candidate answer slower than this counts as bad in the error rate too (the SLO's latency, e.g. 50ms); 0: off")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Config reads a zero share as its default, all: -share 0 must not.
	if !(*share > 0 && *share <= 1) {
		return &usageError{msg: fmt.Sprintf("-share %v out of range (0, 1]", *share)}
	}
	if b.URL == "" && *source != "nats" || c.URL == "" {
		return &usageError{msg: "-baseline and -candidate are required (-source nats needs no -baseline: the node's tap gives its answers)"}
	}
	if *proxyAddr != "" {
		return runCanaryProxy(ctx, *proxyAddr, canary.ProxyConfig{Baseline: b, Candidate: c, Share: *share, Seed: *seed,
			MaxDivergences: *maxDiv, MaxErrorRate: *maxErr, Window: *errWindow, SlowAfter: *slowAfter}, stdout, stderr)
	}
	if *source == "" {
		*source = "generate"
		if *logFile != "" {
			*source = "log"
		}
	}
	cfg := canary.Config{Baseline: b, Candidate: c, Share: *share, Seed: *seed, Concurrency: *conc, MaxExamples: max(*examples, 0)}
	var res *canary.Result
	var err error
	switch *source {
	case "nats":
		if res, err = runCanaryTapped(ctx, cfg, *natsURL, *nsName, *count, *duration, *buffer, stderr); err != nil {
			return err
		}
	case "log", "generate":
		if *source == "log" && *logFile == "" {
			return &usageError{msg: "-source log needs -log"}
		}
		if res, err = runCanaryRequests(ctx, cfg, *logFile, *count, *persons, *companies, *zipf, *pollEvery); err != nil {
			return err
		}
	default:
		return &usageError{msg: fmt.Sprintf("-source %q: generate, log or nats", *source)}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printCanary(stdout, res)
	}
	if *gate {
		if err := res.Gate(*maxRatio, *slack); err != nil {
			return fmt.Errorf("gate failed: %w", err)
		}
		fmt.Fprintln(stderr, "canary: gate passed")
	}
	return nil
}

// runCanaryRequests compares a recorded log's requests (logFile) or
// generated ones.
func runCanaryRequests(ctx context.Context, cfg canary.Config, logFile string, count, persons, companies int, zipf float64, pollEvery int) (*canary.Result, error) {
	b := cfg.Baseline
	var next func() (canary.Request, bool, error)
	switch {
	case logFile != "":
		r := io.Reader(os.Stdin)
		if logFile != "-" {
			f, err := os.Open(logFile)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		next = canary.ReadLog(r)
	default:
		if b.Token == "" {
			return nil, &usageError{msg: "generated requests need -token (or give -log)"}
		}
		if pollEvery > 0 && b.PersonalKey == "" {
			pollEvery = 0
		}
		var err error
		next, err = canary.Generator{Token: b.Token, PersonalKey: b.PersonalKey, Persons: persons, Companies: companies,
			Zipf: zipf, PollEvery: pollEvery, Count: count, Seed: cfg.Seed}.Source()
		if err != nil {
			return nil, &usageError{msg: err.Error()}
		}
	}
	res, err := canary.Run(ctx, cfg, next)
	if err != nil && res == nil {
		return nil, &usageError{msg: err.Error()}
	}
	return res, err
}

// runCanaryTapped reads a running node's tap on NATS and compares the
// candidate's answers with the node's, until count requests were read,
// duration passed or ctx ends; an interrupt ends the run with its report.
func runCanaryTapped(ctx context.Context, cfg canary.Config, url, nsName string, count int, duration time.Duration, buffer int, stderr io.Writer) (*canary.Result, error) {
	ns := namespace.Name(nsName)
	switch {
	case url == "":
		return nil, &usageError{msg: "-source nats needs -nats (the NATS server the node's tap publishes to)"}
	case cfg.Candidate.PersonalKey == "" && cfg.Baseline.PersonalKey == "":
		return nil, &usageError{msg: "-source nats needs -candidate-personal-key: the tap publishes no personal key, and definitions polls go to the candidate with its own"}
	case count < 1 || count > 10_000_000:
		return nil, &usageError{msg: fmt.Sprintf("-requests %d out of range 1..10000000", count)}
	case duration < 0 || duration > 24*time.Hour:
		return nil, &usageError{msg: fmt.Sprintf("-duration %s out of range 0..24h", duration)}
	case buffer < 1 || buffer > 65536:
		return nil, &usageError{msg: fmt.Sprintf("-buffer %d out of range 1..65536", buffer)}
	}
	if err := ns.Validate(); err != nil {
		return nil, &usageError{msg: "-namespace: " + err.Error()}
	}
	cfg.MaxRequests = count
	// Requests missed because the canary is slower than the node are
	// counted (Result.Lost), not reported one slow-consumer error at a time.
	quiet := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if !errors.Is(err, nats.ErrSlowConsumer) {
			fmt.Fprintf(stderr, "canary: nats: %v\n", err)
		}
	})
	nc, err := nats.Connect(url, nats.Name("vexil canary"), quiet)
	if err != nil {
		return nil, fmt.Errorf("-nats %s: %w", url, err)
	}
	defer nc.Close()
	subject := ns.Subject("canary", "tap")
	msgs := make(chan *nats.Msg, buffer)
	sub, err := nc.ChanSubscribe(subject, msgs)
	if err != nil {
		return nil, err
	}
	if err := nc.Flush(); err != nil { // the subscription is in place from here
		return nil, err
	}
	fmt.Fprintf(stderr, "canary: reading %s on %s\n", subject, nc.ConnectedUrl())
	var until <-chan time.Time
	if duration > 0 {
		t := time.NewTimer(duration)
		defer t.Stop()
		until = t.C
	}
	next := func() (canary.Tapped, bool, error) {
		select {
		case m := <-msgs:
			t, err := canary.DecodeTapped(m.Data)
			return t, err == nil, err
		case <-until:
		case <-ctx.Done():
		}
		return canary.Tapped{}, false, nil
	}
	// The comparisons under way finish after an interrupt: their answers
	// belong in the report.
	res, err := canary.RunTapped(context.WithoutCancel(ctx), cfg, next)
	if err != nil && res == nil {
		return nil, &usageError{msg: err.Error()}
	}
	if res != nil {
		dropped, _ := sub.Dropped()
		res.Lost = dropped
	}
	return res, err
}

func printCanary(w io.Writer, r *canary.Result) {
	fmt.Fprintf(w, "requests read %d, compared %d, diverged %d (transport failures %d)\n", r.Read, r.Compared, r.Diverged, r.Failed)
	if r.NodeErrors > 0 {
		fmt.Fprintf(w, "tapped requests the node answered with a server error (not compared): %d\n", r.NodeErrors)
	}
	if r.Lost > 0 {
		fmt.Fprintf(w, "tapped requests lost (the canary read slower than the node published): %d\n", r.Lost)
	}
	fmt.Fprintf(w, "%-10s %9s %9s %9s %9s\n", "", "p50 ms", "p90 ms", "p99 ms", "max ms")
	for _, s := range []struct {
		name string
		l    canary.Latency
	}{{"baseline", r.Baseline}, {"candidate", r.Candidate}} {
		fmt.Fprintf(w, "%-10s %9.3f %9.3f %9.3f %9.3f\n", s.name, s.l.P50, s.l.P90, s.l.P99, s.l.Max)
	}
	for i, d := range r.Divergences {
		body := strings.TrimSpace(string(d.Request.Body))
		fmt.Fprintf(w, "\ndivergence %d: %s %s %s (status %d / %d)\n", i+1, d.Request.Method, d.Request.Path, body, d.BaselineStatus, d.CandidateStatus)
		for _, diff := range d.Diffs {
			fmt.Fprintf(w, "  %s\n", diff)
		}
	}
}

// runCanaryProxy serves the full canary on addr until ctx ends.
func runCanaryProxy(ctx context.Context, addr string, pc canary.ProxyConfig, stdout, stderr io.Writer) error {
	pc.OnRollback = func(reason string) { fmt.Fprintf(stderr, "canary: ROLLED BACK: %s\n", reason) }
	p, err := canary.NewProxy(pc)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("-proxy %s: %w", addr, err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "canary proxy on http://%s: the candidate answers %.0f%% of evaluation requests\n", ln.Addr(), pc.Share*100)
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	st := p.Status()
	fmt.Fprintf(stdout, "requests %d, answered by the candidate %d, divergences %d, candidate errors %d, rolled back %v %s\n",
		st.Requests, st.ByCandidate, st.Divergences, st.CandidateErrors, st.RolledBack, st.Reason)
	return nil
}
