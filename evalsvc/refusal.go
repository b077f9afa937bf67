package evalsvc

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/vexil-dev/vexil/admission"
)

// refusal is the whole HTTP answer to a request admission refused with
// ErrOverloaded, built once: under overload every refused request is
// answered by copying these bytes, so a refusal costs a small fraction of
// an answer and the node keeps the CPU to read and refuse the excess
// (when a refusal costs half an answer, twice the saturation rate cannot
// even be refused).
type refusal struct {
	body                       []byte
	contentType, length, retry []string
}

// newRefusal builds class cl's answer to err, the same one writeFailure
// would write.
func newRefusal(err *admission.RejectedError) refusal {
	e := classify(err)
	typ, code := postHogType(e)
	body, _ := json.Marshal(apiError{Type: typ, Code: code, Detail: e.Message})
	body = append(body, '\n')
	return refusal{body: body, contentType: []string{"application/json"}, length: []string{strconv.Itoa(len(body))},
		retry: []string{err.RetryAfterSeconds()}}
}

// refusals are the answers of every class, built from the controller's
// refusals.
type refusals [3]refusal

func newRefusals(ac *admission.Controller) refusals {
	var r refusals
	for _, cl := range admission.Classes() {
		r[cl] = newRefusal(ac.Refusal(cl))
	}
	return r
}

// writeRefused answers err when it is admission's overload refusal (from
// the pre-built bytes, setting the header map's canonical keys directly)
// and reports whether it did; other errors are left to writeFailure.
func (s *Service) writeRefused(w http.ResponseWriter, err error) bool {
	re, ok := err.(*admission.RejectedError)
	if !ok || !errors.Is(re.Err, admission.ErrOverloaded) || re != s.cfg.Admission.Refusal(re.Class) {
		return false
	}
	r := &s.refusals[re.Class]
	h := w.Header()
	h["Content-Type"] = r.contentType
	h["Content-Length"] = r.length
	h["Retry-After"] = r.retry
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(r.body)
	return true
}
