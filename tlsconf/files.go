package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"
)

// maxFileBytes bounds a PEM file read: a certificate chain or a CA bundle
// is a few KiB; the system bundle is about 200 KiB.
const maxFileBytes = 1 << 20

// DefaultCheckInterval is how often, at most, a handshake reads the files
// again: a few KiB a second costs nothing, and a rotation is served within
// a second of the files being complete.
const DefaultCheckInterval = time.Second

// Options tune how the files are watched.
type Options struct {
	// CheckInterval is the least time between two reads of the files (at
	// a handshake). 0 is DefaultCheckInterval; a negative value reads them
	// at every handshake (tests).
	CheckInterval time.Duration
	// Logger reports a rotation and a rotation refused; nil discards.
	Logger *slog.Logger
	// now is the clock; tests leave it nil.
	now func() time.Time
}

// watched is a value parsed from files, parsed again when their content
// changes. The content is compared, not modification times, which a
// filesystem may keep at a coarse granularity. A parse that fails keeps
// the previous value until the files change again (the other half of a
// pair may be late).
type watched[T any] struct {
	files []string
	parse func(data [][]byte) (T, error)
	opts  Options

	mu        sync.Mutex
	cur       T
	seen      [][]byte // the content last read, parsed or refused
	lastCheck time.Time
}

func newWatched[T any](files []string, parse func([][]byte) (T, error), opts Options) (*watched[T], error) {
	if opts.CheckInterval == 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	w := &watched[T]{files: files, parse: parse, opts: opts}
	data, err := w.read()
	if err != nil {
		return nil, err
	}
	if w.cur, err = parse(data); err != nil {
		return nil, err
	}
	w.seen, w.lastCheck = data, opts.now()
	return w, nil
}

func (w *watched[T]) read() ([][]byte, error) {
	data := make([][]byte, len(w.files))
	for i, f := range w.files {
		var err error
		if data[i], err = readBounded(f); err != nil {
			return nil, err
		}
	}
	return data, nil
}

// get returns the current value, after reading the files again when the
// last read is older than the check interval.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.opts.now()
	if w.opts.CheckInterval > 0 && now.Sub(w.lastCheck) < w.opts.CheckInterval {
		return w.cur
	}
	w.lastCheck = now
	data, err := w.read()
	if err == nil && slices.EqualFunc(data, w.seen, bytes.Equal) {
		return w.cur
	}
	var v T
	if err == nil {
		w.seen = data
		v, err = w.parse(data)
	}
	if err != nil {
		// A missing file is logged at every look: it may be a
		// rotation by delete and create, or a lost volume.
		w.opts.Logger.Warn("tls: the files changed but do not load; serving the previous ones", "files", w.files, "err", err)
		return w.cur
	}
	w.cur = v
	w.opts.Logger.Info("tls: reloaded", "files", w.files)
	return w.cur
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// A KeyPair is a certificate chain and its private key, from PEM files
// watched for a rotation.
type KeyPair struct{ w *watched[*tls.Certificate] }

// LoadKeyPair loads the PEM certificate chain and key; an error names the
// file at fault.
func LoadKeyPair(certFile, keyFile string, opts Options) (*KeyPair, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: a certificate file and a key file are both needed")
	}
	w, err := newWatched([]string{certFile, keyFile}, func(data [][]byte) (*tls.Certificate, error) {
		c, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return nil, fmt.Errorf("tls: certificate %s and key %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}, opts)
	if err != nil {
		return nil, err
	}
	return &KeyPair{w: w}, nil
}

// Certificate returns the pair now on disk, or the last one that loaded.
func (k *KeyPair) Certificate() *tls.Certificate { return k.w.get() }

// Leaf returns the current leaf certificate, parsed.
func (k *KeyPair) Leaf() (*x509.Certificate, error) {
	c := k.Certificate()
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// A Pool is a set of CA certificates from a PEM file watched for a change.
type Pool struct{ w *watched[*x509.CertPool] }

// LoadPool loads a PEM bundle of CA certificates; a file with none is
// refused.
func LoadPool(file string, opts Options) (*Pool, error) {
	if file == "" {
		return nil, errors.New("tls: a CA file is needed")
	}
	w, err := newWatched([]string{file}, func(data [][]byte) (*x509.CertPool, error) {
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(data[0]) {
			return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", file)
		}
		return p, nil
	}, opts)
	if err != nil {
		return nil, err
	}
	return &Pool{w: w}, nil
}

// CertPool returns the pool now on disk, or the last one that loaded.
func (p *Pool) CertPool() *x509.CertPool { return p.w.get() }
