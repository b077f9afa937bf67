//go:build !linux

package admission

import "time"

// processCPU is not implemented here: the busy fraction then comes from
// the runtime's CPU classes (updated at each GC only).
func processCPU() (time.Duration, bool) { return 0, false }
