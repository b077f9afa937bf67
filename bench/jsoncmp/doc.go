// Package jsoncmp measures evalsvc/wire's hand-written /flags request and
// stored-properties decoders against the maintained alternatives, on the
// bodies the PostHog SDKs send: encoding/json, encoding/json/v2 (with
// GOEXPERIMENT=jsonv2), github.com/goccy/go-json and
// github.com/bytedance/sonic. It is a separate module so that those
// libraries stay out of Vexil's go.mod.
//
//	cd bench/jsoncmp && go test -run '^$' -bench . -benchmem -count 5
//	cd bench/jsoncmp && GOEXPERIMENT=jsonv2 go test -run '^$' -bench . -benchmem -count 5
package jsoncmp
