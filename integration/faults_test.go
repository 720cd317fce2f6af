package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/faultproxy"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/mskiam"
)

// faultRelay is the handler with a real producer, on a proxied cluster.
type faultRelay struct {
	c    *faultproxy.Cluster
	h    *relay.Handler
	logs *logBuffer
	seq  int
	// countOnly accounts by the topic's record count, for a cluster a
	// plain reader cannot read (SASL): acknowledged records must all be
	// there, duplicates are not counted.
	countOnly bool
}

func newFaultRelay(t testing.TB, c *faultproxy.Cluster, env map[string]string, opts ...kafka.Option) *faultRelay {
	t.Helper()
	full := map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_TOPIC": "events", "RELAY_AUTH": "none", "RELAY_BROKERS_DOWN_GRACE": "2s", "RELAY_DEADLINE_MARGIN": "500ms"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	p, err := kafka.New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &faultRelay{c: c, h: relay.NewHandler(cfg, p, log), logs: logs}
}

func startProxied(t testing.TB, n int, opts ...kfake.Opt) *faultproxy.Cluster {
	t.Helper()
	c, err := faultproxy.Start(n, 3, []string{"events"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// tally is what runs of one fault added up to.
type tally struct {
	Fault      string
	Runs       int
	Records    int
	Failed     int // reported to SQS for retry
	Lost       int // reported done but not in Kafka: must be 0
	Duplicates int
	WorstFrac  float64 // worst handler time as a fraction of the deadline
}

func (t *tally) add(o tally) {
	t.Runs += o.Runs
	t.Records += o.Records
	t.Failed += o.Failed
	t.Lost += o.Lost
	t.Duplicates += o.Duplicates
	t.WorstFrac = max(t.WorstFrac, o.WorstFrac)
}

func (t tally) row() string {
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %.2f |", t.Fault, t.Runs, t.Records, t.Failed, t.Lost, t.Duplicates, t.WorstFrac)
}

// batch relays n records of size bytes with the deadline, while fault (if
// any) is injected once the first records have landed, and accounts for
// them: every record is acknowledged in Kafka or reported failed.
// heal, if set, removes the fault after the handler answered.
func (f *faultRelay) batch(t testing.TB, n, size int, deadline time.Duration, fault, heal func()) (tl tally) {
	t.Helper()
	f.seq++
	prefix := fmt.Sprintf("b%d-", f.seq)
	var ev events.SQSEvent
	body := strings.Repeat("x", size)
	for i := range n {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: prefix + strconv.Itoa(i), Body: body,
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", Attributes: map[string]string{"SentTimestamp": "1700000000000"}})
	}
	payload, _ := json.Marshal(ev)
	before := f.c.Count("events")
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		if fault == nil {
			return
		}
		end := time.Now().Add(5 * time.Second)
		for f.c.Count("events") == before && time.Now().Before(end) {
			time.Sleep(time.Millisecond) // polling the broker for the first landed record
		}
		fault()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: prefix})
	start := time.Now()
	out, err := f.h.Invoke(ctx, payload)
	took := time.Since(start)
	<-injected
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, x := range resp.BatchItemFailures {
		failed[x.ItemIdentifier] = true
	}
	tl = tally{Runs: 1, Records: n, Failed: len(failed), WorstFrac: took.Seconds() / deadline.Seconds()}
	if took >= deadline {
		t.Errorf("answered %v after a %v deadline", took, deadline)
	}
	if heal != nil {
		heal()
	}
	if f.countOnly {
		if acked := int64(n - len(failed)); f.c.Count("events")-before < acked {
			tl.Lost = int(acked - (f.c.Count("events") - before))
			t.Errorf("%d records reported done but not in Kafka", tl.Lost)
		}
		return tl
	}
	f.account(t, &tl, f.seq, n, func(id string) bool { return failed[id] })
	return tl
}

// account reads the topic and adds lost and duplicate counts of batch seq.
func (f *faultRelay) account(t testing.TB, tl *tally, seq, n int, failed func(id string) bool) {
	t.Helper()
	recs, err := f.c.Records("events", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("b%d-", seq)
	seen := map[string]int{}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == relay.HeaderMessageID && strings.HasPrefix(string(h.Value), prefix) {
				seen[string(h.Value)]++
			}
		}
	}
	for i := range n {
		id := prefix + strconv.Itoa(i)
		if seen[id] == 0 && !failed(id) {
			tl.Lost++
			t.Errorf("%s reported done but not in Kafka", id)
		}
		if seen[id] > 1 {
			tl.Duplicates += seen[id] - 1
		}
	}
}

// faultCase is one kind of fault, injected mid-batch.
type faultCase struct {
	name     string
	records  int
	size     int
	deadline time.Duration
	setup    func(c *faultproxy.Cluster) // before the batch (a slow link to spread it in time)
	inject   func(c *faultproxy.Cluster)
	heal     func(c *faultproxy.Cluster)
	allOK    bool // no record may fail
}

var faultCases = []faultCase{
	{name: "every connection reset once mid-batch", records: 2000, size: 1024, deadline: 5 * time.Second,
		setup:  func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":20}}`) },
		inject: func(c *faultproxy.Cluster) { c.ResetConnections() },
		heal:   func(c *faultproxy.Cluster) { c.RemoveToxic("slow") }},
	{name: "connections reset until the deadline", records: 2000, size: 1024, deadline: 5 * time.Second,
		setup:  func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":20}}`) },
		inject: func(c *faultproxy.Cluster) { c.AddToxic("reset", `{"type":"reset_peer","attributes":{"timeout":0}}`) },
		heal:   func(c *faultproxy.Cluster) { c.RemoveToxic("reset"); c.RemoveToxic("slow") }},
	{name: "black hole mid-batch", records: 2000, size: 1024, deadline: 3 * time.Second,
		setup:  func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":20}}`) },
		inject: func(c *faultproxy.Cluster) { c.AddToxic("hole", `{"type":"timeout","attributes":{"timeout":0}}`) },
		heal:   func(c *faultproxy.Cluster) { c.RemoveToxic("hole"); c.RemoveToxic("slow"); c.ResetConnections() }},
	{name: "latency beyond the deadline (2 s per request, 1.5 s deadline)", records: 200, size: 1024, deadline: 1500 * time.Millisecond,
		setup: func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":2000}}`) },
		heal:  func(c *faultproxy.Cluster) { c.RemoveToxic("slow"); c.ResetConnections() }},
	{name: "a broker's proxy down 1 s mid-batch (3 brokers)", records: 3000, size: 1024, deadline: 10 * time.Second,
		setup: func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":10}}`) },
		inject: func(c *faultproxy.Cluster) {
			p := c.Proxies()[1]
			p.Stop()
			time.AfterFunc(time.Second, func() { p.Start() })
		},
		heal: func(c *faultproxy.Cluster) { c.RemoveToxic("slow") }},
	{name: "a broker killed and restarted mid-batch (3 brokers)", records: 3000, size: 1024, deadline: 10 * time.Second,
		setup: func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":10}}`) },
		inject: func(c *faultproxy.Cluster) {
			// Node 1 leaves the cluster (its partitions move to the
			// others) and the connections drop; it is down for a second
			// (the sleep is the outage, not a wait), then comes back.
			if err := c.RemoveNode(1); err != nil {
				panic(err)
			}
			c.ResetConnections()
			time.Sleep(time.Second)
			if _, _, err := c.AddNode(1, 0); err != nil {
				panic(err)
			}
		},
		heal: func(c *faultproxy.Cluster) { c.RemoveToxic("slow") }},
	{name: "partition leaders moved mid-batch (3 brokers)", records: 3000, size: 1024, deadline: 10 * time.Second, allOK: true,
		setup:  func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":10}}`) },
		inject: func(c *faultproxy.Cluster) { c.ShufflePartitionLeaders() },
		heal:   func(c *faultproxy.Cluster) { c.RemoveToxic("slow") }},
	{name: "packets sliced and bandwidth at 1 MB/s", records: 1000, size: 1024, deadline: 10 * time.Second, allOK: true,
		setup: func(c *faultproxy.Cluster) {
			c.AddToxic("slice", `{"type":"slicer","attributes":{"average_size":64,"size_variation":32,"delay":10}}`)
			c.AddToxic("bw", `{"type":"bandwidth","attributes":{"rate":1000}}`)
		},
		heal: func(c *faultproxy.Cluster) { c.RemoveToxic("slice"); c.RemoveToxic("bw") }},
	{name: "6 MB batch of 10,000 records under 200 ms latency", records: 10000, size: 450, deadline: 30 * time.Second, allOK: true,
		setup: func(c *faultproxy.Cluster) { c.AddToxic("slow", `{"type":"latency","attributes":{"latency":200}}`) },
		heal:  func(c *faultproxy.Cluster) { c.RemoveToxic("slow") }},
}

// runFault runs one fault case `runs` times, each followed by a healthy
// batch that must succeed whole: the relay recovers without a cold start.
func runFault(t testing.TB, fc faultCase, runs int) tally {
	brokers := 1
	if strings.Contains(fc.name, "3 brokers") {
		brokers = 3
	}
	c := startProxied(t, brokers)
	f := newFaultRelay(t, c, nil)
	total := tally{Fault: fc.name}
	for range runs {
		if fc.setup != nil {
			fc.setup(c)
		}
		var inject, heal func()
		if fc.inject != nil {
			inject = func() { fc.inject(c) }
		}
		if fc.heal != nil {
			heal = func() { fc.heal(c) }
		}
		tl := f.batch(t, fc.records, fc.size, fc.deadline, inject, heal)
		if fc.allOK && tl.Failed > 0 {
			t.Errorf("%s: %d records failed, want none", fc.name, tl.Failed)
		}
		total.add(tl)
		if after := f.batch(t, 100, 100, 10*time.Second, nil, nil); after.Failed > 0 {
			t.Errorf("%s: the batch after the fault failed %d of 100 records", fc.name, after.Failed)
		}
	}
	return total
}

// TestFaults runs each fault case once (RELAY_FAULT_RUNS times under make
// soak) and prints the reliability table.
func TestFaults(t *testing.T) {
	runs := 1
	if v, err := strconv.Atoi(os.Getenv("RELAY_FAULT_RUNS")); err == nil && v > 0 {
		runs = v
	}
	var rows []string
	for _, fc := range faultCases {
		t.Run(fc.name, func(t *testing.T) {
			tl := runFault(t, fc, runs)
			t.Log(tl.row())
			rows = append(rows, tl.row())
		})
	}
	t.Logf("\n| fault | runs | records | failed (retried by SQS) | lost | duplicates | worst handler time ÷ deadline |\n|---|---|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

func TestIdleConnectionsClosedBetweenInvocations(t *testing.T) {
	c := startProxied(t, 1)
	f := newFaultRelay(t, c, nil)
	if tl := f.batch(t, 500, 1024, 10*time.Second, nil, nil); tl.Failed > 0 {
		t.Fatalf("first batch failed %d", tl.Failed)
	}
	// While the sandbox is idle (frozen), the broker side drops every
	// connection, as MSK does after connections.max.idle.ms.
	if err := c.ResetConnections(); err != nil {
		t.Fatal(err)
	}
	if tl := f.batch(t, 500, 1024, 10*time.Second, nil, nil); tl.Failed > 0 || tl.Lost > 0 {
		t.Errorf("the batch after idle connections were dropped: %d failed, %d lost; want none", tl.Failed, tl.Lost)
	}
}

func TestAuthStartsFailingMidSession(t *testing.T) {
	pki := newPKI(t)
	v := &broker.IAM{Region: testRegion, Keys: map[string]string{testAccessKey: testSecretKey}}
	c := startProxied(t, 1, append(v.Opts(), kfake.TLS(pki.ServerTLS(false)))...)
	v.Install(c.Cluster.Cluster)
	tokens := mskiam.NewWithCredentials(testRegion, credentials.NewStaticCredentialsProvider(testAccessKey, testSecretKey, ""), testRole)
	f := newFaultRelay(t, c, map[string]string{"RELAY_AUTH": "iam", "RELAY_AWS_REGION": testRegion, "RELAY_TLS_CA_FILE": pki.CAFile,
		"RELAY_BROKERS_DOWN_GRACE": "1s"}, kafka.WithTokenSource(tokens))
	f.countOnly = true
	if tl := f.batch(t, 100, 100, 10*time.Second, nil, nil); tl.Failed > 0 {
		t.Fatalf("first batch failed %d", tl.Failed)
	}
	// The key is revoked and the connections drop: reconnecting fails.
	v.SetKeys(map[string]string{})
	if err := c.ResetConnections(); err != nil {
		t.Fatal(err)
	}
	tl := f.batch(t, 100, 100, 20*time.Second, nil, nil)
	if tl.Failed != 100 || tl.WorstFrac > 0.5 {
		t.Errorf("%d of 100 failed in %.0f%% of the deadline; want all, within seconds", tl.Failed, 100*tl.WorstFrac)
	}
	if !strings.Contains(f.logs.String(), `"reason":"auth_failed"`) {
		t.Errorf("no auth_failed cause in the logs")
	}
}

// TestSoak runs batches with faults drawn at random and checks the
// accounting after each: nothing lost, every answer before its deadline.
// RELAY_SOAK sets the number of batches (make soak); make test runs 8.
func TestSoak(t *testing.T) {
	batches := 8
	if v, err := strconv.Atoi(os.Getenv("RELAY_SOAK")); err == nil && v > 0 {
		batches = v
	}
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("RELAY_SOAK_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("seed %d (RELAY_SOAK_SEED reruns it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := startProxied(t, 3)
	f := newFaultRelay(t, c, nil)
	faults := []struct {
		name   string
		inject func()
		heal   func()
	}{
		{"none", nil, nil},
		{"reset", func() { c.AddToxic("r", `{"type":"reset_peer","attributes":{"timeout":0}}`) }, func() { c.RemoveToxic("r") }},
		{"black hole", func() { c.AddToxic("h", `{"type":"timeout","attributes":{"timeout":0}}`) }, func() { c.RemoveToxic("h"); c.ResetConnections() }},
		{"latency 300 ms", func() { c.AddToxic("l", `{"type":"latency","attributes":{"latency":300,"jitter":100}}`) }, func() { c.RemoveToxic("l") }},
		{"leaders moved", func() { c.ShufflePartitionLeaders() }, nil},
		{"broker proxy down 500 ms", func() {
			p := c.Proxies()[rng.IntN(3)]
			p.Stop()
			time.AfterFunc(500*time.Millisecond, func() { p.Start() })
		}, nil},
		{"sliced", func() {
			c.AddToxic("s", `{"type":"slicer","attributes":{"average_size":32,"size_variation":16,"delay":5}}`)
		}, func() { c.RemoveToxic("s") }},
	}
	total := tally{Fault: "random"}
	counts := map[string]int{}
	for range batches {
		fl := faults[rng.IntN(len(faults))]
		counts[fl.name]++
		n := 100 + rng.IntN(1900)
		c.AddToxic("pace", `{"type":"latency","attributes":{"latency":5}}`)
		tl := f.batch(t, n, 256+rng.IntN(1024), 3*time.Second, fl.inject, func() {
			c.RemoveToxic("pace")
			if fl.heal != nil {
				fl.heal()
			}
		})
		total.add(tl)
	}
	t.Logf("faults drawn: %v", counts)
	t.Logf("\n| fault | runs | records | failed (retried by SQS) | lost | duplicates | worst handler time ÷ deadline |\n|---|---|---|---|---|---|---|\n%s", total.row())
	if total.Lost > 0 {
		t.Errorf("%d records lost", total.Lost)
	}
}

// TestOutageLoggedOncePerChange: an outage through several batches is one
// line when the brokers become unreachable and one when they are back, not
// a line per failed reconnect; batches meanwhile name the cause.
func TestOutageLoggedOncePerChange(t *testing.T) {
	c := startProxied(t, 1)
	f := newFaultRelay(t, c, map[string]string{"RELAY_BROKERS_DOWN_GRACE": "500ms"})
	invoke := func(id string, timeout time.Duration) (failed int) {
		t.Helper()
		ev := events.SQSEvent{Records: []events.SQSMessage{{MessageId: id, Body: "x", EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events"}}}
		payload, _ := json.Marshal(ev)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := f.h.Invoke(lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "req-" + id}), payload)
		if err != nil {
			t.Fatal(err)
		}
		var resp events.SQSEventResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		return len(resp.BatchItemFailures)
	}
	if invoke("before", 10*time.Second) != 0 {
		t.Fatal("the first batch failed")
	}
	for _, p := range c.Proxies() {
		p.Stop()
	}
	for i := range 3 {
		if invoke(fmt.Sprint("during-", i), 2*time.Second) != 1 {
			t.Fatal("a batch during the outage succeeded")
		}
	}
	for _, p := range c.Proxies() {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	back := false
	for i := 0; i < 10 && !back; i++ {
		back = invoke(fmt.Sprint("after-", i), 5*time.Second) == 0
	}
	if !back {
		t.Fatal("no batch succeeded after the brokers came back")
	}
	logs := f.logs.String()
	if n := strings.Count(logs, `"msg":"every Kafka broker is unreachable"`); n != 1 {
		t.Errorf("%d lines for the outage's start, want 1", n)
	}
	if n := strings.Count(logs, `"msg":"Kafka brokers reachable again"`); n != 1 {
		t.Errorf("%d lines for the outage's end, want 1", n)
	}
	if n := strings.Count(logs, `"level":"WARN","msg":"Kafka client error"`); n > 1 {
		t.Errorf("%d WARN lines for client errors, want at most the one before the outage was known", n)
	}
	if strings.Contains(logs, "brokers are down") {
		t.Errorf("librdkafka's miscounted text reached the logs")
	}
	if n := strings.Count(logs, `"msg":"batch failed: no broker reachable`); n < 3 {
		t.Errorf("%d batch-level lines naming the outage, want one per failed batch (at least 3)", n)
	}
}
