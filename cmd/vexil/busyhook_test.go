package main

import "testing"

func TestBusyHook(t *testing.T) {
	var arrivals uint64
	inflight := 0
	busy := busyHook(func() uint64 { return arrivals }, func() int { return inflight })
	steps := []struct {
		name     string
		arrive   uint64
		inflight int
		want     bool
	}{
		{"first call, nothing arrived", 0, 0, false},
		{"requests arrived", 3, 0, true},
		{"none since", 0, 0, false},
		{"none since, one being answered", 0, 1, true},
		{"one more", 1, 0, true},
		{"idle again", 0, 0, false},
	}
	for _, s := range steps {
		arrivals += s.arrive
		inflight = s.inflight
		if got := busy(); got != s.want {
			t.Errorf("%s: busy = %v, want %v", s.name, got, s.want)
		}
	}
}
