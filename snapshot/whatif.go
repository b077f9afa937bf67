package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/flags"
)

// MaxFlagFileBytes bounds the definition file of WhatIf.
const MaxFlagFileBytes = 8 << 20

// WhatIfRecord is one row of WhatIf's output: one flag's result for one
// distinct id.
type WhatIfRecord struct {
	Team           int64  `parquet:"team"`
	DistinctID     string `parquet:"distinct_id"`
	PersonID       string `parquet:"person_id"`
	FlagKey        string `parquet:"flag_key"`
	Enabled        bool   `parquet:"enabled"`
	Variant        string `parquet:"variant,optional"`
	Reason         string `parquet:"reason"`
	ConditionIndex int32  `parquet:"condition_index"`
	Error          string `parquet:"error,optional"`
}

// WhatIfOptions configures WhatIf.
type WhatIfOptions struct {
	// Definitions is the flag or flags to evaluate (a proposed change, or
	// the current ones). Required.
	Definitions flags.Definitions
	// Keys, when set, are the flags evaluated (their dependencies are
	// evaluated for them but not written); nil evaluates every flag.
	Keys []string
	// Team restricts the rows evaluated; 0 evaluates every row.
	Team int64
	// Now is the evaluation time (relative dates). Default time.Now().
	Now time.Time
}

// ParseFlagFile reads a definition file: one flag in PostHog's JSON, or a
// definitions document in the shape of PostHog's local-evaluation payload
// ({"flags": [...], "cohorts": {...}, "group_type_mapping": {...}}).
func ParseFlagFile(data []byte) (flags.Definitions, error) {
	if len(data) > MaxFlagFileBytes {
		return flags.Definitions{}, errcode.New(errcode.TooLarge, "flag-file: %d bytes, over the %d limit", len(data), MaxFlagFileBytes)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return flags.Definitions{}, errcode.New(errcode.InvalidArgument, "flag-file: not a JSON object: %v", err)
	}
	if _, ok := probe["flags"]; ok {
		d, err := flags.ParseDefinitions(data)
		if err != nil {
			return d, errcode.New(errcode.InvalidDefinition, "flag-file: %v", err)
		}
		return d, nil
	}
	f, err := flags.ParseFlag(data)
	if err != nil {
		return flags.Definitions{}, errcode.New(errcode.InvalidDefinition, "flag-file: %v", err)
	}
	return flags.Definitions{Flags: []flags.Flag{f}}, nil
}

// WhatIf evaluates o.Definitions with the flags engine over every row of
// the snapshot in dir and writes one record per (row, flag) to out as
// Parquet, streaming (one row group per 8192 rows of the snapshot). Rows
// carry the person's properties; group-targeted conditions have no group
// in a snapshot row and answer as a request without groups would.
func WhatIf(ctx context.Context, dir string, o WhatIfOptions, out io.Writer) (records int64, err error) {
	set, err := flags.Compile(o.Definitions)
	if err != nil {
		return 0, errcode.New(errcode.InvalidDefinition, "flag-file: %v", err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return 0, err
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	w := parquet.NewGenericWriter[WhatIfRecord](out, parquet.Compression(&parquet.Zstd))
	buf := make([]WhatIfRecord, 0, DefaultRowGroupRows)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		records += int64(len(buf))
		buf = buf[:0]
		return w.Flush()
	}
	err = ForEach(ctx, dir, m, TableRows, func(rows []RowRecord) error {
		for i := range rows {
			r := &rows[i]
			if o.Team != 0 && r.Team != o.Team {
				continue
			}
			props := map[string]any{}
			dec := json.NewDecoder(bytes.NewReader([]byte(r.Properties)))
			dec.UseNumber()
			if err := dec.Decode(&props); err != nil {
				return fmt.Errorf("row %d/%q: properties: %w", r.Team, r.DistinctID, err)
			}
			fc := &flags.Context{DistinctID: r.DistinctID, PersonProperties: props, Now: now}
			results := set.Evaluate(fc)
			if o.Keys != nil {
				results = set.EvaluateKeys(fc, o.Keys)
			}
			for _, res := range results {
				rec := WhatIfRecord{Team: r.Team, DistinctID: r.DistinctID, PersonID: r.PersonID, FlagKey: res.Key,
					Enabled: res.Enabled, Variant: res.Variant, Reason: string(res.Reason.Code), ConditionIndex: int32(res.Reason.ConditionIndex)}
				if res.Err != nil {
					rec.Error = res.Err.Error()
				}
				buf = append(buf, rec)
			}
			if len(buf) >= DefaultRowGroupRows {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return records, err
}

// WhatIfFile is WhatIf into a file written atomically: a failed run leaves
// no partial results file.
func WhatIfFile(ctx context.Context, dir string, o WhatIfOptions, path string) (int64, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	n, err := WhatIf(ctx, dir, o, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}
