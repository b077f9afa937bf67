package usage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/axiomhq/hyperloglog"
)

// Endpoint is how a remote evaluation arrived.
type Endpoint uint8

// Endpoints of remote evaluation.
const (
	EndpointFlags  Endpoint = iota // POST /flags
	EndpointDecide                 // POST /decide
	EndpointGRPC                   // gRPC Evaluate (and POST /api/evaluate)
	EndpointOFREP                  // OpenFeature's OFREP, /ofrep/v1/evaluate/flags
	// EndpointLocal counts evaluations a client made in process and
	// reported in a batch (gRPC ReportEvaluations, vexilclient).
	EndpointLocal
	numEndpoints
)

var endpointNames = [numEndpoints]string{"flags", "decide", "grpc", "ofrep", "local"}

// String is the endpoint's name in JSON ("flags", "decide", "grpc",
// "ofrep", "local").
func (e Endpoint) String() string {
	if e < numEndpoints {
		return endpointNames[e]
	}
	return "unknown"
}

// MaxValues bounds the distinct values (variants, "true", "false") one
// flag's counts keep per bucket, OtherValue included: past MaxValues-1
// the new ones are counted under OtherValue, so
// a flag whose variants change every minute cannot grow a row without end.
const MaxValues = 64

// OtherValue collects the values past MaxValues.
const OtherValue = "$other"

// hllPrecision: 2^14 registers, a standard error of 0.81%, 16 KiB once
// dense (sparse, a few bytes per distinct id, below that).
const hllPrecision = 14

// Counts is one flag's usage over one bucket: one node's share or the
// merge of several nodes' and buckets'. Every field merges commutatively
// (sums, a max, a sketch union), which is what lets each node write only
// its own rows and readers add them up.
type Counts struct {
	// Evaluations counts remote evaluations, by endpoint in ByEndpoint.
	Evaluations uint64
	ByEndpoint  [numEndpoints]uint64
	// Stored counts the evaluations answered from precomputed results.
	Stored uint64
	// Errors counts evaluations that failed (errorsWhileComputingFlags).
	Errors uint64
	// Values counts the answers by value: the variant key, or "true" /
	// "false" for a boolean flag.
	Values map[string]uint64
	// Polls counts local-evaluation definition requests (team rows only:
	// a poll carries every flag).
	Polls uint64
	// Last is the last evaluation or poll, Unix milliseconds.
	Last int64
	// uniques estimates the distinct ids evaluated (nil: none).
	uniques *hyperloglog.Sketch
}

func newSketch() *hyperloglog.Sketch {
	sk, _ := hyperloglog.NewSketch(hllPrecision, true)
	return sk
}

// Uniques is the estimated number of distinct ids evaluated.
func (c *Counts) Uniques() uint64 {
	if c.uniques == nil {
		return 0
	}
	return c.uniques.Estimate()
}

// addValue counts n answers of value v within MaxValues.
func (c *Counts) addValue(v string, n uint64) {
	if c.Values == nil {
		c.Values = map[string]uint64{}
	}
	if _, ok := c.Values[v]; !ok && v != OtherValue && len(c.Values) >= MaxValues-1 {
		v = OtherValue
	}
	c.Values[v] += n
}

// insertHash adds a distinct id's hash to the sketch.
func (c *Counts) insertHash(h uint64) {
	if c.uniques == nil {
		c.uniques = newSketch()
	}
	c.uniques.InsertHash(h)
}

// Merge adds o into c.
func (c *Counts) Merge(o *Counts) {
	c.Evaluations += o.Evaluations
	for i := range c.ByEndpoint {
		c.ByEndpoint[i] += o.ByEndpoint[i]
	}
	c.Stored += o.Stored
	c.Errors += o.Errors
	c.Polls += o.Polls
	c.Last = max(c.Last, o.Last)
	for _, k := range slices.Sorted(maps.Keys(o.Values)) {
		if k != OtherValue {
			c.addValue(k, o.Values[k])
		}
	}
	if n := o.Values[OtherValue]; n > 0 {
		c.addValue(OtherValue, n)
	}
	if o.uniques != nil {
		if c.uniques == nil {
			c.uniques = o.uniques.Clone()
		} else {
			_ = c.uniques.Merge(o.uniques) // same precision: cannot fail
		}
	}
}

// Empty reports whether nothing was counted.
func (c *Counts) Empty() bool {
	return c.Evaluations == 0 && c.Polls == 0 && c.Errors == 0
}

const countsVersion = 1

var errCorrupt = errors.New("usage: corrupt counts")

// MarshalBinary encodes c: a version byte, varints, the values sorted by
// key, then the sketch (axiomhq's encoding) if any.
func (c *Counts) MarshalBinary() ([]byte, error) {
	b := []byte{countsVersion}
	b = binary.AppendUvarint(b, c.Evaluations)
	b = binary.AppendUvarint(b, uint64(numEndpoints))
	for _, n := range c.ByEndpoint {
		b = binary.AppendUvarint(b, n)
	}
	b = binary.AppendUvarint(b, c.Stored)
	b = binary.AppendUvarint(b, c.Errors)
	b = binary.AppendUvarint(b, c.Polls)
	b = binary.AppendVarint(b, c.Last)
	b = binary.AppendUvarint(b, uint64(len(c.Values)))
	for _, k := range slices.Sorted(maps.Keys(c.Values)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, c.Values[k])
	}
	if c.uniques == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	return c.uniques.AppendBinary(b)
}

// UnmarshalBinary decodes what MarshalBinary wrote.
func (c *Counts) UnmarshalBinary(b []byte) error {
	*c = Counts{}
	if len(b) == 0 || b[0] != countsVersion {
		return fmt.Errorf("%w: version", errCorrupt)
	}
	b = b[1:]
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			bad = true
			return 0
		}
		b = b[n:]
		return v
	}
	c.Evaluations = uv()
	ne := uv()
	for i := uint64(0); i < ne && !bad; i++ {
		v := uv()
		if i < uint64(numEndpoints) {
			c.ByEndpoint[i] = v
		}
	}
	c.Stored, c.Errors, c.Polls = uv(), uv(), uv()
	last, n := binary.Varint(b)
	if n <= 0 || bad {
		return errCorrupt
	}
	c.Last, b = last, b[n:]
	nv := uv()
	if bad || nv > MaxValues {
		return fmt.Errorf("%w: values", errCorrupt)
	}
	for range nv {
		l := uv()
		if bad || l > uint64(len(b)) {
			return errCorrupt
		}
		k := string(b[:l])
		b = b[l:]
		v := uv()
		if bad {
			return errCorrupt
		}
		if c.Values == nil {
			c.Values = make(map[string]uint64, nv)
		}
		c.Values[k] += v
	}
	if len(b) == 0 {
		return errCorrupt
	}
	if b[0] == 1 {
		sk := newSketch()
		if err := sk.UnmarshalBinary(b[1:]); err != nil {
			return fmt.Errorf("%w: sketch: %v", errCorrupt, err)
		}
		c.uniques = sk
	}
	return nil
}
