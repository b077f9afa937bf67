package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/vexil-dev/vexil/admin"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
	"github.com/vexil-dev/vexil/namespace"
	"github.com/vexil-dev/vexil/projector/ingest"
	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
	"github.com/vexil-dev/vexil/store"
)

// demoInfo is what the demo prints. It is the result of the demo's
// cluster-wide marker (markerDemo), so every node and every restart prints
// the same team and keys: the demo's personal key is thus kept in clear in
// the catalog, which is why it is for trying Vexil only. Data directories
// seeded before the marker kept it in <data-dir>/demo.json.
type demoInfo struct {
	TeamID       int64  `json:"team_id"`
	ProjectToken string `json:"project_token"`
	PersonalKey  string `json:"personal_key"`
	Persons      int    `json:"persons"`
}

// demoFlags are the demo's flags: a boolean, a multivariate with payloads,
// a group-targeted one, and one targeting users AND groups.
var demoFlags = []struct{ key, name, description, filters string }{
	{"beta-dashboard", "Beta dashboard", "Paying plans get the new dashboard; 20% of everyone else",
		`{"groups":[{"properties":[{"key":"plan","type":"person","operator":"exact","value":["pro","enterprise"]}],"rollout_percentage":100},
		            {"properties":[],"rollout_percentage":20}],"payloads":{"true":"{\"layout\": \"grid\"}"}}`},
	{"checkout-experiment", "Checkout experiment", "Three checkout variants for US persons, each with its price payload",
		`{"groups":[{"properties":[{"key":"country","type":"person","operator":"exact","value":"US"}],"rollout_percentage":100}],
		  "multivariate":{"variants":[{"key":"control","name":"Control","rollout_percentage":34},{"key":"one-click","name":"One click","rollout_percentage":33},{"key":"express","name":"Express","rollout_percentage":33}]},
		  "payloads":{"control":"{\"price\": 10}","one-click":"{\"price\": 9}","express":"{\"price\": 12}"}}`},
	{"sso-login", "SSO login", "Enterprise companies get single sign-on (group flag on company)",
		`{"aggregation_group_type_index":0,"groups":[{"properties":[{"key":"plan","type":"group","group_type_index":0,"operator":"exact","value":"enterprise"}],"rollout_percentage":100}]}`},
	{"new-billing", "New billing", "Internal users, or every member of companies with more than 500 seats (users AND groups)",
		`{"groups":[{"properties":[{"key":"email","type":"person","operator":"icontains","value":"@vexil.dev"}],"rollout_percentage":100},
		            {"aggregation_group_type_index":0,"properties":[{"key":"seats","type":"group","group_type_index":0,"operator":"gt","value":500}],"rollout_percentage":100}]}`},
}

// demoStale is how long a demo seeding may run before another node takes
// it over: seeding waits up to 5 minutes for the projector, and publishing
// 10,000 persons takes seconds.
const demoStale = 15 * time.Minute

// seedDemo seeds the demo once per cluster: the first node to claim the
// demo's marker in the shared catalog seeds it, the others (and every
// restart) wait for and print its result.
func seedDemo(ctx context.Context, n *node, c config.Config, log *slog.Logger) (demoInfo, error) {
	raw, ran, err := newClusterOnce(n.catalog, markerDemo, demoStale).do(ctx, func(ctx context.Context) (json.RawMessage, error) {
		info, err := seedDemoData(ctx, n, c, log)
		if err != nil {
			return nil, err
		}
		return json.Marshal(info)
	})
	if err != nil {
		return demoInfo{}, err
	}
	var info demoInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		return demoInfo{}, fmt.Errorf("the demo's marker: %w", err)
	}
	if !ran {
		log.Info("demo data already present", "team", info.TeamID)
	}
	return info, nil
}

// seedDemoData creates the demo team, its flags and persons, unless a data
// directory seeded before the cluster-wide marker has them (demo.json).
func seedDemoData(ctx context.Context, n *node, c config.Config, log *slog.Logger) (demoInfo, error) {
	if b, err := os.ReadFile(filepath.Join(c.DataDir, "demo.json")); err == nil {
		var info demoInfo
		if err := json.Unmarshal(b, &info); err == nil {
			if _, err := n.catalog.GetTeam(ctx, info.TeamID); err == nil {
				log.Info("demo data seeded before the cluster-wide marker", "team", info.TeamID)
				return info, nil
			}
		}
	}
	_, personal, err := admin.CreatePersonalKey(ctx, n.catalog, nil, []string{admin.ScopeAll}, "demo", "vexil serve --demo")
	if err != nil {
		return demoInfo{}, err
	}
	conn, err := grpc.NewClient(n.adminSrv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(n.localGRPC), // in process: no TLS to its own port
		grpc.WithUnaryInterceptor(retryOverloaded(50*time.Millisecond)))
	if err != nil {
		return demoInfo{}, err
	}
	defer conn.Close()
	api := adminv1.NewAdminServiceClient(conn)
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+personal)

	created, err := api.CreateTeam(actx, &adminv1.CreateTeamRequest{Name: "Demo"})
	if err != nil {
		return demoInfo{}, fmt.Errorf("create team: %w", err)
	}
	team := created.GetTeam()
	set, err := api.SetGroupType(actx, &adminv1.SetGroupTypeRequest{TeamId: team.GetId(), GroupTypeIndex: 0, GroupType: "company", Version: team.GetVersion()})
	if err != nil {
		return demoInfo{}, fmt.Errorf("set group type: %w", err)
	}
	team = set.GetTeam()
	for _, f := range demoFlags {
		filters, err := structOf(f.filters)
		if err != nil {
			return demoInfo{}, fmt.Errorf("flag %s: %w", f.key, err)
		}
		if _, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{
			Key: f.key, Name: f.name, Description: f.description, Active: true, Filters: filters}}); err != nil {
			return demoInfo{}, fmt.Errorf("create flag %s: %w", f.key, err)
		}
	}
	for i := range c.Demo.Flags {
		text := `{"groups":[{"properties":[],"rollout_percentage":50}]}`
		if i%2 == 1 {
			text = `{"groups":[{"properties":[{"key":"country","type":"person","operator":"exact","value":["US"]}],"rollout_percentage":100}],
			  "multivariate":{"variants":[{"key":"a","rollout_percentage":34},{"key":"b","rollout_percentage":33},{"key":"c","rollout_percentage":33}]}}`
		}
		key := fmt.Sprintf("bench-%03d", i)
		filters, err := structOf(text)
		if err != nil {
			return demoInfo{}, fmt.Errorf("flag %s: %w", key, err)
		}
		if _, err := api.CreateFlag(actx, &adminv1.CreateFlagRequest{TeamId: team.GetId(), Flag: &adminv1.FlagInput{Key: key, Name: key, Active: true, Filters: filters}}); err != nil {
			return demoInfo{}, fmt.Errorf("create flag %s: %w", key, err)
		}
	}
	info := demoInfo{TeamID: team.GetId(), ProjectToken: team.GetApiToken(), PersonalKey: personal, Persons: c.Demo.Persons}
	if err := publishDemoPersons(ctx, n.nc, n.ns, team.GetId(), c.Demo.Persons); err != nil {
		return demoInfo{}, err
	}
	// Wait until the projector has written the last person's row.
	last := fmt.Sprintf("user-%d", c.Demo.Persons-1)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, err := n.store.GetRow(ctx, team.GetId(), last); err == nil {
			break
		} else if !errors.Is(err, store.ErrNotFound) {
			return demoInfo{}, err
		}
		if time.Now().After(deadline) {
			return demoInfo{}, errors.New("the projector did not apply the demo persons within 5 minutes")
		}
		select {
		case <-ctx.Done():
			return demoInfo{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return info, nil
}

// publishDemoPersons publishes 200 companies and n persons through the
// ingest stream, as a producer would, and waits for every publish ack.
func publishDemoPersons(ctx context.Context, nc *nats.Conn, ns namespace.Name, team int64, n int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	plans := []string{"free", "free", "pro", "enterprise"}
	countries := []string{"US", "US", "DE", "FR", "GB", "BR", "JP"}
	send := func(subject string, msg map[string]any) error {
		body, err := json.Marshal(msg)
		if err != nil {
			return err
		}
		m := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{"Content-Type": []string{"application/json"}}}
		_, err = js.PublishMsgAsync(m)
		return err
	}
	groups := ingest.Subject(ns, ingest.Groups, team)
	persons := ingest.Subject(ns, ingest.Persons, team)
	if err := send(groups, map[string]any{"type": "group_type_mapping", "team": team, "group_type_index": 0, "name": "company"}); err != nil {
		return err
	}
	for i := range 200 {
		if err := send(groups, map[string]any{"type": "group_update", "team": team, "group_type_index": 0,
			"group_key": fmt.Sprintf("company-%d", i), "version": 1,
			"$set": map[string]any{"name": fmt.Sprintf("Company %d", i), "plan": plans[i%len(plans)], "seats": (i * 37) % 1000}}); err != nil {
			return err
		}
	}
	for i := range n {
		email := fmt.Sprintf("user-%d@example.com", i)
		if i%50 == 0 {
			email = fmt.Sprintf("user-%d@vexil.dev", i)
		}
		if err := send(persons, map[string]any{"type": "person_update", "team": team, "person_id": fmt.Sprintf("person-%d", i),
			"distinct_ids": []string{fmt.Sprintf("user-%d", i)}, "version": 1,
			"$set": map[string]any{"email": email, "plan": plans[i%len(plans)], "country": countries[i%len(countries)]}}); err != nil {
			return err
		}
		if i%1000 == 999 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Minute):
				return errors.New("publish acks did not arrive within a minute")
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("publish acks did not arrive within a minute")
	}
}

func printDemo(w io.Writer, info demoInfo, httpURL string) {
	fmt.Fprintf(w, `
Vexil demo is ready: team %d with 4 flags, %d persons and 200 companies.

  project token (SDKs, /flags):      %s
  personal API key (management API): %s

Try it:

  curl -s %s/flags?v=2 -H 'Content-Type: application/json' -d '{"token":"%s","distinct_id":"user-3","groups":{"company":"company-3"}}'

Point a PostHog SDK at %s with the project token (and the personal key
for local evaluation). Ctrl-C stops Vexil; the data stays in the data directory.
`, info.TeamID, info.Persons, info.ProjectToken, info.PersonalKey, httpURL, info.ProjectToken, httpURL)
}

// structOf reads JSON text (a flag's filters) into the API's Struct.
func structOf(text string) (*structpb.Struct, error) {
	s := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(text), s); err != nil {
		return nil, err
	}
	return s, nil
}
