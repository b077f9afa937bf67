package snapshot_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/vexil-dev/vexil/snapshot"
)

// TestS3 uploads a snapshot through minio-go to an in-process fake S3
// (gofakes3: no MinIO or S3 runs on this machine), downloads it elsewhere
// and restores it; a part corrupted in the bucket is refused after the
// download.
func TestS3(t *testing.T) {
	ctx := context.Background()
	backend := s3mem.New()
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	if err := backend.CreateBucket("snaps"); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	s3 := snapshot.S3{Endpoint: u.Host, Insecure: true, AccessKey: "k", SecretKey: "s", Region: "us-east-1"}

	src := seeded(t, 300)
	dir := filepath.Join(t.TempDir(), "snap")
	if _, err := snapshot.Create(ctx, snapshot.Options{Store: src, Dir: dir, RowGroupRows: 50, PartRows: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Upload(ctx, dir, "snaps", "nightly/s1"); err != nil {
		t.Fatal(err)
	}
	// Again: every part is there already (resume).
	if _, err := s3.Upload(ctx, dir, "snaps", "nightly/s1"); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "copy")
	if _, err := s3.Download(ctx, "snaps", "nightly/s1", local); err != nil {
		t.Fatal(err)
	}
	dst := pebbleBackend().open(t)
	if _, err := snapshot.Restore(ctx, local, dst, snapshot.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := digest(t, dst), digest(t, src); got != want {
		t.Fatalf("restored from S3: digest %s, want %s", got, want)
	}

	// A part replaced in the bucket: the download is refused.
	if _, err := backend.PutObject("snaps", "nightly/s1/rows/part-00000.parquet", map[string]string{}, strings.NewReader("not parquet"), int64(len("not parquet")), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Download(ctx, "snaps", "nightly/s1", filepath.Join(t.TempDir(), "bad")); !errors.Is(err, snapshot.ErrCorrupt) {
		t.Fatalf("download of a corrupted part: %v, want ErrCorrupt", err)
	}
}
