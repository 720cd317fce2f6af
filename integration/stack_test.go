package integration

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sqs-msk-relay/relay/integration/esm"
)

func startStack(t *testing.T, timeout time.Duration, env ...string) (*Stack, *logBuffer) {
	t.Helper()
	return startStackWith(t, StackConfig{FunctionTimeout: timeout, FunctionEnv: env})
}

func startStackWith(t *testing.T, cfg StackConfig) (*Stack, *logBuffer) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	cfg.Root, cfg.Binary, cfg.Topics, cfg.Logs = root, binary, []string{"events", "audit"}, logs
	cfg.FunctionEnv = append([]string{"RELAY_TOPIC=events"}, cfg.FunctionEnv...)
	s, err := StartStack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			out := logs.String()
			if len(out) > 20000 {
				out = out[len(out)-20000:]
			}
			t.Logf("function output (tail):\n%s", out)
		}
	})
	return s, logs
}

// stallProduce holds every produce request the broker gets until end.
func stallProduce(s *Stack, end time.Time) {
	s.Kafka.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if d := time.Until(end); d > 0 {
			s.Kafka.SleepControl(func() { <-time.After(d) })
		}
		return nil, nil, false
	})
}

// relayThrough drains q through one mapping of batchSize records and
// accounts for sent on topics.
func relayThrough(t *testing.T, s *Stack, q Queue, batchSize int, timeout time.Duration, topics []string, sent []string) (Report, esm.Stats) {
	t.Helper()
	ctx := context.Background()
	m := s.Mapping(q, batchSize, 0)
	if err := s.Drain(ctx, timeout, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, topics, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r, m.Stats())
	return r, m.Stats()
}

func runAll(ms ...*esm.Mapping) func(ctx context.Context) {
	return func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, m := range ms {
			wg.Add(1)
			go func() { defer wg.Done(); m.Run(ctx) }()
		}
		wg.Wait()
	}
}

// checkFIFOOrder checks that, per message group, the first Kafka record of
// each trace id comes in send order (consumers drop later duplicates by
// the message-id header).
func checkFIFOOrder(t *testing.T, r Report, sent []string, groupOf func(i int) string) {
	t.Helper()
	type pos struct {
		partition int32
		offset    int64
	}
	last := map[string]pos{}
	for i, trace := range sent {
		recs := r.Kafka[trace]
		if len(recs) == 0 {
			continue
		}
		first := recs[0]
		for _, rec := range recs[1:] {
			if rec.Offset < first.Offset {
				first = rec
			}
		}
		g := groupOf(i)
		p := pos{first.Partition, first.Offset}
		if prev, ok := last[g]; ok && (prev.partition != p.partition || p.offset < prev.offset) {
			t.Errorf("group %s: %s at %d@%d comes before the previous message at %d@%d", g, trace, p.partition, p.offset, prev.partition, prev.offset)
		}
		last[g] = p
	}
}

func TestStackDeliversStandardAndFIFO(t *testing.T) {
	s, _ := startStack(t, 10*time.Second)
	ctx := context.Background()
	std, err := s.CreateQueue(ctx, "orders", false, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	fifo, err := s.CreateQueue(ctx, "ledger", true, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	sentStd, err := s.Send(ctx, std, "std", 3000, func(i int) Message {
		return Message{Body: fmt.Sprintf(`{"order":%d}`, i), Attrs: map[string]string{"tenant": fmt.Sprintf("t-%d", i%7)}}
	})
	if err != nil {
		t.Fatal(err)
	}
	group := func(i int) string { return fmt.Sprintf("account-%d", i%20) }
	sentFIFO, err := s.Send(ctx, fifo, "fifo", 2000, func(i int) Message {
		return Message{Body: fmt.Sprintf(`{"entry":%d}`, i), Group: group(i)}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(ctx, 3*time.Minute, []Queue{std, fifo}, runAll(s.Mapping(std, 100, 500*time.Millisecond), s.Mapping(fifo, 10, 0))); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    Queue
		sent []string
	}{{std, sentStd}, {fifo, sentFIFO}} {
		r, err := s.Account(ctx, []string{"events"}, tc.q, tc.sent)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		if len(r.Lost) != 0 || r.InKafka != len(tc.sent) || r.InDLQ != 0 {
			t.Errorf("%s: %v (lost %v)", tc.q.ARN, r, first(r.Lost, 5))
		}
		if tc.q.FIFO {
			checkFIFOOrder(t, r, tc.sent, group)
			rec := r.Kafka[tc.sent[5]][0]
			if string(rec.Key) != group(5) {
				t.Errorf("FIFO record key %q, want its group %s", rec.Key, group(5))
			}
		} else {
			rec := r.Kafka[tc.sent[8]][0]
			if string(rec.Value) != `{"order":8}` || headerOf(rec.Headers, "tenant") != "t-1" || headerOf(rec.Headers, "sqs:receive-count") != "1" {
				t.Errorf("record %s mapped as value %q headers %v", tc.sent[8], rec.Value, rec.Headers)
			}
		}
	}
}

// TestStackPoisonGoesToDLQ: without RELAY_DLQ_URL poison records reach the
// DLQ by SQS's redrive, as before the failure policy, which is on
// (RELAY_RETRY_BASE) and leaves permanent failures alone.
func TestStackPoisonGoesToDLQ(t *testing.T) {
	s, _ := startStack(t, 5*time.Second, "RELAY_MAX_MESSAGE_BYTES=1000", "RELAY_TOPIC_ATTRIBUTE=route", "RELAY_ALLOWED_TOPICS=audit", "RELAY_RETRY_BASE=1s")
	ctx := context.Background()
	q, err := s.CreateQueue(ctx, "orders", false, 2*time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	poison := map[int]bool{7: true, 50: true, 51: true, 120: true, 199: true}
	sent, err := s.Send(ctx, q, "m", 200, func(i int) Message {
		switch {
		case i == 7 || i == 120:
			return Message{Body: strings.Repeat("x", 1001)}
		case poison[i]:
			return Message{Body: "routed off the list", Attrs: map[string]string{"route": "payroll"}}
		}
		return Message{Body: "ok " + strconv.Itoa(i)}
	})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Mapping(q, 50, 200*time.Millisecond)
	if err := s.Drain(ctx, 2*time.Minute, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, []string{"events", "audit"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r, m.Stats())
	// Duplicates stay possible: a slow invocation outlives the short
	// visibility timeout and SQS redelivers (at least once).
	if len(r.Lost) != 0 || r.InKafka != 195 || r.InDLQ != 5 {
		t.Errorf("%v, want 195 in Kafka, 5 in the DLQ, none lost", r)
	}
	for i, trace := range sent {
		if r.DLQ[trace] != poison[i] {
			t.Errorf("%s (poison %v) in DLQ %v", trace, poison[i], r.DLQ[trace])
		}
	}
}

// TestStackFIFOOrderAcrossRetries: produce requests held past the
// deadline fail their batches; the later records of each group are failed
// with them and SQS redelivers the groups in order. Batches hold several
// records of a group (the emulator receives FIFO groups as SQS does).
//
// A fault that rejects a request outright (INVALID_RECORD) is no test of
// order here: the group's later records, already in a request in flight,
// land before the rejected ones are retried, on kfake as on a real broker
// once a partition holds records. With RELAY_DLQ_URL that rejection is
// permanent and goes to the DLQ, and the followers' order holds
// (TestPolicyPoisonDeadLetteredOnFirstReceive).
func TestStackFIFOOrderAcrossRetries(t *testing.T) {
	s, _ := startStack(t, 2*time.Second)
	ctx := context.Background()
	q, err := s.CreateQueue(ctx, "ledger", true, 3*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	stallEnd := time.Now().Add(4 * time.Second)
	stallProduce(s, stallEnd)
	group := func(i int) string { return fmt.Sprintf("g-%d", i%5) }
	sent, err := s.Send(ctx, q, "f", 300, func(i int) Message { return Message{Body: strconv.Itoa(i), Group: group(i)} })
	if err != nil {
		t.Fatal(err)
	}
	m := s.Mapping(q, 10, 0)
	if err := s.Drain(ctx, 2*time.Minute, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, []string{"events"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r, m.Stats())
	if m.Stats().ReportedFailed == 0 {
		t.Fatalf("the stall failed no record: nothing was tested")
	}
	if len(r.Lost) != 0 || r.InKafka != len(sent) {
		t.Errorf("%v", r)
	}
	checkFIFOOrder(t, r, sent, group)
}

func TestStackDLQRedrive(t *testing.T) {
	// "audit" is allowed but missing at first: its records fail until it is
	// created, land in the DLQ, and a redrive brings them back.
	s, _ := startStack(t, 5*time.Second, "RELAY_TOPIC_ATTRIBUTE=route", "RELAY_ALLOWED_TOPICS=audit2")
	ctx := context.Background()
	q, err := s.CreateQueue(ctx, "orders", false, 2*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := s.Send(ctx, q, "r", 60, func(i int) Message {
		if i%6 == 0 {
			return Message{Body: "to audit2", Attrs: map[string]string{"route": "audit2"}}
		}
		return Message{Body: "ok"}
	})
	if err != nil {
		t.Fatal(err)
	}
	m := s.Mapping(q, 20, 200*time.Millisecond)
	if err := s.Drain(ctx, 2*time.Minute, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, []string{"events"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	if r.InDLQ != 10 || len(r.Lost) != 0 {
		t.Fatalf("before the fix: %v, want 10 in the DLQ", r)
	}
	// The fix, then the redrive, with the real SDK against the front.
	if err := s.Kafka.CreateTopic("audit2", 3, nil); err != nil {
		t.Fatal(err)
	}
	c := s.SQS.Client()
	task, err := c.StartMessageMoveTask(ctx, &sqs.StartMessageMoveTaskInput{SourceArn: &q.DLQARN, MaxNumberOfMessagesPerSecond: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.ListMessageMoveTasks(ctx, &sqs.ListMessageMoveTasksInput{SourceArn: &q.DLQARN})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Results) != 1 || aws.ToString(out.Results[0].TaskHandle) != aws.ToString(task.TaskHandle) {
			t.Fatalf("tasks %+v", out.Results)
		}
		if st := aws.ToString(out.Results[0].Status); st == "COMPLETED" {
			if out.Results[0].ApproximateNumberOfMessagesMoved != 10 {
				t.Errorf("moved %d, want 10", out.Results[0].ApproximateNumberOfMessagesMoved)
			}
			break
		} else if st != "RUNNING" || time.Now().After(deadline) {
			t.Fatalf("move task %s: %s", st, aws.ToString(out.Results[0].FailureReason))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Drain(ctx, time.Minute, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err = s.Account(ctx, []string{"events", "audit2"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	if r.InKafka != 60 || r.InDLQ != 0 || len(r.Lost) != 0 {
		t.Errorf("after the redrive: %v, want all 60 in Kafka and the DLQ empty", r)
	}
}

func headerOf(hs []kgo.RecordHeader, k string) string {
	for _, h := range hs {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

func TestStackBrokerStallLongerThanTimeout(t *testing.T) {
	s, _ := startStack(t, 3*time.Second)
	ctx := context.Background()
	q, err := s.CreateQueue(ctx, "orders", false, 4*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Every produce request is held until the stall ends, 8 s from now:
	// longer than the 3 s function timeout. The relay answers in time,
	// failing the batch; the held requests are then appended, so records
	// SQS redelivers may land twice.
	stallEnd := time.Now().Add(8 * time.Second)
	stallProduce(s, stallEnd)
	sent, err := s.Send(ctx, q, "s", 200, func(i int) Message { return Message{Body: strconv.Itoa(i)} })
	if err != nil {
		t.Fatal(err)
	}
	m := s.Mapping(q, 50, 200*time.Millisecond)
	if err := s.Drain(ctx, 2*time.Minute, []Queue{q}, runAll(m)); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, []string{"events"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	t.Log(r, st, "function starts", s.Fn.Starts())
	if len(r.Lost) != 0 || r.InKafka != 200 || r.InDLQ != 0 {
		t.Errorf("%v", r)
	}
	if st.ReportedFailed == 0 {
		t.Fatalf("the stall failed no record: nothing was tested")
	}
	if r.Duplicates > st.ReportedFailed {
		t.Errorf("%d duplicates, more than the %d records failed during the stall", r.Duplicates, st.ReportedFailed)
	}
	if s.Fn.Starts() != 1 || st.BatchFailures != 0 {
		t.Errorf("the function timed out (%d starts, %d whole-batch failures): it must answer before its deadline", s.Fn.Starts(), st.BatchFailures)
	}
}

// TestStackOverIAM runs the pipeline against the broker that checks MSK IAM
// tokens over TLS, as MSK does on port 9098.
func TestStackOverIAM(t *testing.T) {
	s, logs := startStackWith(t, StackConfig{FunctionTimeout: 10 * time.Second, IAM: true})
	ctx := context.Background()
	q, err := s.CreateQueue(ctx, "orders", false, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := s.Send(ctx, q, "iam", 1000, func(i int) Message { return Message{Body: strconv.Itoa(i)} })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Drain(ctx, time.Minute, []Queue{q}, runAll(s.Mapping(q, 100, 200*time.Millisecond))); err != nil {
		t.Fatal(err)
	}
	r, err := s.Account(ctx, []string{"events"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Lost) != 0 || r.InKafka != 1000 || s.IAM.Accepted() == 0 || len(s.IAM.Rejected()) != 0 {
		t.Errorf("%v; tokens accepted %d, rejected %v", r, s.IAM.Accepted(), s.IAM.Rejected())
	}
	if strings.Contains(logs.String(), StackSecretKey) {
		t.Errorf("the function's output contains the secret key")
	}
}
