package main

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vexil-dev/vexil/admission"
	"github.com/vexil-dev/vexil/cmd/vexil/internal/config"
)

// newAdmission builds the node's one admission controller from the
// admission section, shared by every surface of the process (its metrics on
// reg).
func newAdmission(c config.Admission, reg prometheus.Registerer) (*admission.Controller, error) {
	cfg := admission.Config{InitialLimit: c.InitialLimit, MinLimit: c.MinLimit, MaxLimit: c.MaxLimit,
		QuotaRate: c.QuotaRate, QuotaBurst: c.QuotaBurst, SchedTarget: c.SchedTarget, MinRate: c.MinRate, Registry: reg}
	cfg.Targets[admission.Evaluate] = c.EvaluateTarget
	cfg.Targets[admission.Poll] = c.PollTarget
	cfg.Targets[admission.Management] = c.ManagementTarget
	if len(c.TeamQuotas) > 0 {
		cfg.TeamQuotas = make(map[int64]admission.Quota, len(c.TeamQuotas))
		for _, s := range c.TeamQuotas {
			q, err := config.ParseTeamQuota(s)
			if err != nil {
				return nil, fmt.Errorf("config: admission.team-quotas: %w", err)
			}
			cfg.TeamQuotas[q.Team] = admission.Quota{Rate: q.Rate, Burst: q.Burst}
		}
	}
	ac, err := admission.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("config: admission: %w", err)
	}
	return ac, nil
}
