package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"debug/buildinfo"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// The function is built with profile-guided optimization from
// lambda/default.pgo, which go build picks up by itself (-pgo=auto):
// without it the relay loses about 2% of raw's rate through the binary
// (docs/performance.md).
func TestFunctionBuiltWithProfile(t *testing.T) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range info.Settings {
		if s.Key == "-pgo" {
			if !strings.HasSuffix(s.Value, filepath.Join("lambda", "default.pgo")) {
				t.Fatalf("built with -pgo=%s, want lambda/default.pgo", s.Value)
			}
			return
		}
	}
	t.Fatal("the function was built without a profile: is lambda/default.pgo missing?")
}

// make pgo's hook: a function built with -tags cpuprofile writes a CPU
// profile that go build accepts, once SIGTERM ends it.
func TestCPUProfileHook(t *testing.T) {
	c, err := broker.Start(1, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	tagged, err := BuildFunction(dir, "cpuprofile")
	if err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(dir, "cpu.pprof")
	api, _, exited := startFunctionArgv(t, []string{tagged},
		"RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_CPU_PROFILE="+profile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := api.Invoke(ctx, sqsEvent("a1", "a2"), 10*time.Second)
	if err != nil || res.Error || string(res.Payload) != `{"batchItemFailures":[]}` {
		t.Fatalf("invoke: %s %v", res.Payload, err)
	}
	if err := functionProcess(t).Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := exited(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	f, err := os.Open(profile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("not a gzipped profile: %v", err)
	}
	if n, err := io.Copy(io.Discard, zr); err != nil || n == 0 {
		t.Fatalf("profile: %d bytes, %v", n, err)
	}
	var out bytes.Buffer
	cmd := exec.Command("go", "tool", "pprof", "-raw", profile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "PeriodType: cpu") {
		t.Fatalf("go tool pprof -raw: %v\n%s", err, out.String())
	}
}
