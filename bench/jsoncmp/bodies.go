package jsoncmp

// The request bodies, shaped as each SDK builds them (field order and
// the properties the SDK adds on its own); ids and values vary per
// request in the benchmarks (see variants).
var bodies = []struct{ name, body string }{
	// posthog-node getAllFlags with person, group and group properties
	// given, and flag_keys_to_evaluate (408 bytes).
	{"node", `{"token":"phc_k3Xq9vR2mT7wYp4LbN8sZc1dFh6jGa5eUo0iWx","distinct_id":"5f1c2a9e-8b7d-4c3e-a1f0-9d8e7c6b5a43",` +
		`"groups":{"company":"acme-42"},"person_properties":{"email":"ada@example.com","plan":"pro","$browser":"Chrome","age":31,"beta_tester":true},` +
		`"group_properties":{"company":{"plan":"enterprise","seats":250}},"geoip_disable":false,` +
		`"flag_keys_to_evaluate":["new-checkout","dark-mode","pricing-experiment"]}`},
	// posthog-node getAllFlags(distinctId) with nothing else: the SDK adds
	// the distinct id as a person property.
	{"node-min", `{"token":"phc_k3Xq9vR2mT7wYp4LbN8sZc1dFh6jGa5eUo0iWx","distinct_id":"user-5a43","groups":{},` +
		`"person_properties":{"distinct_id":"user-5a43"},"group_properties":{},"geoip_disable":false}`},
	// posthog-python get_all_flags: the key as api_key, after the data.
	{"python", `{"distinct_id": "user-5a43", "groups": {"company": "acme-42"}, "person_properties": {"distinct_id": "user-5a43", "plan": "pro"}, ` +
		`"group_properties": {"company": {"$group_key": "acme-42"}}, "geoip_disable": true, "api_key": "phc_k3Xq9vR2mT7wYp4LbN8sZc1dFh6jGa5eUo0iWx"}`},
	// posthog-js in a browser: the initial person properties it keeps,
	// timezone, anonymous and device ids.
	{"js", `{"token":"phc_k3Xq9vR2mT7wYp4LbN8sZc1dFh6jGa5eUo0iWx","distinct_id":"01938f3a-7c2e-7d4b-9a1e-5f6b2c8d4e1a","groups":{},` +
		`"person_properties":{"$initial_referrer":"$direct","$initial_referring_domain":"$direct","$initial_current_url":"https://app.example.com/pricing?ref=nav",` +
		`"$initial_host":"app.example.com","$initial_pathname":"/pricing","$initial_browser":"Chrome","$initial_os":"Mac OS X","$initial_browser_version":131,` +
		`"$initial_device_type":"Desktop","$initial_utm_source":null,"$initial_utm_medium":null,"$initial_utm_campaign":null},` +
		`"group_properties":{},"timezone":"Europe/Paris","$anon_distinct_id":"01938f3a-7c2e-7d4b-9a1e-5f6b2c8d4e1a",` +
		`"$device_id":"01938f3a-7c2e-7d4b-9a1e-5f6b2c8d4e1a"}`},
}

// storedProperties is a stored person row's properties, about 1 KB of
// canonical JSON as the projector writes it (the same row as
// evalsvc/wire's benchmarks).
const storedProperties = `{"$browser":"Chrome","$browser_version":131,"$current_url":"https://app.example.com/settings/billing",` +
	`"$device_type":"Desktop","$geoip_city_name":"Paris","$geoip_continent_code":"EU","$geoip_country_code":"FR",` +
	`"$geoip_latitude":48.8534,"$geoip_longitude":2.3488,"$geoip_time_zone":"Europe/Paris","$initial_browser":"Chrome",` +
	`"$initial_referrer":"https://www.google.com/","$initial_referring_domain":"www.google.com","$initial_utm_source":"newsletter",` +
	`"$os":"Mac OS X","$os_version":"14.6.1","$pathname":"/settings/billing","$referring_domain":"$direct",` +
	`"company_size":250,"created_at":"2024-03-18T09:21:44.512Z","email":"ada.lovelace@example.com","email_verified":true,` +
	`"first_name":"Ada","last_name":"Lovelace","last_seen_at":"2026-11-24T17:02:11.004Z","locale":"fr-FR","logins":1287,` +
	`"mrr":1499.5,"onboarding_step":"done","plan":"enterprise","roles":["admin","billing"],"seats":42,` +
	`"signup_source":"organic","team_id":"team-8841","timezone":"Europe/Paris","trial_ends_at":null}`

// flagsBody is the typed target the libraries decode a body into: only
// the fields a /flags request reads, in their final types where a
// struct tag can say so. It is the libraries' best case: wire also takes
// the key's aliases ($token, $distinct_id), numeric distinct ids and
// group keys, the SDKs' JSON5 leftovers (NaN), and enforces the value,
// string and depth bounds while decoding, none of which happens here.
type flagsBody struct {
	Token              string                    `json:"token"`
	APIKey             string                    `json:"api_key"`
	DistinctID         string                    `json:"distinct_id"`
	Groups             map[string]any            `json:"groups"`
	PersonProperties   map[string]any            `json:"person_properties"`
	GroupProperties    map[string]map[string]any `json:"group_properties"`
	FlagKeys           []string                  `json:"flag_keys_to_evaluate"`
	GeoIPDisable       bool                      `json:"geoip_disable"`
	DisableFlags       bool                      `json:"disable_flags"`
	DeviceID           string                    `json:"$device_id"`
	AnonDistinctID     string                    `json:"$anon_distinct_id"`
	EvaluationContexts []string                  `json:"evaluation_contexts"`
	EvaluationRuntime  string                    `json:"evaluation_runtime"`
	Timezone           string                    `json:"timezone"`
}
