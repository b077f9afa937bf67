package store

import (
	"maps"
	"slices"
)

// Clone returns a deep copy of p (nil for nil).
func (p *Person) Clone() *Person {
	if p == nil {
		return nil
	}
	q := *p
	q.Set = cloneRegisters(p.Set)
	q.SetOnce = cloneRegisters(p.SetOnce)
	return &q
}

// Clone returns a deep copy of g (nil for nil).
func (g *Group) Clone() *Group {
	if g == nil {
		return nil
	}
	q := *g
	q.Set = cloneRegisters(g.Set)
	q.Properties = slices.Clone(g.Properties)
	q.Results = slices.Clone(g.Results)
	q.Counters = slices.Clone(g.Counters)
	return &q
}

// Clone returns a deep copy of r (nil for nil).
func (r *Row) Clone() *Row {
	if r == nil {
		return nil
	}
	q := *r
	q.Properties = slices.Clone(r.Properties)
	q.Results = slices.Clone(r.Results)
	q.Counters = slices.Clone(r.Counters)
	return &q
}

// cloneRegisters copies the map; register values are never modified in
// place, so they are shared.
func cloneRegisters(m map[string]Register) map[string]Register {
	if m == nil {
		return map[string]Register{}
	}
	return maps.Clone(m)
}
