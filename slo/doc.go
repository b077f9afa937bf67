// Package slo keeps Vexil's service level objectives for evaluation,
// defined the same way for remote evaluation (HTTP /flags and /decide,
// gRPC Evaluate) and local evaluation (definitions polls, answered 200 or
// 304): latency percentiles, error rate and availability, and an
// objective such as "99.99% of evaluation requests in 30 days succeed
// within 50 ms" whose error budget and burn rates Vexil computes itself.
//
// The figures come from the server's own histograms: a Sampler gathers
// the evaluation service's vexil_evalsvc_request_seconds histogram and
// vexil_evalsvc_requests_total counter from the node's Prometheus
// registry, takes the difference since its last flush, and writes it as
// one row per series, minute and node (store.SLOStore: Pebble or
// ScyllaDB). So the stored rollups are exactly what /metrics counted,
// they survive restarts (a restarted node is a new node name: its
// counters start again from zero), and a Reader sums every node's rows.
//
// A request is bad when it failed on the server's side (5xx; admission's
// shed requests answer 503 and count) or took longer than the objective's
// latency; client errors (4xx) are not in the objective's total. The
// latency of a request that is both slow and failed counts once as slow
// and once as failed, never less: the bad count is an upper bound, capped
// at the total.
//
// Percentiles are computed from the histogram's buckets the way
// Prometheus' histogram_quantile does (linear within a bucket; the
// highest finite bound for the +Inf bucket), so the status page's numbers
// equal that function over /metrics.
package slo
