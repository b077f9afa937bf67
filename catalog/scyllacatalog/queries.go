package scyllacatalog

import "fmt"

// queries holds every statement, keyspace-qualified, built once. gocql
// prepares each on first use per connection; bound arguments give the
// token-aware policy its routing key.
type queries struct {
	getSeq, startSeq, advanceSeq string

	getTeam, insertTeam, updateTeam, putTeamIndex, listTeamIndex string

	getKeyID, claimKeyID, releaseKeyID  string
	getKeyByHash, insertKey, updateKey  string
	putKeyTeam, delKeyTeam, listKeyTeam string

	getFlag, insertFlag, updateFlag, listFlags  string
	getClaim, insertClaim, stealClaim, delClaim string

	getCohort, insertCohort, updateCohort, listCohorts string
	putMember, delMember, getMember                    string
	listMembers                                        string

	getEarly, insertEarly, updateEarly, listEarly string
	getJob, insertJob, updateJob, listJobs        string
	getMarker, insertMarker, updateMarker         string

	putActivity, putItemActivity            string
	listActivity, listActivityAfter         string
	listItemActivity, listItemActivityAfter string
}

func newQueries(ks string) queries {
	f := func(format string) string { return fmt.Sprintf(format, ks) }
	return queries{
		getSeq:     f("SELECT value FROM %s.catalog_sequences WHERE name = ?"),
		startSeq:   f("INSERT INTO %s.catalog_sequences (name, value) VALUES (?, ?) IF NOT EXISTS"),
		advanceSeq: f("UPDATE %s.catalog_sequences SET value = ? WHERE name = ? IF value = ?"),

		getTeam:       f("SELECT data FROM %s.catalog_teams WHERE id = ?"),
		insertTeam:    f("INSERT INTO %s.catalog_teams (id, version, data) VALUES (?, ?, ?) IF NOT EXISTS"),
		updateTeam:    f("UPDATE %s.catalog_teams SET version = ?, data = ? WHERE id = ? IF version = ?"),
		putTeamIndex:  f("INSERT INTO %s.catalog_team_index (shard, id) VALUES (0, ?)"),
		listTeamIndex: f("SELECT id FROM %s.catalog_team_index WHERE shard = 0"),

		getKeyID:     f("SELECT hash FROM %s.catalog_key_ids WHERE id = ?"),
		claimKeyID:   f("INSERT INTO %s.catalog_key_ids (id, hash) VALUES (?, ?) IF NOT EXISTS"),
		releaseKeyID: f("DELETE FROM %s.catalog_key_ids WHERE id = ? IF hash = ?"),
		getKeyByHash: f("SELECT data FROM %s.catalog_keys WHERE hash = ?"),
		insertKey:    f("INSERT INTO %s.catalog_keys (hash, id, version, data) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		updateKey:    f("UPDATE %s.catalog_keys SET version = ?, data = ? WHERE hash = ? IF version = ?"),
		putKeyTeam:   f("INSERT INTO %s.catalog_keys_by_team (team_id, id) VALUES (?, ?)"),
		delKeyTeam:   f("DELETE FROM %s.catalog_keys_by_team WHERE team_id = ? AND id = ?"),
		listKeyTeam:  f("SELECT id FROM %s.catalog_keys_by_team WHERE team_id = ?"),

		getFlag:     f("SELECT data FROM %s.catalog_flags WHERE team_id = ? AND id = ?"),
		insertFlag:  f("INSERT INTO %s.catalog_flags (team_id, id, version, data) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		updateFlag:  f("UPDATE %s.catalog_flags SET version = ?, data = ? WHERE team_id = ? AND id = ? IF version = ?"),
		listFlags:   f("SELECT data FROM %s.catalog_flags WHERE team_id = ?"),
		getClaim:    f("SELECT flag_id FROM %s.catalog_flag_keys WHERE team_id = ? AND key = ?"),
		insertClaim: f("INSERT INTO %s.catalog_flag_keys (team_id, key, flag_id, claimed_at) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		stealClaim:  f("UPDATE %s.catalog_flag_keys SET flag_id = ?, claimed_at = ? WHERE team_id = ? AND key = ? IF flag_id = ?"),
		delClaim:    f("DELETE FROM %s.catalog_flag_keys WHERE team_id = ? AND key = ? IF flag_id = ?"),

		getCohort:    f("SELECT data FROM %s.catalog_cohorts WHERE team_id = ? AND id = ?"),
		insertCohort: f("INSERT INTO %s.catalog_cohorts (team_id, id, version, data) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		updateCohort: f("UPDATE %s.catalog_cohorts SET version = ?, data = ? WHERE team_id = ? AND id = ? IF version = ?"),
		listCohorts:  f("SELECT data FROM %s.catalog_cohorts WHERE team_id = ?"),
		putMember:    f("INSERT INTO %s.catalog_cohort_members (team_id, cohort_id, distinct_id) VALUES (?, ?, ?)"),
		delMember:    f("DELETE FROM %s.catalog_cohort_members WHERE team_id = ? AND cohort_id = ? AND distinct_id = ?"),
		getMember:    f("SELECT distinct_id FROM %s.catalog_cohort_members WHERE team_id = ? AND cohort_id = ? AND distinct_id = ?"),
		listMembers:  f("SELECT distinct_id FROM %s.catalog_cohort_members WHERE team_id = ? AND cohort_id = ? AND distinct_id > ? LIMIT ?"),

		getEarly:    f("SELECT data FROM %s.catalog_early_access WHERE team_id = ? AND id = ?"),
		insertEarly: f("INSERT INTO %s.catalog_early_access (team_id, id, version, data) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		updateEarly: f("UPDATE %s.catalog_early_access SET version = ?, data = ? WHERE team_id = ? AND id = ? IF version = ?"),
		listEarly:   f("SELECT data FROM %s.catalog_early_access WHERE team_id = ?"),

		getJob:    f("SELECT data FROM %s.catalog_jobs WHERE team_id = ? AND id = ?"),
		insertJob: f("INSERT INTO %s.catalog_jobs (team_id, id, version, data) VALUES (?, ?, ?, ?) IF NOT EXISTS"),
		updateJob: f("UPDATE %s.catalog_jobs SET version = ?, data = ? WHERE team_id = ? AND id = ? IF version = ?"),
		listJobs:  f("SELECT data FROM %s.catalog_jobs WHERE team_id = ?"),

		getMarker:    f("SELECT data FROM %s.catalog_markers WHERE name = ?"),
		insertMarker: f("INSERT INTO %s.catalog_markers (name, version, data) VALUES (?, ?, ?) IF NOT EXISTS"),
		updateMarker: f("UPDATE %s.catalog_markers SET version = ?, data = ? WHERE name = ? IF version = ?"),

		putActivity:           f("INSERT INTO %s.catalog_activity (team_id, id, data) VALUES (?, ?, ?)"),
		putItemActivity:       f("INSERT INTO %s.catalog_activity_by_item (team_id, scope, item_id, id, data) VALUES (?, ?, ?, ?, ?)"),
		listActivity:          f("SELECT data FROM %s.catalog_activity WHERE team_id = ? LIMIT ?"),
		listActivityAfter:     f("SELECT data FROM %s.catalog_activity WHERE team_id = ? AND id < ? LIMIT ?"),
		listItemActivity:      f("SELECT data FROM %s.catalog_activity_by_item WHERE team_id = ? AND scope = ? AND item_id = ? LIMIT ?"),
		listItemActivityAfter: f("SELECT data FROM %s.catalog_activity_by_item WHERE team_id = ? AND scope = ? AND item_id = ? AND id < ? LIMIT ?"),
	}
}
