package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// TestArm64BinaryRunsUnderQemu runs the packaged linux/arm64 bootstrap
// (make package) under Debian's qemu-user against the local broker and a
// Runtime API on loopback: the binary Lambda would run on Graviton loads,
// starts, and answers an SQS event.
func TestArm64BinaryRunsUnderQemu(t *testing.T) {
	bin := os.Getenv("RELAY_ARM64_BINARY")
	if bin == "" {
		bin, _ = filepath.Abs("../build/arm64/bootstrap")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no arm64 bootstrap at %s: run `make package` (make test does): %v", bin, err)
	}
	qemu, err := exec.LookPath("qemu-aarch64")
	if err != nil {
		t.Fatalf("qemu-aarch64 not found: `make toolchain` installs Debian's qemu-user: %v", err)
	}
	c, err := broker.Start(3, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api, _, _ := startFunctionArgv(t, []string{qemu, "-L", "/usr/aarch64-linux-gnu", bin},
		"RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_MAX_MESSAGE_BYTES=1000")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := api.Invoke(ctx, sqsEvent("a1", "big1", "a2"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(res.Payload, &resp); err != nil || res.Error {
		t.Fatalf("answer %s (error %v): %v", res.Payload, res.Error, err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "big1" {
		t.Errorf("batchItemFailures %+v, want only big1", resp.BatchItemFailures)
	}
	if n := c.Count("events"); n != 2 {
		t.Errorf("%d records in Kafka, want 2", n)
	}
}
