package scyllastore

import (
	"testing"
	"time"
)

func TestExpiryTTL(t *testing.T) {
	now := time.UnixMilli(1_763_100_000_000)
	grace := int(ExpiryTTLGrace / time.Second)
	for _, c := range []struct {
		at   int64
		want int
	}{
		{now.UnixMilli(), grace},
		{now.UnixMilli() - 1e9, grace},              // overdue: the grace only
		{now.UnixMilli() + 3_600_000, 3600 + grace}, // an hour ahead
		{now.UnixMilli() + 3_600_999, 3600 + grace}, // whole seconds, down
		{now.UnixMilli() + 1e15, maxTTL},            // capped
		{-1 << 63, grace},                           // no overflow
		{1<<63 - 1, maxTTL},
	} {
		if got := expiryTTL(c.at, now); got != c.want {
			t.Errorf("expiryTTL(now%+d ms) = %d, want %d", c.at-now.UnixMilli(), got, c.want)
		}
	}
}

func TestExpiryShard(t *testing.T) {
	seen := map[int]bool{}
	for team := int64(-3); team < 3; team++ {
		for i := range 100 {
			sh := expiryShard(team, "r:"+string(rune('a'+i%26))+string(rune('a'+i/26)))
			if sh < 0 || sh >= ExpiryShards {
				t.Fatalf("shard %d out of range", sh)
			}
			seen[sh] = true
		}
	}
	if len(seen) != ExpiryShards {
		t.Fatalf("600 entries hit %d of %d shards", len(seen), ExpiryShards)
	}
	if expiryShard(1, "r:a") != expiryShard(1, "r:a") || expiryShard(1, "r:a") == expiryShard(2, "r:a") && expiryShard(1, "r:b") == expiryShard(2, "r:b") && expiryShard(1, "r:c") == expiryShard(2, "r:c") {
		t.Fatal("shard does not depend on the team")
	}
}
