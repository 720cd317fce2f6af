package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Lambda gives a function CPU in proportion to its memory: one vCPU at
// 1,769 MB.
const fullCPUMemoryMB = 1769

// Sandbox is a cgroup (v1, as these machines mount it) that limits a
// process as Lambda limits a function of MemoryMB: that much memory, and
// MemoryMB/1,769 of one CPU (7.2% at 128 MB).
type Sandbox struct {
	MemoryMB       int
	cpuDir, memDir string
}

// NewSandbox makes the cgroup name. It needs root and writable cgroup v1
// cpu and memory controllers, and says so when it cannot have them.
func NewSandbox(name string, memoryMB int) (*Sandbox, error) {
	s := &Sandbox{MemoryMB: memoryMB,
		cpuDir: filepath.Join("/sys/fs/cgroup/cpu", name), memDir: filepath.Join("/sys/fs/cgroup/memory", name)}
	for _, d := range []string{s.cpuDir, s.memDir} {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("cgroup v1 %s cannot be made (root and writable cpu and memory controllers needed): %w", d, err)
		}
	}
	period := 100000
	quota := max(1000, period*memoryMB/fullCPUMemoryMB)
	for file, v := range map[string]string{
		filepath.Join(s.cpuDir, "cpu.cfs_period_us"):     strconv.Itoa(period),
		filepath.Join(s.cpuDir, "cpu.cfs_quota_us"):      strconv.Itoa(quota),
		filepath.Join(s.memDir, "memory.limit_in_bytes"): strconv.Itoa(memoryMB << 20),
	} {
		if err := os.WriteFile(file, []byte(v), 0o644); err != nil {
			s.Close()
			return nil, fmt.Errorf("set %s: %w", file, err)
		}
	}
	// The peak is of this sandbox's processes only.
	_ = os.WriteFile(filepath.Join(s.memDir, "memory.max_usage_in_bytes"), []byte("0"), 0o644)
	return s, nil
}

// CPUShare is the fraction of one CPU the sandbox allows.
func (s *Sandbox) CPUShare() float64 { return float64(s.MemoryMB) / fullCPUMemoryMB }

// Wrap returns argv run inside the sandbox: a shell joins the cgroups,
// then becomes the command.
func (s *Sandbox) Wrap(argv []string) []string {
	script := fmt.Sprintf(`echo $$ > %s/cgroup.procs && echo $$ > %s/cgroup.procs && exec "$@"`, s.cpuDir, s.memDir)
	return append([]string{"/bin/sh", "-c", script, "sh"}, argv...)
}

// PeakBytes is the most memory the sandbox's processes used together.
func (s *Sandbox) PeakBytes() (int64, error) {
	b, err := os.ReadFile(filepath.Join(s.memDir, "memory.max_usage_in_bytes"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// OOMKills is how many processes the memory limit killed.
func (s *Sandbox) OOMKills() (int, error) {
	b, err := os.ReadFile(filepath.Join(s.memDir, "memory.oom_control"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, nil
}

// Close removes the cgroups; their processes must have exited.
func (s *Sandbox) Close() {
	os.Remove(s.cpuDir)
	os.Remove(s.memDir)
}
