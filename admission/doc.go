// Package admission decides, before any work is done, whether a request is
// served now or refused at once: adaptive concurrency limiting with
// priorities, and per-team rate quotas. It is shared by every transport
// (the evaluation HTTP endpoints, the management REST gateway, both gRPC
// APIs) so that one node has one limit.
//
// # The adaptive limit
//
// A Controller keeps one concurrency limit for the node, adjusted by AIMD
// (additive increase, multiplicative decrease) from the measured latency of
// the requests it admitted. Each request class has a latency target
// (Config.Targets); a request slower than its class's target is slow. The
// controller looks at windows of Config.Window (and at least MinSamples
// finished requests): when more than Config.SlowFraction of a window's
// requests were slow, the limit is multiplied by Config.Backoff; when few
// were slow and the window used at least half the limit, it grows by one.
// Latency that rises because the CPUs are saturated therefore lowers the
// limit until the admitted requests are fast again, and the limit climbs
// back when they are.
//
// # The rate gate
//
// A concurrency limit sees only the time spent inside handlers. A node
// whose CPUs are saturated by fast handlers (a /flags answer is tens of
// microseconds of CPU) queues its requests before any handler runs: in the
// kernel's socket buffers and the Go scheduler's run queues. Its handlers
// stay fast and few at a time, and the concurrency limit never binds. So
// the controller also reads the Go scheduler's delays (runtime/metrics
// /sched/latencies:seconds) at the end of each window: when their 99th
// percentile is over Config.SchedTarget while the process kept its CPU busy
// (Config.BusyFraction of the CPU it may use, GOMAXPROCS or its cgroup's
// quota, by its CPU time: otherwise the delays are other processes'
// doing, and refusing would not shorten them) the window is
// slow, and a token
// bucket gate admits at most the rate served in that window times Backoff
// (at least Config.MinRate). Each calm window opens the gate by a tenth,
// or doubles it when no request was late and no queue was left (what
// closed it, a stall or a burst, is gone), and it opens wide once the
// load is under half of it. Windows of slow handlers lower the limit but
// do not hold the gate shut: it answers to the queue alone. As with the limit,
// a class may not take the last (1 - share) of the bucket's 10ms of
// tokens. The scheduler's delays are not read for the gate when
// SchedTarget is 0 (the default); the age of requests (below) always is.
//
// # The age of a request
//
// Neither handler latency nor the scheduler's delays see the longest wait
// of a saturated node: requests sitting in its sockets' buffers, unread,
// while the process is busy (or throttled by a CPU quota). The HTTP
// server's listener is wrapped by StampListener, which asks the kernel for
// the receive time of each read (SO_TIMESTAMPNS, read with recvmsg), and
// its ConnContext hands it to the request, so Age tells how long ago the
// request's bytes arrived. AcquireAged counts the requests older than half
// their class's target among those the gate would admit (while it is
// closed, those that found a token): when more than SlowFraction of a
// window's were, and at least Config.MinQueue requests were waiting on
// average over the window (the sum of all its requests' ages over its
// length, by Little's law), the window is slow for the rate gate (whether
// or not SchedTarget is set), and while the gate is closed such a request
// is refused at once (its answer would be late anyway, and refusing it
// costs a fraction of answering it), so the queue drains. One pause does
// not refuse anything: late requests are refused only once a window has
// closed the gate.
//
// Two rules keep the gate from closing on what refusing cannot shorten.
// A few clients behind a pause (a collection, a background goroutine
// sharing the one P, a CPU quota's throttling) are late, but never more
// than a few wait; and a few clients that resend a refusal at once (a
// closed loop) wait behind each other whatever the gate does. The queue
// rule (MinQueue, which the scheduler's delays obey too) ignores both: in
// scripts/bench-overload.sh a closed loop of 8 on 40% of a core was
// answered 215 times a second, refused 22,000 times, where it can be
// answered 1,400 times; and bench-peers' two connections were refused
// behind the import's background work (TestGateInClosedLoop has both).
// Deeper closed loops do close the gate, and then the arrivals it refuses
// for want of a token are as late as the queue whatever the rate:
// judged on them, the rate fell window after window to MinRate; judged
// on the requests that found a token, it settles where those are on
// time.
//
// gRPC calls are multiplexed on one connection and are admitted without
// an age, by the server's tap handle as soon as their headers arrive,
// before their message is read or decoded; the ticket travels in the call's context
// (WithTicket, TicketFrom; Shared makes its Done take effect once).
//
// # Why not a library
//
// The maintained Go ports of Netflix's concurrency-limits
// (github.com/platinummonkey/go-concurrency-limits and its forks) were
// considered first. Their gradient limiters estimate "no load" latency from
// a measured minimum, which on a shared machine is whatever the quietest
// millisecond happened to be: the limit then follows the neighbours' noise.
// Their trackers record the gradient miscomputed (go-concurrency-limits
// #166: the limit stayed high while latency rose), limits not updated when
// every request is dropped (#141), and Gradient2's limit growing without end
// under modest overload with a queue (Netflix/concurrency-limits #134).
// And they see only handler latency, which is the one signal that stays
// flat while a CPU-saturated node queues its requests in the kernel (see
// the rate gate and the age of a request, below): a library limiter would
// still need everything this package adds around it. AIMD on fixed
// per-class targets is a few dozen lines, is deterministic under a fake
// clock in the tests, and its targets are the SLO's own numbers.
//
// # Refusals
//
// Neither the limit nor the gate is a queue: a request is never queued. When the node is at its limit Acquire fails at once with
// ErrOverloaded (HTTP 503 with Retry-After, gRPC RESOURCE_EXHAUSTED, errcode
// "overloaded"), and the caller answers without reading the body.
//
// # Priorities
//
// There are three classes, in order: Evaluate (remote evaluation: /flags,
// /decide, gRPC Evaluate), Poll (local-evaluation definitions polls and
// watches) and Management (the management API). Every class shares the one
// limit, but a class may only use a fraction of it (Config.Shares: 100%,
// 90% and 75% by default): when the node fills up, management calls are
// refused first, then polls, and the top of the limit is kept for remote
// evaluation. As the limit falls with rising latency the lower classes'
// room shrinks first, in proportion. One limit with reserved fractions was
// chosen over a limiter per class because the classes compete for the same
// CPUs: separate limits would each have to guess the others' load.
//
// # Quotas
//
// Quotas are token buckets per team (a project token names one team):
// Config.QuotaRate requests per second with a burst of Config.QuotaBurst,
// or the team's own entry in Config.TeamQuotas. A team over its quota is
// refused with ErrQuotaExceeded. The evaluation service answers that on
// /flags and /decide as PostHog answers a project over its feature-flag
// quota (200, no flags, quotaLimited ["feature_flags"]), and on the other
// endpoints with 429 and Retry-After, as PostHog rate-limits them. Buckets
// exist only for teams that sent an authenticated request, so their number
// is bounded by the teams of the catalog.
//
// # Metrics
//
// vexil_admission_limit, vexil_admission_rate, vexil_admission_inflight{class},
// vexil_admission_admitted_seconds{class} (the latencies the limit follows),
// vexil_admission_admitted_total{class}, vexil_admission_rejected_total
// {class} and vexil_admission_quota_limited_total{class}: the only label is
// the class, three values. vexil_admission_refused_total{class, reason}
// splits the refusals by what refused them: limit (the concurrency
// limit), rate (the gate had no token) or late (the request's age while
// the gate was closed), nine series.
package admission
