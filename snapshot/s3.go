package snapshot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vexil-dev/vexil/errcode"
)

// S3 is an S3-compatible bucket holding snapshots (AWS S3, MinIO, Ceph,
// R2, ...), through minio-go.
type S3 struct {
	// Endpoint is host[:port] (s3.amazonaws.com, minio:9000).
	Endpoint string
	// Insecure uses http instead of https.
	Insecure bool
	// AccessKey and SecretKey authenticate; empty reads AWS_ACCESS_KEY_ID
	// and AWS_SECRET_ACCESS_KEY.
	AccessKey, SecretKey string
	// Region, when the service needs one.
	Region string
}

// ParseS3URL splits s3://bucket/prefix.
func ParseS3URL(s string) (bucket, prefix string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", errcode.New(errcode.InvalidArgument, "%q is not s3://bucket/prefix", s)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

func (s S3) client() (*minio.Client, error) {
	ak, sk := s.AccessKey, s.SecretKey
	if ak == "" {
		ak, sk = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	}
	return minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(ak, sk, ""), Secure: !s.Insecure, Region: s.Region})
}

// shaMeta is the user metadata holding a part's SHA-256.
const shaMeta = "Vexil-Sha256"

// Upload copies the complete snapshot in dir to bucket/prefix: every part
// (skipping one already there with the same size and SHA-256, so an
// interrupted upload resumes), then the manifest last, so that a reader
// never sees a manifest whose parts are missing.
func (s S3) Upload(ctx context.Context, dir, bucket, prefix string) (*Manifest, error) {
	m, err := Verify(ctx, dir)
	if err != nil {
		return nil, err
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	for _, t := range m.Tables {
		for _, p := range t.Parts {
			key := path.Join(prefix, p.File)
			if st, err := c.StatObject(ctx, bucket, key, minio.StatObjectOptions{}); err == nil &&
				st.Size == p.Bytes && st.UserMetadata[shaMeta] == p.SHA256 {
				continue
			}
			if _, err := c.FPutObject(ctx, bucket, key, filepath.Join(dir, filepath.FromSlash(p.File)),
				minio.PutObjectOptions{UserMetadata: map[string]string{shaMeta: p.SHA256}, ContentType: "application/vnd.apache.parquet"}); err != nil {
				return nil, fmt.Errorf("snapshot: upload %s: %w", key, err)
			}
		}
	}
	if _, err := c.FPutObject(ctx, bucket, path.Join(prefix, ManifestFile), filepath.Join(dir, ManifestFile),
		minio.PutObjectOptions{ContentType: "application/json"}); err != nil {
		return nil, fmt.Errorf("snapshot: upload the manifest: %w", err)
	}
	return m, nil
}

// Download copies the snapshot at bucket/prefix into dir (which must not
// hold a snapshot): the manifest first, then each part, and verifies the
// copy (Verify) before it writes the manifest into dir, so dir holds a
// snapshot only when every checksum matched.
func (s S3) Download(ctx context.Context, bucket, prefix, dir string) (*Manifest, error) {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
		return nil, errcode.New(errcode.AlreadyExists, "snapshot: %s already holds a snapshot", dir)
	}
	c, err := s.client()
	if err != nil {
		return nil, err
	}
	staging := filepath.Join(dir, ".manifest.download")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := c.FGetObject(ctx, bucket, path.Join(prefix, ManifestFile), staging, minio.GetObjectOptions{}); err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "NoSuchKey" {
			return nil, errcode.New(errcode.NotFound, "no snapshot at s3://%s/%s (no %s)", bucket, prefix, ManifestFile)
		}
		return nil, fmt.Errorf("snapshot: download the manifest: %w", err)
	}
	m := new(Manifest)
	if err := readJSON(staging, m); err != nil {
		return nil, err
	}
	for _, t := range m.Tables {
		for _, p := range t.Parts {
			if !filepath.IsLocal(p.File) {
				return nil, fmt.Errorf("%w: part file %q is outside the snapshot", ErrCorrupt, p.File)
			}
			if err := c.FGetObject(ctx, bucket, path.Join(prefix, p.File), filepath.Join(dir, filepath.FromSlash(p.File)), minio.GetObjectOptions{}); err != nil {
				return nil, fmt.Errorf("snapshot: download %s: %w", p.File, err)
			}
		}
	}
	if err := os.Rename(staging, filepath.Join(dir, ManifestFile)); err != nil {
		return nil, err
	}
	if _, err := Verify(ctx, dir); err != nil {
		os.Remove(filepath.Join(dir, ManifestFile))
		return nil, err
	}
	return m, nil
}
