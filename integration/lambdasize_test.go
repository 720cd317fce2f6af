package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// sandbox128 is a 128 MB Lambda's share of the machine, or the test says
// why it cannot have one: skipped here, failed in CI.
func sandbox128(t *testing.T) *Sandbox {
	t.Helper()
	sb, err := NewSandbox(fmt.Sprintf("relay-%d-%s", os.Getpid(), strings.NewReplacer("/", "-").Replace(t.Name())), 128)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	t.Cleanup(sb.Close) // after the function's own cleanup, which ends it
	return sb
}

// sixMB is an SQS event of n records with bodies of size bytes, as Lambda
// writes it: 4,000 × 1 KiB or 10,000 × 100 B come near the 6 MB limit.
func sixMB(prefix string, n, size int) []byte {
	var ev events.SQSEvent
	body, sent := strings.Repeat("b", size), sentNow()
	for i := range n {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: fmt.Sprintf("%s-%05d", prefix, i), ReceiptHandle: strings.Repeat("R", 160), Body: body,
			Md5OfBody: "0", EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", AWSRegion: "eu-west-1",
			Attributes: map[string]string{"SentTimestamp": sent, "ApproximateReceiveCount": "1"},
		})
	}
	b, _ := json.Marshal(ev)
	return b
}

func failures(t *testing.T, payload []byte) int {
	t.Helper()
	var resp events.SQSEventResponse
	if err := json.Unmarshal(payload, &resp); err != nil {
		t.Fatalf("response %.200s: %v", payload, err)
	}
	return len(resp.BatchItemFailures)
}

// TestBinaryAt128MB runs the real binary in a 128 MB sandbox with 7.2% of
// a CPU: twenty back-to-back 6 MB events of three record sizes relay with
// nothing failed, no OOM kill, and the process's peak RSS within 64 MB.
func TestBinaryAt128MB(t *testing.T) {
	sb := sandbox128(t)
	c, err := broker.Start(3, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api, logs, _ := startFunctionArgv(t, sb.Wrap([]string{binary}), "RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var most split
	for i := range 20 {
		n, size := 4000, 1024
		switch i % 3 {
		case 1:
			n, size = 10000, 100 // mixed sizes
		case 2:
			n, size = 300, 18000
		}
		payload := sixMB(fmt.Sprint("e", i), n, size)
		start := time.Now()
		res, err := api.Invoke(ctx, payload, 30*time.Second)
		if err != nil || res.Error {
			t.Fatalf("event %d (%d bytes): %v %+v", i, len(payload), err, res)
		}
		if f := failures(t, res.Payload); f != 0 {
			t.Fatalf("event %d: %d failed", i, f)
		}
		took := time.Since(start).Round(time.Millisecond)
		// The summary line is written before the answer, but read from
		// the function's stdout on a goroutine of its own: wait for it.
		waitFor(t, 10*time.Second, func() bool { return strings.Count(logs.String(), `"goMemoryBytes":`) > i })
		p, _ := procs.Load(t.Name())
		sp, err := splitOf(p.(*os.Process).Pid, logs.String())
		if err != nil {
			t.Fatal(err)
		}
		most = most.max(sp)
		t.Logf("event %d: %d records, %.1f MB, answered in %v; after it %v", i, n, float64(len(payload))/1e6, took, sp)
	}
	t.Logf("largest after any event: %v", most)
	peak, _ := sb.PeakBytes()
	kills, _ := sb.OOMKills()
	p, _ := procs.Load(t.Name())
	rss, err := peakRSS(p.(*os.Process).Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("peak memory of the sandbox %.1f MB (page cache included), peak RSS of the function %.1f MB, OOM kills %d",
		float64(peak)/(1<<20), float64(rss)/(1<<20), kills)
	if kills != 0 {
		t.Errorf("%d OOM kills", kills)
	}
	// #20's goal. With the 24 MiB Go limit and librdkafka's queue bounded
	// to a message the peak is 54.6-59.2 MB; 61-68 MB without the bound,
	// 83-94 MB without either.
	if rss > 64<<20 {
		t.Errorf("peak RSS %.1f MB over 20 events, want at most 64 MB", float64(rss)/(1<<20))
	}
	if !strings.Contains(logs.String(), `"msg":"batch relayed"`) {
		t.Errorf("no summary lines")
	}
}

// split is where a function's resident memory goes after a batch: the Go
// runtime's (its summary line's goMemoryBytes), the rest of the anonymous
// memory (librdkafka's C heap, thread stacks), and file pages (the binary).
type split struct{ Go, C, File int64 }

func (s split) max(o split) split {
	return split{max(s.Go, o.Go), max(s.C, o.C), max(s.File, o.File)}
}

func (s split) String() string {
	return fmt.Sprintf("Go %.1f MB, C and the rest %.1f MB, file pages %.1f MB", float64(s.Go)/(1<<20), float64(s.C)/(1<<20), float64(s.File)/(1<<20))
}

// splitOf reads pid's RssAnon and RssFile and the last summary line's
// goMemoryBytes from logs.
func splitOf(pid int, logs string) (split, error) {
	st, err := procStatus(pid)
	if err != nil {
		return split{}, err
	}
	i := strings.LastIndex(logs, `"goMemoryBytes":`)
	if i < 0 {
		return split{}, fmt.Errorf("no goMemoryBytes in the summary lines")
	}
	rest := logs[i+len(`"goMemoryBytes":`):]
	goMem, err := strconv.ParseInt(rest[:strings.IndexAny(rest, ",}")], 10, 64)
	if err != nil {
		return split{}, fmt.Errorf("goMemoryBytes: %w", err)
	}
	return split{Go: goMem, C: st["RssAnon"] - goMem, File: st["RssFile"] + st["RssShmem"]}, nil
}

// TestBinaryAt128MBAnswersInTime: at 7.2% of a CPU, a 6 MB event of
// 10,000 records is answered before its deadline when the broker stalls
// (accepts and never answers), is unreachable, or refuses the credentials,
// and the SQS API the failure policy calls does not answer either.
func TestBinaryAt128MBAnswersInTime(t *testing.T) {
	silent, err := broker.StartSilent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	closed, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	// SQS black-holed, as from a VPC with neither NAT nor endpoint: the
	// failure policy's calls run out their share of the margin.
	sqsSilent, err := broker.StartSilent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqsSilent.Close() })
	lambdaEnv := []string{"RELAY_TOPIC=events", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128", "AWS_REGION=eu-west-1",
		"AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=test-secret", "AWS_ENDPOINT_URL_SQS=http://" + sqsSilent.Addr()}
	pki := newPKI(t)
	scram := startCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", scramUser, scramPassword), kfake.TLS(pki.ServerTLS(false)))
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"stalled", []string{"RELAY_BROKERS=" + silent.Addr(), "RELAY_AUTH=none"}},
		{"unreachable", []string{"RELAY_BROKERS=" + closed, "RELAY_AUTH=none"}},
		{"bad credentials", []string{"RELAY_BROKERS=" + scram.Addrs(), "RELAY_AUTH=scram-sha-512", "RELAY_TLS_CA_FILE=" + pki.CAFile,
			"RELAY_SCRAM_USERNAME=" + scramUser, "RELAY_SCRAM_PASSWORD=not-" + scramPassword}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := sandbox128(t)
			api, _, _ := startFunctionArgv(t, sb.Wrap([]string{binary}), append(tc.env, lambdaEnv...)...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const timeout = 10 * time.Second
			payload := sixMB("d", 10000, 100)
			start := time.Now()
			res, err := api.Invoke(ctx, payload, timeout)
			took := time.Since(start)
			if err != nil || res.Error {
				t.Fatalf("%v %+v", err, res)
			}
			if took > timeout {
				t.Errorf("answered %v after the %v deadline", took-timeout, timeout)
			}
			if f := failures(t, res.Payload); f != 10000 {
				t.Errorf("%d of 10,000 failed", f)
			}
			t.Logf("%s: 10,000 records failed, answered in %v of %v", tc.name, took.Round(time.Millisecond), timeout)
		})
	}
}
