package scyllastore_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/vexil-dev/vexil/store"
	"github.com/vexil-dev/vexil/store/scyllastore"
	"github.com/vexil-dev/vexil/store/scyllastore/scyllastoretest"
)

// delayProxy forwards TCP connections to one node, holding every byte
// from the client for delay before passing it on: requests to that node,
// and so every read it coordinates, take delay longer. Replies and the
// node's traffic with the other nodes are untouched.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // ns

	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		closed bool
		conns  []net.Conn // closed by close
	}
}

func startDelayProxy(t *testing.T, target string) *delayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *delayProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.mu.closed = true
	for _, c := range p.mu.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// track records the connections for close; false (and both closed) when
// the proxy is closed already.
func (p *delayProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	p.mu.conns = append(p.mu.conns, cs...)
	return true
}

func (p *delayProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go func() { // replies: as they come
			defer p.wg.Done()
			_, _ = io.Copy(client, server)
			_ = client.Close()
			_ = server.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.delayed(server, client)
			_ = client.Close()
			_ = server.Close()
		}()
	}
}

// chunk is bytes read from the client at a time.
type chunk struct {
	b   []byte
	due time.Time
}

// delayed copies src to dst, each chunk delay after it was read (chunks
// overlap in their waits: pipelined requests are each delayed once).
func (p *delayProxy) delayed(dst, src net.Conn) {
	queue := make(chan chunk, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range queue {
			time.Sleep(time.Until(c.due))
			if _, err := dst.Write(c.b); err != nil {
				_ = src.Close()
				for range queue { // let the reader finish
				}
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			queue <- chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(p.delay.Load()))}
		}
		if err != nil {
			break
		}
	}
	close(queue)
	<-done
}

// quantiles describes durations (sorted in place).
func quantiles(d []time.Duration) string {
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
	return fmt.Sprintf("p50 %v, p90 %v, p99 %v, max %v",
		q(0.5).Round(10*time.Microsecond), q(0.9).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}

// gauge returns the value of the gauge name in reg, in seconds as time.
func gauge(t *testing.T, reg *prometheus.Registry, name string) time.Duration {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return time.Duration(mf.GetMetric()[0].GetGauge().GetValue() * float64(time.Second))
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// counter returns the value of the counter name{op} in reg.
func counter(t *testing.T, reg *prometheus.Registry, name, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{op=%q}", name, op)
	return 0
}

// TestHedgedReadsSlowNode runs on a three-node cluster (replication factor
// 3, reads at consistency ONE, so any node answers alone) with one node
// behind a proxy that holds every request for 500 ms: the reads that node
// coordinates (those whose first replica it is: a third) take 500 ms more.
// Without hedging, those reads are slow; with it, they are answered by a
// hedge to another node, long before the slow node would have answered,
// and the hedge-won metric counts them. The assertions are on counts with
// wide margins (half the injected delay separates slow from fast), not on
// latencies.
func TestHedgedReadsSlowNode(t *testing.T) {
	const (
		injected = 500 * time.Millisecond
		slow     = injected / 2
		nRows    = 240
		nGroups  = 60
		workers  = 8
	)
	ctx := context.Background()
	t0 := time.Now()
	cfg := scyllastoretest.ClusterConfig(t)
	if len(cfg.Hosts) < 3 {
		t.Fatalf("%d nodes in the test cluster, want 3", len(cfg.Hosts))
	}
	slowNode := cfg.Hosts[len(cfg.Hosts)-1]
	proxy := startDelayProxy(t, slowNode)
	slowHost, slowPortS, _ := net.SplitHostPort(slowNode)
	slowPort, _ := strconv.Atoi(slowPortS)
	proxyAddr := proxy.ln.Addr().(*net.TCPAddr)
	var translated atomic.Int64
	cfg.AddressTranslator = gocql.AddressTranslatorFunc(func(ip net.IP, port int) (net.IP, int) {
		if ip.String() == slowHost && port == slowPort {
			translated.Add(1)
			return proxyAddr.IP, proxyAddr.Port
		}
		return ip, port
	})
	// The slow node is reached through the proxy only: the others are
	// the contact points, it is found among their peers.
	cfg.Hosts = cfg.Hosts[:len(cfg.Hosts)-1]

	// Written at ALL, so that a read at ONE anywhere sees it.
	wcfg := cfg
	wcfg.Consistency, wcfg.HedgeAttempts = gocql.All, -1
	w := scyllastoretest.Open(t, wcfg)
	var b store.Batch
	b.PutGroupType(store.GroupType{Team: 1, Index: 0, Name: "company"})
	for i := range nRows {
		b.PutRow(row(1, fmt.Sprintf("user-%d", i), fmt.Sprintf("p%d", i), 1, fmt.Sprintf(`{"i":%d}`, i)))
	}
	for i := range nGroups {
		b.PutGroup(&store.Group{Team: 1, TypeIndex: 0, Key: fmt.Sprintf("c%d", i), Version: int64(i + 1), Properties: []byte(`{}`)})
	}
	if err := w.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}

	open := func(hedge bool) (*scyllastore.Store, *prometheus.Registry) {
		rcfg := cfg
		rcfg.ApplySchema = false
		rcfg.Consistency = gocql.One
		rcfg.Retries = 0 // the default
		reg := prometheus.NewRegistry()
		rcfg.Registerer = reg
		if hedge {
			rcfg.HedgeAttempts, rcfg.HedgeBudget, rcfg.HedgeMaxDelay = 1, 1, 100*time.Millisecond
		} else {
			rcfg.HedgeAttempts = -1
		}
		return scyllastoretest.Open(t, rcfg), reg
	}
	plain, _ := open(false)
	hedging, reg := open(true)
	t.Logf("schema applied, data written and stores open in %v", time.Since(t0).Round(time.Millisecond))
	if translated.Load() == 0 {
		t.Fatal("the slow node's address was never translated: the driver did not find it among the peers")
	}

	// readAll reads every row and group, workers at a time, checks the
	// answers and returns how many reads of each op took slow or longer.
	readAll := func(what string, s *scyllastore.Store) (slowRows, slowGroups int) {
		var nSlowRows, nSlowGroups atomic.Int64
		took := make([]time.Duration, nRows+nGroups)
		defer func() { t.Logf("%s: latency %s", what, quantiles(took)) }()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for i := range nRows + nGroups {
			g.Go(func() error {
				start := time.Now()
				if i < nRows {
					r, err := s.GetRow(gctx, 1, fmt.Sprintf("user-%d", i))
					if err != nil {
						return err
					}
					if r.PersonID != fmt.Sprintf("p%d", i) {
						return fmt.Errorf("row %d: person %q", i, r.PersonID)
					}
					took[i] = time.Since(start)
					if took[i] >= slow {
						nSlowRows.Add(1)
					}
					return nil
				}
				k := i - nRows
				gr, err := s.GetGroup(gctx, 1, 0, fmt.Sprintf("c%d", k))
				if err != nil {
					return err
				}
				if gr.Version != int64(k+1) {
					return fmt.Errorf("group %d: version %d", k, gr.Version)
				}
				took[i] = time.Since(start)
				if took[i] >= slow {
					nSlowGroups.Add(1)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		return int(nSlowRows.Load()), int(nSlowGroups.Load())
	}

	// Warm-up without delay: connection pools to every node, and the
	// hedging store's latency estimate (it hedges at its maximum until
	// 64 reads were answered).
	for i := range 2 {
		readAll(fmt.Sprintf("warm-up %d, without hedging", i), plain)
		readAll(fmt.Sprintf("warm-up %d, with hedging", i), hedging)
	}
	t.Logf("hedge delay after the warm-up: %v", gauge(t, reg, "vexil_scyllastore_hedge_delay_seconds"))
	// The hedge counters, by op: sent, won.
	hedgeCounts := func() (rows, groups [2]float64) {
		for i, name := range []string{"vexil_scyllastore_hedges_total", "vexil_scyllastore_hedge_wins_total"} {
			rows[i], groups[i] = counter(t, reg, name, "get_row"), counter(t, reg, name, "get_group")
		}
		return rows, groups
	}
	baseRows, baseGroups := hedgeCounts()

	proxy.delay.Store(int64(injected))
	slowRowsPlain, slowGroupsPlain := readAll("slow node, without hedging", plain)
	slowPlain := slowRowsPlain + slowGroupsPlain
	t.Logf("without hedging: %d of %d rows and %d of %d groups took %v or more", slowRowsPlain, nRows, slowGroupsPlain, nGroups, slow)
	// A third of the ring is the slow node's (scripts/cassandra-cluster.sh
	// spaces the tokens evenly); a tenth leaves room for any token layout.
	if slowPlain < (nRows+nGroups)/10 {
		t.Fatalf("without hedging only %d of %d reads were slow: the slow node coordinates too few reads for the test to mean anything", slowPlain, nRows+nGroups)
	}

	slowRowsHedged, slowGroupsHedged := readAll("slow node, with hedging", hedging)
	slowHedged := slowRowsHedged + slowGroupsHedged
	rows, groups := hedgeCounts()
	hedges := rows[0] - baseRows[0] + groups[0] - baseGroups[0]
	winsRows, winsGroups := rows[1]-baseRows[1], groups[1]-baseGroups[1]
	t.Logf("with hedging: %d rows and %d groups took %v or more; %v hedges sent, won %v (rows) + %v (groups)",
		slowRowsHedged, slowGroupsHedged, slow, hedges, winsRows, winsGroups)
	if slowHedged > slowPlain/4 {
		t.Errorf("with hedging %d reads were slow, want at most a quarter of the %d without", slowHedged, slowPlain)
	}
	// Every read the slow node coordinates is answered by its hedge
	// unless the hedge itself takes the injected delay.
	if wins := winsRows + winsGroups; wins < float64(slowPlain)*3/4 {
		t.Errorf("%v reads won by a hedge, want at least 3/4 of the %d slow without hedging", wins, slowPlain)
	}
	if slowRowsPlain > 0 && winsRows == 0 || slowGroupsPlain > 0 && winsGroups == 0 {
		t.Errorf("hedge wins: %v rows, %v groups; want some of each", winsRows, winsGroups)
	}
	if hedges < winsRows+winsGroups {
		t.Errorf("%v hedges sent, fewer than the %v won", hedges, winsRows+winsGroups)
	}
	if throttled := counter(t, reg, "vexil_scyllastore_hedges_throttled_total", "get_row"); throttled != 0 {
		t.Errorf("%v hedges throttled with a budget of 1", throttled)
	}
}
