// Package storetest is the contract suite that every store.Store backend
// runs (Run, RunDurable), and Digest, a hash of a store's full logical
// content used to prove that two stores hold the same state.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vexil-dev/vexil/store"
)

// Digest returns a SHA-256 over the canonical encodings of every entity
// that s.Dump visits, independent of the order in which it visits them:
// each entity is hashed, the hashes are sorted, and the sorted list is
// hashed with the entity count. Equal logical content gives equal digests
// across backends.
func Digest(ctx context.Context, s store.Store) ([32]byte, error) {
	var (
		sums [][32]byte
		buf  []byte
	)
	err := s.Dump(ctx, func(e store.Entity) error {
		var err error
		if buf, err = e.AppendBinary(buf[:0]); err != nil {
			return err
		}
		sums = append(sums, sha256.Sum256(buf))
		return nil
	})
	if err != nil {
		return [32]byte{}, fmt.Errorf("storetest: digest: %w", err)
	}
	slices.SortFunc(sums, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	h := sha256.New()
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(sums))))
	for i := range sums {
		h.Write(sums[i][:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out, nil
}

// Counts reports how many entities of each kind s.Dump visits, keyed
// "person", "mapping", "index", "row", "group", "grouptype".
func Counts(ctx context.Context, s store.Store) (map[string]int, error) {
	n := map[string]int{}
	err := s.Dump(ctx, func(e store.Entity) error {
		switch {
		case e.Person != nil:
			n["person"]++
		case e.Mapping != nil:
			n["mapping"]++
		case e.Index != nil:
			n["index"]++
		case e.Row != nil:
			n["row"]++
		case e.Group != nil:
			n["group"]++
		case e.GroupType != nil:
			n["grouptype"]++
		}
		return nil
	})
	return n, err
}
