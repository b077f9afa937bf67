package admission

import (
	"testing"
	"testing/fstest"
	"time"
)

// TestCgroupCPULimit: the quota of the process's own cgroup, v1 (the cpu
// controller alone or mounted with cpuacct) and v2, in cores; none when
// there is no quota or the files are not there.
func TestCgroupCPULimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"v1 cpu", map[string]string{
			"proc/self/cgroup": "4:memory:/x\n1:cpu:/vexil-bench\n0::/\n",
			"sys/fs/cgroup/cpu/vexil-bench/cpu.cfs_quota_us": "1000\n", "sys/fs/cgroup/cpu/vexil-bench/cpu.cfs_period_us": "2500\n"}, 0.4},
		{"v1 cpu,cpuacct", map[string]string{
			"proc/self/cgroup": "3:cpu,cpuacct:/a/b\n",
			"sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us": "150000", "sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us": "100000"}, 1.5},
		{"v1 no quota", map[string]string{
			"proc/self/cgroup":                   "1:cpu:/\n",
			"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n"}, 0},
		{"v2", map[string]string{"proc/self/cgroup": "0::/bench\n", "sys/fs/cgroup/bench/cpu.max": "40000 100000\n"}, 0.4},
		{"v2 max", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "max 100000\n"}, 0},
		{"v2 garbage", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "forty\n"}, 0},
		{"no cgroup file", map[string]string{}, 0},
	} {
		fsys := fstest.MapFS{}
		for name, data := range tc.files {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		}
		if got := cgroupCPULimit(fsys); got != tc.want {
			t.Errorf("%s: %v cores, want %v", tc.name, got, tc.want)
		}
	}
}

// TestBusyFromProcessCPU: the busy fraction is the CPU time used over
// the wall time and the cores the process may use.
func TestBusyFromProcessCPU(t *testing.T) {
	var cpu time.Duration
	s := newSchedDelay(0.99)
	s.cpu = func() (time.Duration, bool) { return cpu, true }
	s.cores = func() float64 { return 0.4 }
	t0 := time.Unix(1000, 0)
	if _, ok := s.busyCPU(t0); ok {
		t.Fatal("the first read has no interval, want ok false")
	}
	for _, tc := range []struct {
		used time.Duration
		want float64
	}{{40 * time.Millisecond, 1}, {20 * time.Millisecond, 0.5}, {0, 0}, {80 * time.Millisecond, 1}} {
		cpu += tc.used
		t0 = t0.Add(100 * time.Millisecond)
		if got, ok := s.busyCPU(t0); !ok || got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("%v of CPU in 100ms on 0.4 of a core: busy %v (ok %v), want %v", tc.used, got, ok, tc.want)
		}
	}
}
