package apache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sqs-msk-relay/relay/integration"
	"github.com/sqs-msk-relay/relay/integration/apache"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/doctor"
	"github.com/sqs-msk-relay/relay/relay/kafka"
)

const queueARN = "arn:aws:sqs:eu-west-1:123456789012:events"

type logBuffer = integration.LogBuffer

// realRelay is the handler and a real librdkafka producer on the cluster.
type realRelay struct {
	h    *relay.Handler
	logs *logBuffer
}

func newRelay(t *testing.T, env map[string]string) *realRelay {
	t.Helper()
	full := map[string]string{"RELAY_BROKERS": cluster.Addrs(apache.Plaintext), "RELAY_TOPIC": "events", "RELAY_AUTH": "none",
		"RELAY_BROKERS_DOWN_GRACE": "2s", "RELAY_DEADLINE_MARGIN": "1s"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("relay logs (last 8 KiB):\n%s", tail(logs.String(), 8<<10))
		}
	})
	return &realRelay{h: relay.NewHandler(cfg, p, log), logs: logs}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// event is n records with ids prefix-i, each with a key attribute, sent
// now: the relay stamps a message with SentTimestamp, and the brokers'
// retention (7 days) deletes records stamped older than that within
// minutes (a fixed 2023 stamp once took a partition's first records
// while a test ran).
func event(prefix string, n, size int) events.SQSEvent {
	var ev events.SQSEvent
	body := strings.Repeat("x", size)
	sent := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for i := range n {
		key := fmt.Sprintf("key-%d", i%97)
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: fmt.Sprintf("%s-%05d", prefix, i), Body: fmt.Sprintf("%s %d %s", prefix, i, body),
			EventSourceARN: queueARN, Attributes: map[string]string{"SentTimestamp": sent, "ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{"k": {DataType: "String", StringValue: &key}},
		})
	}
	return ev
}

// invoke runs one batch with a deadline timeout away and returns the
// failed ids; it fails the test if the answer came after the deadline.
func (r *realRelay) invoke(t *testing.T, ev events.SQSEvent, timeout time.Duration) (failed map[string]bool, took time.Duration) {
	t.Helper()
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "req-" + ev.Records[0].MessageId})
	start := time.Now()
	out, err := r.h.Invoke(ctx, payload)
	took = time.Since(start)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	if time.Now().After(deadline) {
		t.Errorf("answered %v after the deadline", time.Since(deadline))
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	failed = map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	return failed, took
}

// tally accounts for every record id sent: acknowledged and present,
// reported failed, acknowledged but missing (must never happen), and the
// copies beyond the first in Kafka.
type tally struct {
	Acked, Failed, AckedMissing, Duplicates int
}

// account reads topic whole and tallies sent against it. A new leader's
// high watermark can stay behind the records its predecessor acknowledged
// until its followers fetch again, so while acknowledged records are
// missing it reads again each time a high watermark moves past what was
// read, for at most a minute: a record really lost stays missing.
func account(t *testing.T, topic string, sent []string, failed map[string]bool) (tally, map[string]*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		recs, err := cluster.Records(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		tl, seen, missing := tallyOf(recs, sent, failed)
		if len(missing) == 0 || !cluster.WaitEndsBeyond(ctx, topic, readTo(recs)) {
			for _, id := range missing {
				t.Errorf("record %s was reported acknowledged but is not in Kafka", id)
			}
			if len(missing) > 0 {
				read := map[int32]int{}
				for _, r := range recs {
					read[r.Partition]++
				}
				md, err := cluster.Metadata(context.Background(), topic)
				t.Logf("%s: records read by partition %v; metadata %s (%v)", topic, read, partitions(md), err)
			}
			return tl, seen
		}
	}
}

// tallyOf tallies sent against recs, and lists the acknowledged ids
// missing from them.
func tallyOf(recs []*kgo.Record, sent []string, failed map[string]bool) (tally, map[string]*kgo.Record, []string) {
	seen := map[string]*kgo.Record{}
	var tl tally
	for _, r := range recs {
		id := header(r, relay.HeaderMessageID)
		if _, dup := seen[id]; dup {
			tl.Duplicates++
			continue
		}
		seen[id] = r
	}
	var missing []string
	for _, id := range sent {
		switch {
		case failed[id]:
			tl.Failed++
		case seen[id] == nil:
			tl.AckedMissing++
			missing = append(missing, id)
		default:
			tl.Acked++
		}
	}
	return tl, seen, missing
}

// readTo is the offset after the last record of recs, by partition.
func readTo(recs []*kgo.Record) map[int32]int64 {
	out := map[int32]int64{}
	for _, r := range recs {
		out[r.Partition] = max(out[r.Partition], r.Offset+1)
	}
	return out
}

// partitions says who leads each partition in md and what is in sync.
func partitions(md *kmsg.MetadataResponse) string {
	if md == nil {
		return "none"
	}
	var b strings.Builder
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			fmt.Fprintf(&b, "[%d: leader %d epoch %d ISR %v] ", p.Partition, p.Leader, p.LeaderEpoch, p.ISR)
		}
	}
	return b.String()
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func ids(ev events.SQSEvent) []string {
	var out []string
	for _, r := range ev.Records {
		out = append(out, r.MessageId)
	}
	return out
}

func createTopic(t *testing.T, topic string, partitions int32, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.CreateTopic(ctx, topic, partitions, configs); err != nil {
		t.Fatal(err)
	}
}

// restoreCluster starts every broker that is not running and waits until
// the cluster is whole, at the end of a test that stopped some.
func restoreCluster(t *testing.T, topics ...string) {
	t.Helper()
	t.Cleanup(func() {
		for i := 1; i <= apache.Brokers; i++ {
			n := cluster.Broker(i)
			n.Resume()
			if !n.Running() {
				if err := n.Start(); err != nil {
					t.Error(err)
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cluster.WaitReady(ctx, topics...); err != nil {
			t.Errorf("the cluster did not recover: %v", err)
		}
	})
}

// TestBatchLandsOnceMapped: 10,000 records land once on the RF-3 cluster,
// mapped as on kfake, each key in the partition Java's partitioner picks.
func TestBatchLandsOnceMapped(t *testing.T) {
	createTopic(t, "landed", 6, nil)
	r := newRelay(t, map[string]string{"RELAY_TOPIC": "landed", "RELAY_KEY_ATTRIBUTE": "k"})
	ev := event("land", 10000, 200)
	failed, took := r.invoke(t, ev, 60*time.Second)
	if len(failed) != 0 {
		t.Fatalf("%d failed", len(failed))
	}
	tl, got := account(t, "landed", ids(ev), failed)
	if tl.Acked != 10000 || tl.Duplicates != 0 {
		t.Fatalf("tally %+v, want 10,000 acknowledged, no duplicates", tl)
	}
	java := kgo.StickyKeyPartitioner(nil).ForTopic("landed")
	for _, m := range ev.Records {
		rec := got[m.MessageId]
		key := *m.MessageAttributes["k"].StringValue
		if string(rec.Value) != m.Body || string(rec.Key) != key || strconv.FormatInt(rec.Timestamp.UnixMilli(), 10) != m.Attributes["SentTimestamp"] ||
			header(rec, "k") != key || header(rec, relay.HeaderSourceARN) != queueARN {
			t.Fatalf("record %s mapped as %+v", m.MessageId, rec)
		}
		if want := int32(java.Partition(&kgo.Record{Key: rec.Key}, 6)); rec.Partition != want {
			t.Fatalf("key %s in partition %d, Java's murmur2 puts it in %d", key, rec.Partition, want)
		}
	}
	t.Logf("10,000 records in %v", took)
}

// waitISR polls until every partition of topic has an ISR of want brokers.
func waitISR(t *testing.T, topic string, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		md, err := cluster.Metadata(ctx, topic)
		ok := err == nil && len(md.Topics) == 1 && len(md.Topics[0].Partitions) > 0
		if ok {
			for _, p := range md.Topics[0].Partitions {
				ok = ok && len(p.ISR) == want && p.Leader >= 0
			}
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ISR of %s never became %d brokers (last %v)", topic, want, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestTwoBrokersDownNotEnoughReplicas: with two of three brokers stopped,
// the ISR is below min.insync.replicas: acks=all cannot be had, every
// record fails, none is reported acknowledged, the answer comes before the
// deadline naming NOT_ENOUGH_REPLICAS; once the brokers are back, the
// retried batch lands.
func TestTwoBrokersDownNotEnoughReplicas(t *testing.T) {
	createTopic(t, "isr", 3, nil)
	restoreCluster(t, "isr")
	r := newRelay(t, map[string]string{"RELAY_TOPIC": "isr"})
	if failed, _ := r.invoke(t, event("warm", 10, 10), 20*time.Second); len(failed) != 0 {
		t.Fatalf("warm-up batch: %d failed", len(failed))
	}
	cluster.Broker(2).Stop(30 * time.Second)
	cluster.Broker(3).Stop(30 * time.Second)
	waitISR(t, "isr", 1)
	ev := event("isr", 200, 100)
	failed, _ := r.invoke(t, ev, 8*time.Second)
	if len(failed) != len(ev.Records) {
		t.Fatalf("%d of %d failed with the ISR below min.insync.replicas; none may be reported acknowledged", len(failed), len(ev.Records))
	}
	if logs := r.logs.String(); !strings.Contains(logs, "not_enough_replicas") {
		t.Errorf("the failure does not name NOT_ENOUGH_REPLICAS")
	}
	for _, id := range []int{2, 3} {
		if err := cluster.Broker(id).Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitISR(t, "isr", 3)
	failed, _ = r.invoke(t, ev, 30*time.Second)
	if len(failed) != 0 {
		t.Fatalf("retried batch: %d failed after the brokers returned", len(failed))
	}
	tl, _ := account(t, "isr", ids(ev), failed)
	t.Logf("after the retry: %+v", tl)
	if tl.Acked != len(ev.Records) {
		t.Errorf("tally %+v", tl)
	}
}

// faultMidBatch produces a batch of n records and applies fault to the
// leader of partition 0 once the first records are in; heal runs after
// the answer. Every record must be acknowledged or failed before the
// deadline; after recovery none acknowledged is missing.
func faultMidBatch(t *testing.T, topic string, n int, deadline time.Duration, fault func(*apache.Node), heal func(*apache.Node)) tally {
	t.Helper()
	createTopic(t, topic, 3, nil)
	restoreCluster(t, topic)
	r := newRelay(t, map[string]string{"RELAY_TOPIC": topic})
	if failed, _ := r.invoke(t, event(topic+"-warm", 10, 10), 20*time.Second); len(failed) != 0 {
		t.Fatalf("warm-up batch: %d failed", len(failed))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, err := cluster.Leader(ctx, topic, 0)
	if err != nil || leader < 1 {
		t.Fatalf("leader of %s/0: %d %v", topic, leader, err)
	}
	node := cluster.Broker(int(leader))
	before, _ := cluster.EndOffsets(ctx, topic)
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		for ctx.Err() == nil {
			now, err := cluster.EndOffsets(ctx, topic)
			if err == nil && now[0] > before[0]+10 {
				break
			}
		}
		fault(node)
	}()
	ev := event(topic, n, 500)
	failed, took := r.invoke(t, ev, deadline)
	<-injected
	heal(node)
	if err := cluster.WaitReady(ctx, topic); err != nil {
		t.Fatal(err)
	}
	tl, _ := account(t, topic, append(ids(event(topic+"-warm", 10, 10)), ids(ev)...), failed)
	tl.Acked -= 10
	t.Logf("%s: %+v, answered in %v of %v", topic, tl, took.Round(time.Millisecond), deadline)
	if tl.AckedMissing != 0 {
		t.Errorf("%d records acknowledged but missing", tl.AckedMissing)
	}
	return tl
}

// TestLeaderKilledMidBatch: kill -9 of a partition leader mid-batch.
func TestLeaderKilledMidBatch(t *testing.T) {
	faultMidBatch(t, "killed", 20000, 20*time.Second, (*apache.Node).Kill, func(n *apache.Node) {
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLeaderPausedMidBatch: SIGSTOP of a partition leader mid-batch, for
// longer than broker.session.timeout.ms (9 s): its sockets stay open, the
// controller fences it and moves its partitions.
func TestLeaderPausedMidBatch(t *testing.T) {
	faultMidBatch(t, "paused", 20000, 14*time.Second, (*apache.Node).Pause, (*apache.Node).Resume)
}

// TestRecordsOlderThanRetention: records stamped before their topic's
// retention.ms are acknowledged, and the batch warns once, naming the
// topic, the count and the oldest stamp; fresh records bring no warning.
// The broker would delete such records with their segment once nothing
// newer shares it (docs/design.md, "Timestamp and retention").
func TestRecordsOlderThanRetention(t *testing.T) {
	createTopic(t, "aged", 3, map[string]string{"retention.ms": "3600000"})
	r := newRelay(t, map[string]string{"RELAY_TOPIC": "aged"})
	old := event("old", 10, 10)
	stamp := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	for i := range old.Records[:4] {
		old.Records[i].Attributes["SentTimestamp"] = strconv.FormatInt(stamp.UnixMilli(), 10)
	}
	const warning = `"msg":"records stamped before their topic's retention.ms`
	// The relay learns the topic's retention in the background, after the
	// first batch to it: bounded retries.
	for try := 0; !strings.Contains(r.logs.String(), warning); try++ {
		if try == 20 {
			t.Fatal("no warning for records older than the topic's retention after 20 batches")
		}
		if failed, _ := r.invoke(t, old, 20*time.Second); len(failed) != 0 {
			t.Fatalf("failed %v, want every record acknowledged", failed)
		}
	}
	var line string
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if strings.Contains(l, warning) {
			line = l
		}
	}
	for _, want := range []string{`"topic":"aged"`, `"records":4,`, `"retentionMs":3600000`, `"oldestTimestamp":"` + stamp.UTC().Format(time.RFC3339) + `"`} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %s lacks %s", line, want)
		}
	}
	before := strings.Count(r.logs.String(), warning)
	if failed, _ := r.invoke(t, event("fresh", 10, 10), 20*time.Second); len(failed) != 0 {
		t.Fatalf("fresh batch: failed %v", failed)
	}
	if n := strings.Count(r.logs.String(), warning); n != before {
		t.Errorf("a batch of fresh records warned about retention")
	}
}

// TestOversizedAndUnknownTopic: a topic whose max.message.bytes is below
// the relay's limit fails the oversized record alone with the broker's
// reason; a topic that does not exist fails the batch within the grace,
// with one line naming the cause.
//
// The real broker refuses a whole record batch over max.message.bytes,
// with every message librdkafka put in it (kfake does not): without
// batch.size below the topic's limit, small records batched together fail
// too, and the relay says so.
func TestOversizedAndUnknownTopic(t *testing.T) {
	createTopic(t, "small", 3, map[string]string{"max.message.bytes": "2048"})
	ev := event("size", 20, 100)
	ev.Records[7].Body = strings.Repeat("y", 8000)
	loose := newRelay(t, map[string]string{"RELAY_TOPIC": "small"})
	failed, _ := loose.invoke(t, ev, 20*time.Second)
	if !failed[ev.Records[7].MessageId] {
		t.Errorf("with batch.size over the topic's limit: failed %v, without the oversized record", failed)
	}
	// The relay learns the topic's limit in the background, and says so.
	warned := false
	for end := time.Now().Add(10 * time.Second); !warned && time.Now().Before(end); {
		warned = strings.Contains(loose.logs.String(), "max.message.bytes is below the producer's batch.size")
		if !warned {
			time.Sleep(10 * time.Millisecond) // polling the log for the warning
		}
	}
	if !warned {
		t.Errorf("no warning naming batch.size against the topic's max.message.bytes")
	}
	// Now known, the limit fails the oversized record before it is
	// produced, named against the topic's limit.
	failed, _ = loose.invoke(t, ev, 20*time.Second)
	if !failed[ev.Records[7].MessageId] || !strings.Contains(loose.logs.String(), "over topic small's max.message.bytes 2048") {
		t.Errorf("second batch: failed %v, want the oversized record failed against the topic's limit", failed)
	}
	r := newRelay(t, map[string]string{"RELAY_TOPIC": "small", "RELAY_KAFKA_PROPERTIES": "batch.size=1500"})
	failed, _ = r.invoke(t, ev, 20*time.Second)
	if len(failed) != 1 || !failed[ev.Records[7].MessageId] {
		t.Fatalf("failed %v, want only the oversized record", failed)
	}
	if !strings.Contains(r.logs.String(), `"reason":"message_size_too_large"`) {
		t.Errorf("the oversized record's failure does not give the broker's reason")
	}
	tl, _ := account(t, "small", ids(ev), failed)
	if tl.Acked != 19 {
		t.Errorf("tally %+v, want the other 19 acknowledged", tl)
	}

	missing := newRelay(t, map[string]string{"RELAY_TOPIC": "no-such-topic"})
	failed, took := missing.invoke(t, event("ghost", 20, 10), 20*time.Second)
	if len(failed) != 20 || took > 10*time.Second {
		t.Fatalf("%d failed in %v, want all 20 within seconds", len(failed), took)
	}
	if n := strings.Count(missing.logs.String(), `"msg":"batch failed:`); n != 1 || !strings.Contains(missing.logs.String(), "unknown_topic") {
		t.Errorf("%d batch-level lines, want one naming the unknown topic", n)
	}
}

// TestRealAuthenticators: SCRAM-SHA-512 and mutual TLS against the real
// broker's authenticators, with good and bad credentials.
func TestRealAuthenticators(t *testing.T) {
	createTopic(t, "auth", 3, nil)
	pki := cluster.PKI
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
		want string
	}{
		{"scram good", map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_BROKERS": cluster.Addrs(apache.SCRAM), "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_SCRAM_USERNAME": scramUser, "RELAY_SCRAM_PASSWORD": scramPassword}, true, ""},
		{"scram bad password", map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_BROKERS": cluster.Addrs(apache.SCRAM), "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_SCRAM_USERNAME": scramUser, "RELAY_SCRAM_PASSWORD": "not-" + scramPassword}, false, `"reason":"auth_failed"`},
		{"mtls good", map[string]string{"RELAY_AUTH": "mtls", "RELAY_BROKERS": cluster.Addrs(apache.MTLS), "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_TLS_CERT_FILE": pki.ClientCertFile, "RELAY_TLS_KEY_FILE": pki.ClientKeyFile}, true, ""},
		{"mtls unknown certificate", map[string]string{"RELAY_AUTH": "mtls", "RELAY_BROKERS": cluster.Addrs(apache.MTLS), "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_TLS_CERT_FILE": pki.UnknownCertFile, "RELAY_TLS_KEY_FILE": pki.UnknownKeyFile}, false, `"msg":"batch failed:`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"RELAY_TOPIC": "auth"}
			for k, v := range tc.env {
				env[k] = v
			}
			r := newRelay(t, env)
			failed, took := r.invoke(t, event(strings.ReplaceAll(tc.name, " ", "-"), 20, 10), 20*time.Second)
			if tc.ok && len(failed) != 0 {
				t.Fatalf("%d failed", len(failed))
			}
			if !tc.ok && (len(failed) != 20 || took > 12*time.Second) {
				t.Fatalf("%d failed in %v, want all 20 within seconds", len(failed), took)
			}
			if tc.want != "" && !strings.Contains(r.logs.String(), tc.want) {
				t.Errorf("logs do not say %s", tc.want)
			}
			if strings.Contains(r.logs.String(), scramPassword) {
				t.Errorf("the SCRAM password reached the logs")
			}
		})
	}
}

// TestDoctorOnRealCluster: the doctor's topic verdicts from a real
// cluster's metadata and configuration: unclean leader election allowed
// (a warning: acknowledged records can be lost), under-replicated (a
// warning), and fewer in-sync replicas than min.insync.replicas (a
// failure).
func TestDoctorOnRealCluster(t *testing.T) {
	createTopic(t, "doc", 3, map[string]string{"unclean.leader.election.enable": "true"})
	restoreCluster(t, "doc")
	// The doctor checks each bootstrap broker's TCP port: give it the
	// running ones.
	topicStep := func() doctor.Step {
		t.Helper()
		var up []string
		for i := 1; i <= apache.Brokers; i++ {
			if cluster.Broker(i).Running() {
				up = append(up, cluster.Broker(i).Addr(apache.Plaintext))
			}
		}
		cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) {
			v, ok := map[string]string{"RELAY_BROKERS": strings.Join(up, ","), "RELAY_TOPIC": "doc", "RELAY_AUTH": "none"}[k]
			return v, ok
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep := doctor.Run(ctx, cfg, doctor.Options{})
		for _, s := range rep.Steps {
			if s.Name == "topic doc" {
				return s
			}
		}
		t.Fatalf("no topic step in %+v", rep)
		return doctor.Step{}
	}
	s := topicStep()
	if !s.OK || !s.Warning || !strings.Contains(s.Hint, "unclean.leader.election.enable is true") {
		t.Errorf("whole cluster, unclean election allowed: %+v, want a warning about it", s)
	}
	cluster.Broker(3).Stop(30 * time.Second)
	waitISR(t, "doc", 2)
	s = topicStep()
	if !s.OK || !s.Warning || !strings.Contains(s.Hint, "under-replicated") {
		t.Errorf("one broker down: %+v, want a warning that partitions are under-replicated", s)
	}
	cluster.Broker(2).Stop(30 * time.Second)
	waitISR(t, "doc", 1)
	s = topicStep()
	if s.OK || !strings.Contains(s.Detail, "fewer in-sync replicas than min.insync.replicas 2") || !strings.Contains(s.Hint, "NOT_ENOUGH_REPLICAS") {
		t.Errorf("two brokers down: %+v, want a failure naming min.insync.replicas", s)
	}
}
