package evalsvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/errcode"
	"github.com/vexil-dev/vexil/evalsvc/wire"
	"github.com/vexil-dev/vexil/flags"
	"github.com/vexil-dev/vexil/usage"
)

// OFREP, the OpenFeature Remote Evaluation Protocol
// (https://github.com/open-feature/protocol, service/openapi.yaml): any
// OpenFeature SDK with an OFREP provider evaluates Vexil's flags with no
// Vexil code. Both endpoints run the evaluation of POST /flags (the same
// admission, token, reads and engine).
//
// The evaluation context maps to a /flags request (docs/openfeature.md):
//   - targetingKey is the distinct id (required: TARGETING_KEY_MISSING);
//   - groups, an object of group type name to group key ({"company": "acme"});
//   - groupProperties, an object of group type name to an object of
//     properties;
//   - deviceId, the device id that flags bucketing by device hash;
//   - every other key is a person property, overriding the stored one.
//
// A boolean flag's value is its enabled state; a multivariate flag's is its
// variant key when enabled, false when not (a string evaluation then gets a
// TYPE_MISMATCH and the caller's default). The payload, id and version are
// in the metadata (the payload as the JSON text its author wrote), with
// PostHog's reason code and the matching condition.
const (
	ofrepPrefix    = "/ofrep/v1/evaluate/flags"
	ofrepMaxKeyLen = 400

	// OFREP error codes (OpenFeature's).
	ofrepParseError     = "PARSE_ERROR"
	ofrepTargetingKey   = "TARGETING_KEY_MISSING"
	ofrepInvalidContext = "INVALID_CONTEXT"
	ofrepGeneral        = "GENERAL"
	ofrepFlagNotFound   = "FLAG_NOT_FOUND"
)

// Context keys that are not person properties.
const (
	ofrepKeyTargeting       = "targetingKey"
	ofrepKeyGroups          = "groups"
	ofrepKeyGroupProperties = "groupProperties"
	ofrepKeyDeviceID        = "deviceId"
)

// ofrepFailure is OFREP's error body (evaluationFailure, flagNotFound,
// bulkEvaluationFailure, generalErrorResponse are all this shape with some
// members left out).
type ofrepFailure struct {
	Key          string `json:"key,omitempty"`
	ErrorCode    string `json:"errorCode,omitempty"`
	ErrorDetails string `json:"errorDetails,omitempty"`
}

// ofrepResult is one flag's OFREP answer: evaluationSuccess, or
// evaluationFailure when ErrorCode is set.
type ofrepResult struct {
	Key          string         `json:"key"`
	Value        any            `json:"value,omitempty"`
	Reason       string         `json:"reason,omitempty"`
	Variant      string         `json:"variant,omitempty"`
	Metadata     map[string]any `json:"metadata,omitempty"`
	ErrorCode    string         `json:"errorCode,omitempty"`
	ErrorDetails string         `json:"errorDetails,omitempty"`
}

func (s *Service) serveOFREP(w http.ResponseWriter, r *http.Request) {
	key, bulk := "", r.URL.Path == ofrepPrefix || r.URL.Path == ofrepPrefix+"/"
	if !bulk {
		key = strings.TrimPrefix(r.URL.Path, ofrepPrefix+"/")
		if key == "" || len(key) > ofrepMaxKeyLen || strings.Contains(key, "/") {
			writeOFREP(w, http.StatusNotFound, ofrepFailure{Key: key, ErrorCode: ofrepFlagNotFound, ErrorDetails: "no such flag"})
			return
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOFREP(w, http.StatusMethodNotAllowed, ofrepFailure{ErrorDetails: "use POST"})
		return
	}
	if err := s.checkRequest(r); err != nil {
		writeOFREPFailure(w, err)
		return
	}
	ticket, err := s.admit(admission.Evaluate)
	if err != nil {
		writeOFREPFailure(w, err)
		return
	}
	defer ticket.Done()
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxBodyBytes)+1))
	if err != nil {
		writeOFREP(w, http.StatusBadRequest, ofrepFailure{Key: key, ErrorCode: ofrepParseError, ErrorDetails: "cannot read the body"})
		return
	}
	if len(body) > s.cfg.MaxBodyBytes {
		writeOFREPFailure(w, tooLarge(s.cfg.MaxBodyBytes))
		return
	}
	token := bearer(r.Header.Get("Authorization"))
	if token == "" {
		token = strings.TrimSpace(r.Header.Get("X-API-Key"))
	}
	if token == "" {
		writeOFREP(w, http.StatusUnauthorized, ofrepFailure{ErrorDetails: "send the project token as \"Authorization: Bearer phc_...\""})
		return
	}
	req, code, err := ofrepRequest(body, token, s.cfg.limits())
	if err != nil {
		status := http.StatusBadRequest
		var re *wire.RequestError
		if errors.As(err, &re) && re.Status == http.StatusRequestEntityTooLarge {
			status = re.Status
		}
		writeOFREP(w, status, ofrepFailure{Key: key, ErrorCode: code, ErrorDetails: err.Error()})
		return
	}
	if !bulk {
		req.FlagKeys = []string{key}
	}
	ctx := r.Context()
	ts, err := s.requestTeam(ctx, req.Token)
	if err != nil {
		writeOFREPFailure(w, err)
		return
	}
	if err := s.allowTeam(admission.Evaluate, ts.team.ID); err != nil {
		writeOFREPFailure(w, err)
		return
	}
	sc := getScratch()
	defer putScratch(sc)
	ev := s.evaluate(ctx, ts, req, sc, usage.EndpointOFREP)
	if !bulk {
		for i := range ev.records {
			if rec := &ev.records[i]; rec.Key == key {
				res := ofrepRecord(rec)
				if res.ErrorCode != "" {
					writeOFREP(w, http.StatusInternalServerError, ofrepFailure{Key: key, ErrorCode: res.ErrorCode, ErrorDetails: res.ErrorDetails})
					return
				}
				writeOFREP(w, http.StatusOK, res)
				return
			}
		}
		writeOFREP(w, http.StatusNotFound, ofrepFailure{Key: key, ErrorCode: ofrepFlagNotFound, ErrorDetails: "no flag " + strconv.Quote(key) + " in this project"})
		return
	}
	out := struct {
		Flags []ofrepResult `json:"flags"`
	}{Flags: make([]ofrepResult, 0, len(ev.records))}
	for i := range ev.records {
		out.Flags = append(out.Flags, ofrepRecord(&ev.records[i]))
	}
	buf, err := json.Marshal(out)
	if err != nil {
		writeOFREPFailure(w, err)
		return
	}
	// The ETag is the answer's: it changes when the definitions or the
	// person's stored properties change what the context gets.
	etag := fmt.Sprintf(`"%016x"`, xxhash.Sum64(buf))
	w.Header().Set("ETag", etag)
	if wire.ETagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeBody(w, buf)
}

// ofrepRequest turns an OFREP body ({"context": {...}}) into the /flags
// request it stands for, decoded by the same rules and within the same
// limits. code is OFREP's error code for a refusal.
func ofrepRequest(body []byte, token string, lim wire.Limits) (*wire.FlagsRequest, string, error) {
	var doc struct {
		Context json.RawMessage `json:"context"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &doc); err != nil {
			return nil, ofrepParseError, fmt.Errorf("the body is not a JSON object: %v", err)
		}
	}
	var ctx map[string]json.RawMessage
	if len(doc.Context) > 0 && string(doc.Context) != "null" {
		if err := json.Unmarshal(doc.Context, &ctx); err != nil {
			return nil, ofrepInvalidContext, errors.New("context must be a JSON object")
		}
	}
	var tk string
	if raw, ok := ctx[ofrepKeyTargeting]; !ok || json.Unmarshal(raw, &tk) != nil {
		return nil, ofrepTargetingKey, errors.New("context.targetingKey must be a string: it is the distinct id")
	}
	eb := evaluateBody{Token: token, DistinctID: &tk}
	if raw, ok := ctx[ofrepKeyGroups]; ok {
		if err := json.Unmarshal(raw, &eb.Groups); err != nil {
			return nil, ofrepInvalidContext, errors.New("context.groups must map group type names to group keys (strings)")
		}
	}
	if raw, ok := ctx[ofrepKeyGroupProperties]; ok {
		var probe map[string]map[string]json.RawMessage
		if err := json.Unmarshal(raw, &probe); err != nil {
			return nil, ofrepInvalidContext, errors.New("context.groupProperties must map group type names to objects of properties")
		}
		eb.GroupProperties = raw
	}
	if raw, ok := ctx[ofrepKeyDeviceID]; ok {
		if err := json.Unmarshal(raw, &eb.DeviceID); err != nil {
			return nil, ofrepInvalidContext, errors.New("context.deviceId must be a string")
		}
	}
	for _, k := range []string{ofrepKeyTargeting, ofrepKeyGroups, ofrepKeyGroupProperties, ofrepKeyDeviceID} {
		delete(ctx, k)
	}
	if len(ctx) > 0 {
		props, err := json.Marshal(ctx)
		if err != nil {
			return nil, ofrepInvalidContext, err
		}
		eb.PersonProperties = props
	}
	raw, err := json.Marshal(&eb)
	if err != nil {
		return nil, ofrepInvalidContext, err
	}
	req, err := wire.DecodeFlagsJSON(raw, lim)
	if err != nil {
		return nil, ofrepInvalidContext, err
	}
	return req, "", nil
}

// ofrepRecord is one flag's OFREP answer.
func ofrepRecord(rec *wire.Record) ofrepResult {
	if rec.Failed {
		detail := "the flag could not be evaluated"
		if rec.ErrorCode != "" {
			detail += ": " + rec.ErrorCode
		}
		return ofrepResult{Key: rec.Key, ErrorCode: ofrepGeneral, ErrorDetails: detail}
	}
	res := ofrepResult{Key: rec.Key, Reason: ofrepReason(rec.Reason.Code), Metadata: map[string]any{"flagId": rec.ID, "version": rec.Version}}
	switch {
	case rec.Enabled && rec.Variant != "":
		res.Value, res.Variant = rec.Variant, rec.Variant
	case rec.Enabled:
		res.Value, res.Variant = true, "true"
	default:
		res.Value, res.Variant = false, "false"
	}
	if rec.Enabled && rec.Payload != nil {
		res.Metadata["payload"] = payloadText(rec.Payload)
	}
	if rec.Reason.ConditionIndex >= 0 {
		res.Metadata["conditionIndex"] = rec.Reason.ConditionIndex
	}
	if rec.Reason.Code != "" {
		res.Metadata["posthogReason"] = string(rec.Reason.Code)
	}
	return res
}

// payloadText is the JSON the flag's author wrote: PostHog stores a
// payload as a JSON string holding it, which is unwrapped; any other JSON
// is given as it is.
func payloadText(raw []byte) string {
	var inner string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &inner) == nil {
		return inner
	}
	return string(raw)
}

// ofrepReason maps PostHog's reason codes to OpenFeature's reasons.
func ofrepReason(code flags.ReasonCode) string {
	switch code {
	case flags.ReasonConditionMatch, flags.ReasonSuperCondition, flags.ReasonOverride:
		return "TARGETING_MATCH"
	case flags.ReasonHoldout:
		return "SPLIT"
	case flags.ReasonFlagDisabled:
		return "DISABLED"
	case flags.ReasonError:
		return "ERROR"
	case flags.ReasonNoConditionMatch, flags.ReasonOutOfRolloutBound, flags.ReasonNoGroupType, flags.ReasonMissingDependency:
		return "DEFAULT"
	}
	return "UNKNOWN"
}

// writeOFREPFailure answers a failure of the table of failures in OFREP's
// shape, with errcode's HTTP status (401, 403, 429 with Retry-After, 503).
func writeOFREPFailure(w http.ResponseWriter, err error) {
	e := classify(err)
	if ra := e.Meta[errcode.MetaRetryAfter]; ra != "" {
		w.Header().Set("Retry-After", ra)
	}
	status := e.Code.HTTPStatus()
	body := ofrepFailure{ErrorDetails: e.Message}
	if status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge {
		body.ErrorCode = ofrepInvalidContext
	}
	if e.Code == errcode.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vexil"`)
	}
	writeOFREP(w, status, body)
}

func writeOFREP(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		buf = []byte(`{"errorDetails":"internal error"}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}
