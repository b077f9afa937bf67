package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ensure returns the stream want names, creating it with want when absent.
// An existing stream keeps its configuration; when it differs from want in
// a setting Differences compares, log (nil: slog.Default()) receives one
// warning listing them.
func Ensure(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	if log == nil {
		log = slog.Default()
	}
	if want.Name == "" {
		return nil, errors.New("streams: ensure: the configuration has no stream name")
	}
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if err == nil {
			log.Info("stream created with the defaults", "stream", want.Name, "subjects", want.Subjects)
			return s, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // created meanwhile, by another process
			s, err = js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("streams: ensure %s: %w", want.Name, err)
	}
	if diff := Differences(s.CachedInfo().Config, want); len(diff) > 0 {
		log.Warn("stream exists with settings other than the defaults; keeping them", "stream", want.Name, "differences", diff)
	}
	return s, nil
}

// Differences lists the settings in which have differs from want, each as
// "name: have X, default Y". It compares subjects (as a set), retention,
// storage, discard, max_age, duplicate_window, max_msgs, max_bytes,
// max_msg_size, max_msgs_per_subject, max_consumers and num_replicas; zero
// limits mean what the server makes of them (unlimited, one replica, a
// two-minute duplicate window). Name and description are not settings.
func Differences(have, want jetstream.StreamConfig) []string {
	have, want = normalize(have), normalize(want)
	var diff []string
	add := func(name string, h, w any) {
		diff = append(diff, fmt.Sprintf("%s: have %v, default %v", name, h, w))
	}
	if hs, ws := sorted(have.Subjects), sorted(want.Subjects); !slices.Equal(hs, ws) {
		add("subjects", hs, ws)
	}
	if have.Retention != want.Retention {
		add("retention", have.Retention, want.Retention)
	}
	if have.Storage != want.Storage {
		add("storage", have.Storage, want.Storage)
	}
	if have.Discard != want.Discard {
		add("discard", have.Discard, want.Discard)
	}
	if have.MaxAge != want.MaxAge {
		add("max_age", have.MaxAge, want.MaxAge)
	}
	if have.Duplicates != want.Duplicates {
		add("duplicate_window", have.Duplicates, want.Duplicates)
	}
	if have.MaxMsgs != want.MaxMsgs {
		add("max_msgs", have.MaxMsgs, want.MaxMsgs)
	}
	if have.MaxBytes != want.MaxBytes {
		add("max_bytes", have.MaxBytes, want.MaxBytes)
	}
	if have.MaxMsgSize != want.MaxMsgSize {
		add("max_msg_size", have.MaxMsgSize, want.MaxMsgSize)
	}
	if have.MaxMsgsPerSubject != want.MaxMsgsPerSubject {
		add("max_msgs_per_subject", have.MaxMsgsPerSubject, want.MaxMsgsPerSubject)
	}
	if have.MaxConsumers != want.MaxConsumers {
		add("max_consumers", have.MaxConsumers, want.MaxConsumers)
	}
	if have.Replicas != want.Replicas {
		add("num_replicas", have.Replicas, want.Replicas)
	}
	return diff
}

// defaultDuplicates is the server's duplicate window when none is set.
const defaultDuplicates = 2 * time.Minute

// normalize replaces zero limits with the values the server stores for them.
func normalize(c jetstream.StreamConfig) jetstream.StreamConfig {
	for _, p := range []*int64{&c.MaxMsgs, &c.MaxBytes, &c.MaxMsgsPerSubject} {
		if *p == 0 {
			*p = -1
		}
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = -1
	}
	if c.MaxConsumers == 0 {
		c.MaxConsumers = -1
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = defaultDuplicates
		if c.MaxAge > 0 && c.MaxAge < defaultDuplicates {
			c.Duplicates = c.MaxAge
		}
	}
	return c
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
