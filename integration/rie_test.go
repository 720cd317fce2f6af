package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// rieBinary is AWS's Runtime Interface Emulator, built by make (make rie)
// from the module proxy. Without it the test cannot run: it says so, and
// fails in CI.
func rieBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv("RELAY_RIE")
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("RELAY_RIE is not set: make test builds aws-lambda-rie (make rie) and sets it")
		}
		t.Skip("RELAY_RIE is not set: run make rie, or make test, to run the function under AWS's Runtime Interface Emulator")
	}
	return path
}

// startRIE runs the real binary under aws-lambda-rie and returns the
// address of its invoke API.
func startRIE(t *testing.T, timeout time.Duration, env ...string) (string, *logBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rapi, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rapiAddr := rapi.Addr().String()
	rapi.Close()
	logs := &logBuffer{}
	cmd := exec.Command(rieBinary(t), "--runtime-interface-emulator-address", addr, "--runtime-api-address", rapiAddr, binary)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), fmt.Sprint("AWS_LAMBDA_FUNCTION_TIMEOUT=", int(timeout.Seconds()))}, env...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("emulator and function output:\n%s", logs.String())
		}
	})
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, logs
}

func rieInvoke(t *testing.T, addr string, payload []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// TestBinaryUnderAWSRuntimeInterfaceEmulator runs the function under a
// second, independent Runtime API: AWS's own emulator. A batch relays with
// its partial response; an init error is reported, and the emulator runs
// init again on the next invoke.
func TestBinaryUnderAWSRuntimeInterfaceEmulator(t *testing.T) {
	c, err := broker.Start(1, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr, logs := startRIE(t, 10*time.Second, "RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_MAX_MESSAGE_BYTES=20")
	ev := events.SQSEvent{}
	for i, body := range []string{"hello", "much too long for the limit", "world"} {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: body,
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", Attributes: map[string]string{"SentTimestamp": "1700000000000"}})
	}
	payload, _ := json.Marshal(ev)
	code, body := rieInvoke(t, addr, payload)
	if code != http.StatusOK || string(body) != `{"batchItemFailures":[{"itemIdentifier":"m1"}]}` {
		t.Fatalf("invoke: %d %s, want m1 failed alone", code, body)
	}
	if n := c.Count("events"); n != 2 {
		t.Errorf("%d records in Kafka, want 2", n)
	}
	if !logsSay(logs, `"msg":"batch relayed"`) {
		t.Errorf("no summary line")
	}

	// An event over 512 KiB, which the emulator sends chunked as the
	// small one, is relayed while it arrives: the same partial response.
	large := events.SQSEvent{}
	for i := range 3000 {
		body := fmt.Sprint("r", i)
		if i == 1500 {
			body = "much too long for the limit"
		}
		large.Records = append(large.Records, events.SQSMessage{MessageId: fmt.Sprint("big-", i), Body: body,
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", Attributes: map[string]string{"SentTimestamp": "1700000000000"}})
	}
	payload, _ = json.Marshal(large)
	if len(payload) <= 512<<10 {
		t.Fatalf("the large event is %d bytes: too small to be read while it arrives", len(payload))
	}
	code, body = rieInvoke(t, addr, payload)
	if code != http.StatusOK || string(body) != `{"batchItemFailures":[{"itemIdentifier":"big-1500"}]}` {
		t.Fatalf("invoke with %d bytes: %d %.200s, want big-1500 failed alone", len(payload), code, body)
	}
	waitFor(t, 10*time.Second, func() bool { return c.Count("events") == 2+2999 })

	// A bad configuration is an init error, reported on every invoke as
	// init runs again.
	bad, badLogs := startRIE(t, 10*time.Second, "RELAY_TOPIC=events", "RELAY_AUTH=none")
	for range 2 {
		code, body := rieInvoke(t, bad, payload)
		if code == http.StatusOK || !strings.Contains(string(body), "RELAY_BROKERS is required") {
			t.Errorf("invoke with a bad configuration: %d %s, want the init error", code, body)
		}
	}
	if n := strings.Count(badLogs.String(), `"msg":"cannot start"`); n < 2 {
		t.Errorf("init ran %d times, want again on the second invoke", n)
	}
}
