package web

import (
	"fmt"
	"strings"

	adminv1 "github.com/vexil-dev/vexil/proto/vexil/admin/v1"
)

// Plain is a flag said in plain words, for the flag page.
type Plain struct {
	// Summary is one sentence: on or off, and for whom.
	Summary string
	// Conditions say whom each condition set picks, in order.
	Conditions []string
	// Variants, Overrides and Notes say the rest.
	Variants  []string
	Overrides []string
	Notes     []string
}

var opWords = map[string]string{}

func init() {
	for _, o := range Operators {
		opWords[o.Op] = o.Label
	}
}

// groupName names a group type index with the team's names.
func groupName(t *adminv1.Team, idx int) string {
	for _, g := range t.GetGroupTypes() {
		if int(g.GetGroupTypeIndex()) == idx {
			return g.GetGroupType()
		}
	}
	return fmt.Sprintf("group type %d", idx)
}

func plural(s string) string {
	switch {
	case strings.HasSuffix(s, "y") && !strings.HasSuffix(s, "ey"):
		return s[:len(s)-1] + "ies"
	case strings.HasSuffix(s, "s"):
		return s
	}
	return s + "s"
}

// describe says what a flag does, from the editor's reading of it.
func describe(t *adminv1.Team, f *adminv1.FeatureFlag, ff *flagForm, cohortNames map[string]string) Plain {
	var p Plain
	switch {
	case f.GetArchived():
		p.Summary = "This flag is archived: it is off for everyone and no longer sent to SDKs."
	case !f.GetActive():
		p.Summary = "This flag is disabled: it is off (false) for everyone."
	case len(ff.Conditions) == 0:
		p.Summary = "This flag is enabled but has no condition sets, so it is off for everyone except its overrides."
	default:
		p.Summary = fmt.Sprintf("This flag is on for whoever matches any of its %d condition set(s) below, checked in order; everyone else gets false.", len(ff.Conditions))
	}
	for i, c := range ff.Conditions {
		who := "persons"
		if gi, ok := groupIndex(c.Target); ok {
			who = plural(groupName(t, gi))
		}
		var parts []string
		for _, fl := range c.Filters {
			switch fl.Kind {
			case "cohort":
				name := cohortNames[fl.Key]
				if name == "" {
					name = "cohort " + fl.Key
				}
				if fl.Op == "not_in" {
					parts = append(parts, "not in "+name)
				} else {
					parts = append(parts, "in "+name)
				}
			case "flag":
				v := fl.Value
				if v == "" || v == "true" {
					v = "on"
				} else if v == "false" {
					v = "off"
				}
				parts = append(parts, fmt.Sprintf("for whom flag %s is %s", fl.Key, v))
			default:
				words := opWords[fl.Op]
				if words == "" {
					words = fl.Op
				}
				if fl.Op == "is_set" || fl.Op == "is_not_set" {
					parts = append(parts, fmt.Sprintf("whose %s %s", fl.Key, words))
				} else {
					parts = append(parts, fmt.Sprintf("whose %s %s %s", fl.Key, words, fl.Value))
				}
			}
		}
		s := fmt.Sprintf("Set %d: all %s", i+1, who)
		if len(parts) > 0 {
			s = fmt.Sprintf("Set %d: %s %s", i+1, who, strings.Join(parts, " and "))
		}
		rollout := c.Rollout
		if rollout == "" {
			rollout = "100"
		}
		if rollout == "100" {
			s += " — all of them"
		} else {
			s += fmt.Sprintf(" — %s%% of them (chosen by a stable hash of their id)", rollout)
		}
		if c.Variant != "" {
			s += fmt.Sprintf(", always variant %q", c.Variant)
		}
		p.Conditions = append(p.Conditions, s+".")
	}
	for _, v := range ff.Variants {
		s := fmt.Sprintf("%s%% get variant %q", v.Rollout, v.Key)
		if v.Payload != "" {
			s += " with payload " + v.Payload
		}
		p.Variants = append(p.Variants, s+".")
	}
	if ff.PayloadTrue != "" {
		p.Variants = append(p.Variants, "When on, it carries the payload "+ff.PayloadTrue+".")
	}
	for _, o := range ff.Overrides {
		who := "distinct ids"
		if gi, ok := groupIndex(o.Target); ok {
			who = groupName(t, gi) + " keys"
		}
		p.Overrides = append(p.Overrides, fmt.Sprintf("%s %s always get %s, before any condition.", who, o.IDs, o.Value))
	}
	if f.GetEnsureExperienceContinuity() {
		p.Notes = append(p.Notes, "Experience continuity is on: a person keeps their value after they sign in (such flags are never precomputed).")
	}
	if f.GetBucketingIdentifier() == "device_id" {
		p.Notes = append(p.Notes, "Rollouts bucket on the device id rather than the distinct id.")
	}
	if ff.Extra != "" {
		p.Notes = append(p.Notes, "It also has settings this page does not show: "+ff.Extra)
	}
	return p
}
