package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// LogBuffer collects output written from several goroutines: a process's,
// or a logger's.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BuildFunction builds the lambda binary into dir, with the build tags
// given, and returns its path.
func BuildFunction(dir string, tags ...string) (string, error) {
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", out, "github.com/sqs-msk-relay/relay/lambda")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build lambda: %w", err)
	}
	return out, nil
}

// StartFunction starts the function (argv: the binary, or an emulator and
// the binary) against the Runtime API at api, with env added to a minimal
// environment (nothing leaks in from the caller's), its stdout and stderr
// to logs.
func StartFunction(argv []string, api string, env []string, logs io.Writer) (*exec.Cmd, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + api,
		"AWS_LAMBDA_FUNCTION_NAME=relay-local",
		"PATH=" + os.Getenv("PATH"),
	}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start function: %w", err)
	}
	return cmd, nil
}
