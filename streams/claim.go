package streams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vexil-dev/vexil/namespace"
)

// ClaimBucket is the key-value bucket that records, on one NATS system,
// which store each namespace serves and which namespace each store is
// served by. It belongs to no namespace: it is what keeps them apart.
const ClaimBucket = "vexil_namespaces"

// MaxStoreID bounds the store identity Claim records.
const MaxStoreID = 1024

// ErrClaimed is wrapped by Claim's error when the namespace serves another
// store, or the store is served by another namespace.
var ErrClaimed = errors.New("streams: namespace and store disagree")

// Claim binds namespace ns to the store that storeID identifies ("scylla
// keyspace vexil", say), on the first start of either, and checks the
// binding on every later one. Nodes of one environment share the store and
// the namespace, so they agree; a node whose store is another (staging's
// keyspace with production's namespace) would take a share of the
// namespace's messages and drop those of teams its store does not know, so
// Claim refuses it with ErrClaimed, naming both sides. The binding is two
// keys of ClaimBucket, each created once: ns.<namespace> holds the store
// identity and store.<sha256 of it> the namespace.
func Claim(ctx context.Context, js jetstream.JetStream, ns namespace.Name, storeID string) error {
	if err := ns.Validate(); err != nil {
		return fmt.Errorf("streams: claim: %w", err)
	}
	if storeID == "" || len(storeID) > MaxStoreID {
		return fmt.Errorf("streams: claim: store identity of %d bytes, want 1..%d", len(storeID), MaxStoreID)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: ClaimBucket,
		Description: "Vexil namespaces on this NATS and the stores they serve", Storage: jetstream.FileStorage, History: 1})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, ClaimBucket)
	}
	if err != nil {
		return fmt.Errorf("streams: claim: bucket %s: %w", ClaimBucket, err)
	}
	sum := sha256.Sum256([]byte(storeID))
	nsKey, storeKey := "ns."+ns.String(), "store."+hex.EncodeToString(sum[:16])
	nsName := ns.String()
	mismatch := func(haveStore, haveNS string) error {
		if haveStore != "" && haveStore != storeID {
			return fmt.Errorf("%w: namespace %q on this NATS serves the store %q, and this node's store is %q: "+
				"give this environment its own namespace (-namespace, nats.namespace) or use that namespace's store "+
				"(the binding is key %s of bucket %s)", ErrClaimed, nsName, haveStore, storeID, nsKey, ClaimBucket)
		}
		if haveNS != "" && haveNS != nsName {
			return fmt.Errorf("%w: the store %q is served by namespace %q on this NATS, and this node's namespace is %q: "+
				"start it with -namespace %s (nats.namespace) or give it its own store "+
				"(the binding is key %s of bucket %s)", ErrClaimed, storeID, haveNS, nsName, haveNS, storeKey, ClaimBucket)
		}
		return nil
	}
	// Check both keys before writing either, so that a refusal leaves no
	// half binding behind; then create what is missing (a concurrent first
	// start may win: its value is checked like any other).
	haveStore, err := getKey(ctx, kv, nsKey)
	if err != nil {
		return err
	}
	haveNS, err := getKey(ctx, kv, storeKey)
	if err != nil {
		return err
	}
	if err := mismatch(haveStore, haveNS); err != nil {
		return err
	}
	if haveStore == "" {
		if haveStore, err = claimKey(ctx, kv, nsKey, storeID); err != nil {
			return err
		}
	}
	if haveNS == "" {
		if haveNS, err = claimKey(ctx, kv, storeKey, nsName); err != nil {
			return err
		}
	}
	return mismatch(haveStore, haveNS)
}

// getKey returns the value of key, "" when it has none.
func getKey(ctx context.Context, kv jetstream.KeyValue, key string) (string, error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("streams: claim %s: %w", key, err)
	}
	return string(e.Value()), nil
}

// claimKey creates key with value unless it exists, and returns the value
// the key holds.
func claimKey(ctx context.Context, kv jetstream.KeyValue, key, value string) (string, error) {
	_, err := kv.Create(ctx, key, []byte(value))
	if err == nil {
		return value, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("streams: claim %s: %w", key, err)
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return "", fmt.Errorf("streams: claim %s: %w", key, err)
	}
	return string(e.Value()), nil
}
