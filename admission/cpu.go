package admission

import (
	"bufio"
	"bytes"
	"io/fs"
	"strconv"
	"strings"
)

// The busy fraction of the rate gate's guard is the process's CPU time
// over a window divided by the CPU it may use: GOMAXPROCS cores, or its
// cgroup's CPU quota when that is lower. The runtime's /cpu/classes
// metrics cannot serve: they are a snapshot taken at the end of each GC
// cycle (runtime.cpuStatsAggregate.compute), so between two GCs (seconds
// apart) a window saw no change and read "idle", and the gate never
// closed on the age signal.

// cgroupCPULimit returns the CPU quota, in cores, of the cgroup the
// process is in as /proc/self/cgroup (read from fsys, the root of the
// file system) names it: cgroup v2's cpu.max or v1's cpu.cfs_quota_us
// over cpu.cfs_period_us. 0: no quota, or none could be read. Only the
// process's own cgroup is read, not its parents'.
func cgroupCPULimit(fsys fs.FS) float64 {
	self, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		id, rest, _ := strings.Cut(sc.Text(), ":")
		controllers, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		path = strings.Trim(path, "/")
		if id == "0" && controllers == "" {
			if q := cpuMax(fsys, joinPath("sys/fs/cgroup", path)); q > 0 {
				return q
			}
			continue
		}
		for c := range strings.SplitSeq(controllers, ",") {
			if c != "cpu" {
				continue
			}
			for _, mount := range []string{"sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpuacct,cpu"} {
				if q := cfsQuota(fsys, joinPath(mount, path)); q > 0 {
					return q
				}
			}
		}
	}
	return 0
}

func joinPath(dir, path string) string {
	if path == "" {
		return dir
	}
	return dir + "/" + path
}

// cpuMax reads cgroup v2's "quota period" (or "max period").
func cpuMax(fsys fs.FS, dir string) float64 {
	b, err := fs.ReadFile(fsys, dir+"/cpu.max")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	return ratio(f[0], f[1])
}

// cfsQuota reads cgroup v1's quota (-1: none) and period.
func cfsQuota(fsys fs.FS, dir string) float64 {
	q, err := fs.ReadFile(fsys, dir+"/cpu.cfs_quota_us")
	if err != nil {
		return 0
	}
	p, err := fs.ReadFile(fsys, dir+"/cpu.cfs_period_us")
	if err != nil {
		return 0
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

func ratio(quota, period string) float64 {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}
