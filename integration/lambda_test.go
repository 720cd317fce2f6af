package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
	"github.com/sqs-msk-relay/relay/integration/sqsemu"
)

var (
	binary string
	procs  sync.Map // test name → *os.Process of its function
)

// functionProcess is the process startFunction started for this test.
func functionProcess(t *testing.T) *os.Process {
	t.Helper()
	p, ok := procs.Load(t.Name())
	if !ok {
		t.Fatal("no function process")
	}
	return p.(*os.Process)
}

func TestMain(m *testing.M) {
	if brokers := os.Getenv(rawProcessBrokers); brokers != "" {
		os.Exit(rawProcessMain(brokers))
	}
	if brokers := os.Getenv(rawFunctionBrokers); brokers != "" {
		os.Exit(rawFunctionMain(brokers))
	}
	dir, err := os.MkdirTemp("", "relay-bin")
	if err != nil {
		panic(err)
	}
	binary, err = BuildFunction(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type logBuffer = LogBuffer

// startFunction runs the real binary under a Runtime API on loopback.
func startFunction(t *testing.T, env ...string) (*runtimeapi.Server, *logBuffer, func() error) {
	t.Helper()
	return startFunctionArgv(t, []string{binary}, env...)
}

func startFunctionArgv(t *testing.T, argv []string, env ...string) (*runtimeapi.Server, *logBuffer, func() error) {
	t.Helper()
	api, err := runtimeapi.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	logs := &logBuffer{}
	cmd, err := StartFunction(argv, api.Addr(), env, logs)
	if err != nil {
		t.Fatal(err)
	}
	procs.Store(t.Name(), cmd.Process)
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("function output:\n%s", logs.String())
		}
	})
	wait := func() error {
		select {
		case <-exited:
			return exitErr
		case <-time.After(10 * time.Second):
			return fmt.Errorf("function still running")
		}
	}
	return api, logs, wait
}

func sqsEvent(ids ...string) []byte {
	var ev events.SQSEvent
	for _, id := range ids {
		body := "hello " + id
		if strings.HasPrefix(id, "big") {
			body = strings.Repeat("x", 2000)
		}
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: id, Body: body, EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events",
			Attributes: map[string]string{"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"},
		})
	}
	b, _ := json.Marshal(ev)
	return b
}

func TestBinaryRelaysUnderRuntimeAPI(t *testing.T) {
	c, err := broker.Start(3, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// No credentials and an instance metadata service refusing tokens: the
	// failure policy's SQS client, sending the oversized record to the DLQ,
	// falls back to IMDSv1, which the SDK says in a line of its own that
	// must be JSON too. The DLQ is never reached; the record stays failed.
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	t.Cleanup(imds.Close)
	closed, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	api, logs, _ := startFunction(t,
		"RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_MAX_MESSAGE_BYTES=1000",
		"RELAY_DLQ_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/events-dlq", "AWS_ENDPOINT_URL_SQS=http://"+closed,
		"AWS_REGION=eu-west-1", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL, "AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Two invocations: the producer built at init serves both.
	for round, ids := range [][]string{{"a1", "big1", "a2"}, {"b1", "b2"}} {
		res, err := api.Invoke(ctx, sqsEvent(ids...), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Error {
			t.Fatalf("round %d: function error %s", round, res.Payload)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(res.Payload, &resp); err != nil {
			t.Fatalf("response %s: %v", res.Payload, err)
		}
		want := `[]`
		if round == 0 {
			want = `[{"itemIdentifier":"big1"}]`
		}
		if got, _ := json.Marshal(resp.BatchItemFailures); string(got) != want {
			t.Errorf("round %d: batchItemFailures %s, want %s", round, got, want)
		}
	}
	if n := c.Count("events"); n != 4 {
		t.Errorf("%d records in Kafka, want 4", n)
	}
	// The summary line and the metrics may follow the answer by a moment
	// (the function's stdout is copied in by another goroutine): two
	// batch documents and one per failure reason.
	waitFor(t, 5*time.Second, func() bool {
		return strings.Contains(logs.String(), `"requestId":"req-2"`) && strings.Count(logs.String(), `"_aws"`) >= 3
	})
	out := logs.String()
	if n := strings.Count(out, `"msg":"relay ready"`); n != 1 {
		t.Errorf("producer built %d times, want once per sandbox", n)
	}
	for _, want := range []string{`"requestId":"req-1"`, `"requestId":"req-2"`, `"messageId":"big1","reason":"oversized"`, `"source":"aws-sdk"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
	checkEMF(t, out)
}

// checkEMF parses the function's Embedded Metric Format documents: one per
// batch (3 records, 1 oversized; then 2 records), and one per failure
// reason, each declaring its metrics for CloudWatch.
func checkEMF(t *testing.T, out string) {
	t.Helper()
	type directive struct {
		Namespace  string
		Dimensions [][]string
		Metrics    []struct{ Name, Unit string }
	}
	var batches, reasons []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var doc map[string]any
		if json.Unmarshal([]byte(line), &doc) != nil || doc["_aws"] == nil {
			continue
		}
		var meta struct {
			Timestamp         int64
			CloudWatchMetrics []directive
		}
		b, _ := json.Marshal(doc["_aws"])
		if err := json.Unmarshal(b, &meta); err != nil || meta.Timestamp == 0 || len(meta.CloudWatchMetrics) != 1 {
			t.Fatalf("bad _aws metadata: %s", line)
		}
		d := meta.CloudWatchMetrics[0]
		if d.Namespace != "SqsMskRelay" || len(d.Dimensions) != 1 || doc["FunctionName"] != "relay-local" {
			t.Errorf("bad directive: %s", line)
		}
		for _, m := range d.Metrics {
			if _, ok := doc[m.Name].(float64); !ok {
				t.Errorf("metric %s declared but has no number: %s", m.Name, line)
			}
		}
		if _, ok := doc["Reason"]; ok {
			reasons = append(reasons, doc)
		} else {
			batches = append(batches, doc)
		}
	}
	if len(batches) != 2 || len(reasons) != 1 {
		t.Fatalf("%d batch documents and %d reason documents, want 2 and 1", len(batches), len(reasons))
	}
	first := batches[0]
	if first["Records"] != 3.0 || first["Succeeded"] != 2.0 || first["Failed"] != 1.0 || first["Bytes"].(float64) <= 0 ||
		first["ProduceLatencyP99"] == nil || first["TimeLeftAtReturn"].(float64) <= 0 {
		t.Errorf("first batch metrics %v", first)
	}
	if reasons[0]["Reason"] != "oversized" || reasons[0]["FailedRecords"] != 1.0 {
		t.Errorf("reason metrics %v", reasons[0])
	}
}

func TestBinaryUnreadableEventIsFunctionError(t *testing.T) {
	c, err := broker.Start(1, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api, logs, _ := startFunction(t, "RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A good record, then one that cannot be reported on its own.
	res, err := api.Invoke(ctx, []byte(`{"Records":[{"messageId":"good","body":"x","eventSourceARN":"arn:aws:sqs:eu-west-1:123456789012:events"},{"body":"no id"}]}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Error || !strings.Contains(string(res.Payload), "has no messageId") || !strings.Contains(string(res.Payload), `"errorType":"InvalidSQSEvent"`) {
		t.Errorf("result %+v, want a function error of type InvalidSQSEvent naming the missing messageId", res)
	}
	// The summary and the metrics count what reached Kafka before the flaw.
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), `"_aws"`) })
	out := logs.String()
	if !strings.Contains(out, `"msg":"batch relayed"`) || !strings.Contains(out, `"records":1,"succeeded":1,`) || !strings.Contains(out, `"producedBeforeTheFlaw":1`) {
		t.Errorf("no summary counting the produced record:\n%s", out)
	}
	if !strings.Contains(out, `"Records":1,"Succeeded":1,`) {
		t.Errorf("no EMF document counting the produced record")
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a line the function wrote is not JSON: %s", line)
		}
	}
}

func TestBinaryBadConfigIsInitError(t *testing.T) {
	api, _, wait := startFunction(t, "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_DEADLINE_MARGIN=soon")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := api.InitError(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(res.Payload)
	if res.ErrorType != "Runtime.ConfigError" || !strings.Contains(msg, "RELAY_BROKERS is required") || !strings.Contains(msg, `RELAY_DEADLINE_MARGIN=\"soon\"`) {
		t.Errorf("init error %s %s", res.ErrorType, msg)
	}
	if err := wait(); err == nil {
		t.Errorf("function exited cleanly after an init error")
	}
	if api.Nexts() != 0 {
		t.Errorf("function asked for invocations after failing init")
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !eventually(timeout, cond) {
		t.Errorf("condition not met within %v", timeout)
	}
}

// eventually polls cond until it holds or timeout passes, and reports
// whether it held. A function's log lines are read from its stdout on a
// goroutine of their own, so a line written before an answer can arrive
// after it: check for one with eventually.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// logsSay waits up to 5 s for logs to hold s.
func logsSay(logs *LogBuffer, s string) bool {
	return eventually(5*time.Second, func() bool { return strings.Contains(logs.String(), s) })
}

func TestBinaryAnswersDoctorEvent(t *testing.T) {
	c, err := broker.Start(1, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	emu, err := sqsemu.Start(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	creds := []string{"AWS_REGION=" + sqsemu.Region, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test"}
	// Without the failure policy there is no SQS step; with it, the last
	// step says whether the SQS API answers.
	for _, tc := range []struct {
		topic, lastStep string
		env             []string
		ok              bool
		inHint          string
	}{
		{"events", "topic events", []string{"RELAY_RETRY_BASE=0"}, true, ""},
		{"orders", "topic orders", []string{"RELAY_RETRY_BASE=0"}, false, "MSK does not create topics"},
		{"events", "sqs api", append([]string{"AWS_ENDPOINT_URL_SQS=" + emu.Endpoint}, creds...), true, ""},
		{"events", "sqs api", append([]string{"AWS_ENDPOINT_URL_SQS=http://127.0.0.1:1"}, creds...), false, "sqs interface endpoint"},
	} {
		api, _, _ := startFunction(t, append([]string{"RELAY_BROKERS=" + c.Addrs(), "RELAY_TOPIC=" + tc.topic, "RELAY_AUTH=none"}, tc.env...)...)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := api.Invoke(ctx, []byte(`{"relay":"doctor"}`), 20*time.Second)
		cancel()
		if err != nil || res.Error {
			t.Fatalf("doctor invocation: %s %v", res.Payload, err)
		}
		var rep struct {
			OK    bool
			Steps []struct {
				Step string
				OK   bool
				Hint string
			}
		}
		if err := json.Unmarshal(res.Payload, &rep); err != nil {
			t.Fatalf("report %s: %v", res.Payload, err)
		}
		last := rep.Steps[len(rep.Steps)-1]
		if rep.OK != tc.ok || last.Step != tc.lastStep || last.OK != tc.ok || !strings.Contains(last.Hint, tc.inHint) {
			t.Errorf("topic %s, %v: report %s", tc.topic, tc.env, res.Payload)
		}
	}
}
