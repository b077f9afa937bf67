package evalsvc

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/vexil-dev/vexil/precompute/results"
)

// Answers counts one flag's answers by source, indexed by results.Source:
// Answers[results.Stored] is how many came from stored results.
type Answers []uint64

// Total is the number of answers from every source.
func (a Answers) Total() uint64 {
	var n uint64
	for _, v := range a {
		n += v
	}
	return n
}

// FlagAnswers returns, for each flag of a team that this node's HyperCache
// holds, how often this node answered it since the flag was loaded, by
// source; nil when the team is not loaded. The hit ratio of a flag is
// Answers[results.Stored] over Total. These per-flag figures are kept in
// memory rather than in Prometheus, whose series would grow with every
// team and flag ever served: /metrics has the totals by source.
func (s *Service) FlagAnswers(team int64) map[string]Answers {
	return s.answers.snapshot(team)
}

// flagCounts is one flag's counters, indexed by results.Source.
type flagCounts []atomic.Uint64

// answerCounts holds the counters of every flag of the teams in the
// HyperCache. Its size follows the HyperCache's: a team's counters are
// replaced when the team is loaded (a flag that stays keeps its counts, a
// deleted flag's are dropped) and dropped when the team is gone. Counting
// is lock-free: each teamState holds its flags' counters.
type answerCounts struct {
	mu struct {
		sync.Mutex
		// teams maps a team to its flags' counters, by key.
		teams map[int64]map[string]flagCounts
	}
}

func newAnswerCounts() *answerCounts {
	a := &answerCounts{}
	a.mu.teams = map[int64]map[string]flagCounts{}
	return a
}

// attach returns the counters of a team's flags in keys order, keeping
// those of flags it had, and makes them the team's only ones.
func (a *answerCounts) attach(team int64, keys []string) []flagCounts {
	n := len(results.Sources())
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.mu.teams[team]
	next := make(map[string]flagCounts, len(keys))
	out := make([]flagCounts, len(keys))
	for i, k := range keys {
		c, ok := old[k]
		if !ok {
			c = make(flagCounts, n)
		}
		next[k], out[i] = c, c
	}
	a.mu.teams[team] = next
	return out
}

// drop forgets a team's counters.
func (a *answerCounts) drop(team int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.mu.teams, team)
}

func (a *answerCounts) snapshot(team int64) map[string]Answers {
	a.mu.Lock()
	flagsOf := maps.Clone(a.mu.teams[team])
	a.mu.Unlock()
	if flagsOf == nil {
		return nil
	}
	out := make(map[string]Answers, len(flagsOf))
	for k, c := range flagsOf {
		v := make(Answers, len(c))
		for i := range c {
			v[i] = c[i].Load()
		}
		out[k] = v
	}
	return out
}
