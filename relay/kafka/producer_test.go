package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/mskiam"
)

func testConfig(brokers string) relay.Config {
	return relay.Config{
		Brokers:          []string{brokers},
		Topic:            "events",
		MaxMessageBytes:  relay.DefaultMaxMessageBytes,
		DeadlineMargin:   relay.DefaultDeadlineMargin,
		BrokersDownGrace: relay.DefaultBrokersDownGrace,
		ClientID:         "test",
	}
}

// newTestProducer starts a plaintext kfake cluster with the topic
// "events" in partitions partitions, and a producer for it.
func newTestProducer(t *testing.T, partitions int32) (*broker.Cluster, *Producer) {
	t.Helper()
	c, err := broker.Start(partitions, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p, err := New(testConfig(c.Addrs()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return c, p
}

// produceBatch produces n messages as one batch and waits for it.
func produceBatch(t *testing.T, p *Producer, n int) (relay.Batch, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := p.Start(ctx, n)
	for i := range n {
		if err := b.Add(&relay.Message{Topic: "events", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	errs, cause := b.Wait()
	if cause != nil {
		t.Fatalf("batch-level cause: %v", cause)
	}
	if len(errs) != n {
		t.Fatalf("%d results for %d messages", len(errs), n)
	}
	return b, errs
}

func produceN(t *testing.T, p *Producer, n int) []error {
	t.Helper()
	_, errs := produceBatch(t, p, n)
	return errs
}

func TestFatalErrorReplacesProducer(t *testing.T) {
	c, p := newTestProducer(t, 1)

	for _, err := range produceN(t, p, 10) {
		if err != nil {
			t.Fatal(err)
		}
	}
	old := p.cur
	old.kp.TestFatalError(kafka.ErrOutOfOrderSequenceNumber, "injected by the test")
	deadline := time.Now().Add(10 * time.Second)
	for old.fatalErr() == nil {
		if time.Now().After(deadline) {
			t.Fatal("fatal error never reached the instance")
		}
		time.Sleep(10 * time.Millisecond)
	}

	for _, err := range produceN(t, p, 10) {
		if err != nil {
			t.Fatalf("batch after the fatal error: %v", err)
		}
	}
	if p.cur == old {
		t.Fatal("the producer that raised the fatal error still serves batches")
	}
	select {
	case <-old.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the old producer was not closed")
	}
	if n := c.Count("events"); n != 20 {
		t.Errorf("%d records, want 20", n)
	}
}

func TestReasonFor(t *testing.T) {
	for _, tc := range []struct {
		code kafka.ErrorCode
		want string
	}{
		{kafka.ErrMsgSizeTooLarge, "message_size_too_large"},
		{kafka.ErrUnknownTopicOrPart, "unknown_topic_or_partition"},
		{kafka.ErrPurgeQueue, "purged"},
		{kafka.ErrMsgTimedOut, "timed_out"},
	} {
		if got := reasonFor(kafka.NewError(tc.code, "", false)); got != tc.want {
			t.Errorf("reasonFor(%v) = %q, want %q", tc.code, got, tc.want)
		}
	}
}

// iamBroker starts a TLS kfake broker with the topic "events" that checks
// MSK IAM tokens signed with the key AKIDTEST.
func iamBroker(t *testing.T) (*broker.Cluster, *broker.PKI) {
	t.Helper()
	pki, err := broker.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v := &broker.IAM{Region: "eu-west-1", Keys: map[string]string{"AKIDTEST": "test-secret"}}
	c, err := broker.Start(1, []string{"events"}, append(v.Opts(), kfake.TLS(pki.ServerTLS(false)))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	v.Install(c.Cluster)
	return c, pki
}

// iamProducer is a producer on c with RELAY_AUTH=iam and tokens.
func iamProducer(t *testing.T, c *broker.Cluster, pki *broker.PKI, tokens TokenSource) *Producer {
	t.Helper()
	cfg := testConfig(c.Addrs())
	cfg.Auth, cfg.AWSRegion, cfg.TLSCAFile = relay.AuthIAM, "eu-west-1", pki.CAFile
	p, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), WithTokenSource(tokens))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// countingTokens signs real tokens and counts them.
type countingTokens struct {
	inner TokenSource
	n     atomic.Int32
}

func (c *countingTokens) Token(ctx context.Context) (string, time.Time, error) {
	c.n.Add(1)
	return c.inner.Token(ctx)
}

func (c *countingTokens) Principal() string { return c.inner.Principal() }

// TestStaleTokenRefreshedBeforeBatch: when the token librdkafka holds has
// expired (a sandbox frozen past its lifetime; here its recorded expiry is
// moved into the past), Start signs a new one before the batch produces,
// without waiting for librdkafka's timer.
func TestStaleTokenRefreshedBeforeBatch(t *testing.T) {
	c, pki := iamBroker(t)
	tokens := &countingTokens{inner: mskiam.NewWithCredentials("eu-west-1", credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""), "test-role")}
	p := iamProducer(t, c, pki, tokens)
	for _, err := range produceN(t, p, 5) {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := p.cur
	s.lockToken(context.Background())
	s.tokenExpiry = time.Now().Add(-time.Second)
	s.unlockToken()
	before := tokens.n.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := p.Start(ctx, 1)
	if tokens.n.Load() != before+1 {
		t.Fatalf("Start signed %d tokens, want 1 before the batch", tokens.n.Load()-before)
	}
	if err := b.Add(&relay.Message{Topic: "events", Value: []byte("after the thaw")}); err != nil {
		t.Fatal(err)
	}
	if errs, cause := b.Wait(); cause != nil || errs[0] != nil {
		t.Fatalf("batch after the refresh: %v %v", errs, cause)
	}
	s.lockToken(context.Background())
	fresh := time.Until(s.tokenExpiry) > 10*time.Minute
	s.unlockToken()
	if !fresh {
		t.Errorf("the token librdkafka holds is not fresh after Start")
	}
}

// TestQueueKBytes: below 512 MB librdkafka's queue holds the largest
// message and no more; above, and outside Lambda, its default stands, and
// RELAY_KAFKA_PROPERTIES wins over both.
func TestQueueKBytes(t *testing.T) {
	for _, tc := range []struct {
		memoryMB, maxMessage int
		props                map[string]string
		want                 any
	}{
		{128, 1000000, nil, 1233}, // (1,000,000 + 262,144) / 1024, rounded up
		{256, 5000000, nil, 5139},
		{511, 1000000, nil, 1233},
		{512, 1000000, nil, nil},
		{1769, 1000000, nil, nil},
		{0, 1000000, nil, nil},
		{128, 1000000, map[string]string{"queue.buffering.max.kbytes": "65536"}, "65536"},
	} {
		c := testConfig("b-1:9098")
		c.FunctionMemoryMB, c.MaxMessageBytes, c.KafkaProperties = tc.memoryMB, tc.maxMessage, tc.props
		if got := ConfigMap(c)["queue.buffering.max.kbytes"]; fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%d MB, %d-byte messages, %v: queue.buffering.max.kbytes = %v, want %v", tc.memoryMB, tc.maxMessage, tc.props, got, tc.want)
		}
	}
}

// TestConfigMap pins the settings docs/design.md's producer table promises and
// the security settings of each RELAY_AUTH mode.
func TestConfigMap(t *testing.T) {
	c := testConfig("b-1:9098")
	c.Auth, c.TLSCAFile = relay.AuthIAM, "/ca.pem"
	c.KafkaProperties = map[string]string{"linger.ms": "7"}
	m := ConfigMap(c)
	for k, want := range map[string]any{
		"enable.idempotence": true, "acks": "all", "partitioner": "murmur2_random", "linger.ms": "7",
		"message.timeout.ms": 900000, "socket.keepalive.enable": true, "connections.max.idle.ms": 300000,
		"message.max.bytes": 1262144, "go.delivery.report.fields": "none", "client.id": "test",
		"security.protocol": "sasl_ssl", "sasl.mechanisms": "OAUTHBEARER", "ssl.ca.location": "/ca.pem",
		"ssl.endpoint.identification.algorithm": "https",
	} {
		if got := m[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	for _, tc := range []struct {
		auth string
		want map[string]string
	}{
		{relay.AuthNone, map[string]string{"security.protocol": "plaintext"}},
		{relay.AuthSCRAM, map[string]string{"security.protocol": "sasl_ssl", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "u", "ssl.ca.location": "probe"}},
		{relay.AuthMTLS, map[string]string{"security.protocol": "ssl", "ssl.certificate.location": "/c.pem", "ssl.key.location": "/k.pem"}},
	} {
		c := testConfig("b-1:9092")
		c.Auth, c.SCRAMUsername, c.SCRAMPassword, c.TLSCertFile, c.TLSKeyFile = tc.auth, "u", "p", "/c.pem", "/k.pem"
		m := ConfigMap(c)
		for k, want := range tc.want {
			if fmt.Sprint(m[k]) != want {
				t.Errorf("%s: %s = %v, want %s", tc.auth, k, m[k], want)
			}
		}
	}
}

// TestLatencies checks the produce latency of each acknowledged message:
// one per message, each more than zero (the broker's round trip) and no
// longer than the whole batch, though messages share clock readings.
func TestLatencies(t *testing.T) {
	_, p := newTestProducer(t, 3)
	produceN(t, p, 10) // connection and producer id first

	const n = 1000
	start := time.Now()
	b, _ := produceBatch(t, p, n)
	wall := time.Since(start)
	lat := b.Latencies()
	if len(lat) != n {
		t.Fatalf("%d latencies for %d acknowledged messages", len(lat), n)
	}
	for i, l := range lat {
		if l <= 0 || l > wall {
			t.Fatalf("latency %d is %v; the batch took %v", i, l, wall)
		}
	}
}

// TestTokenWaitEndsAtDeadline: with a role to assume and an STS endpoint
// that accepts connections and never answers (a VPC without a NAT or an
// sts endpoint), a batch ends at its produce deadline, every message
// failed, with a cause that names the token and where it hangs.
func TestTokenWaitEndsAtDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c) // read nothing, answer nothing
		}
	}()
	t.Setenv("AWS_ENDPOINT_URL_STS", "http://"+ln.Addr().String())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	c, pki := iamBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tokens, err := mskiam.New(ctx, "eu-west-1", "arn:aws:iam::123456789012:role/relay")
	if err != nil {
		t.Fatal(err)
	}
	p := iamProducer(t, c, pki, tokens)
	// Twice: the first batch waits behind librdkafka's own refresh, the
	// second signs itself.
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		deadline, _ := ctx.Deadline()
		b := p.Start(ctx, 3)
		added := 0
		for i := range 3 {
			if b.Add(&relay.Message{Topic: "events", Value: []byte(fmt.Sprint(i))}) == nil {
				added++
			}
		}
		errs, cause := b.Wait()
		cancel()
		if late := time.Since(deadline); late > 300*time.Millisecond {
			t.Errorf("round %d: answered %v after the produce deadline", round, late)
		}
		for _, err := range errs {
			if err == nil {
				t.Errorf("round %d: a message reported acknowledged without a token", round)
			}
		}
		if cause == nil || relay.ReasonOf(cause) != relay.ReasonAuthFailed || !strings.Contains(cause.Error(), "sts interface endpoint") ||
			!strings.Contains(cause.Error(), "arn:aws:iam::123456789012:role/relay") {
			t.Errorf("round %d: cause %v (%d added), want an auth failure naming the role and STS", round, cause, added)
		}
	}
}

// TestCheckProperties: only tuning properties pass; each refusal names the
// property and why, never the value.
func TestCheckProperties(t *testing.T) {
	if err := CheckProperties(map[string]string{"linger.ms": "5", "compression.type": "lz4", "debug": "broker", "socket.keepalive.enable": "false"}); err != nil {
		t.Errorf("tuning properties refused: %v", err)
	}
	for prop, want := range map[string]string{
		"delivery.report.only.error":           "reported failed",
		"enable.ssl.certificate.verification":  "always verifies",
		"enable.sasl.oauthbearer.unsecure.jwt": "signer only",
		"partitioner":                          "Java clients",
		"message.timeout.ms":                   "function's deadline",
		"delivery.timeout.ms":                  "function's deadline",
		"acks":                                 "always all",
		"enable.idempotence":                   "always true",
		"bootstrap.servers":                    "RELAY_BROKERS",
		"sasl.password":                        "RELAY_AUTH",
		"ssl.key.location":                     "RELAY_AUTH",
		"go.events.channel.size":               "delivery tracking",
		"max.in.flight":                        "only tuning properties",
		"statistics.interval.ms":               "only tuning properties",
	} {
		err := CheckProperties(map[string]string{prop: "secret-value"})
		if err == nil || !strings.Contains(err.Error(), prop+" cannot be set: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want it refused with %q", prop, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret-value") {
			t.Errorf("%s: the error shows the value", prop)
		}
		c := testConfig("127.0.0.1:9092")
		c.KafkaProperties = map[string]string{prop: "1"}
		if _, err := New(c, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Errorf("New accepted %s", prop)
		}
	}
}

func TestWithDebugContext(t *testing.T) {
	for _, tc := range []struct {
		set  kafka.ConfigValue
		want string
	}{
		{nil, "eos"},
		{"", "eos"},
		{"broker", "broker,eos"},
		{"broker, eos", "broker, eos"},
		{"all", "all"},
		{"eosx", "eosx,eos"},
	} {
		if got := withDebugContext(tc.set, "eos"); got != tc.want {
			t.Errorf("withDebugContext(%q) = %q, want %q", tc.set, got, tc.want)
		}
	}
}

// TestReady checks that Ready returns once the producer id is assigned
// and a batch then succeeds, and that with no broker listening it returns
// at its deadline, saying why.
func TestReady(t *testing.T) {
	_, p := newTestProducer(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Ready(ctx, "events"); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for i, err := range produceN(t, p, 30) {
		if err != nil {
			t.Fatalf("message %d after Ready: %v", i, err)
		}
	}

	addr, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	down, err := New(testConfig(addr), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(down.Close)
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = down.Ready(ctx, "events")
	if err == nil || !strings.Contains(err.Error(), "no producer id from the brokers") {
		t.Fatalf("Ready with no broker: %v", err)
	}
	if ctx.Err() == nil {
		t.Errorf("Ready returned before its deadline: %v", err)
	}
	t.Logf("Ready with no broker: %v", err)
}

// TestBatchEndSendsWithoutLinger: once a batch's last message is handed
// over, librdkafka sends it without waiting out linger.ms (sendNow). With
// linger.ms at a minute and each batch's deadline at 1 s, a batch is
// acknowledged only if its end sent it. The flush is held 200 ms here, not
// 1 ms: a loaded machine may run a broker thread later than 1 ms after it
// is woken (22% of batches under eight busy loops on two cores), which in
// production costs nothing, since the linger is over by then, but here
// would cost the minute.
func TestBatchEndSendsWithoutLinger(t *testing.T) {
	held := flushMs
	flushMs = 200
	t.Cleanup(func() { flushMs = held })
	c, err := broker.Start(3, []string{"events"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := testConfig(c.Addrs())
	cfg.KafkaProperties = map[string]string{"linger.ms": "60000"}
	p, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Ready(ctx, "events"); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	for round := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		b := p.Start(ctx, 10)
		for i := range 10 {
			if err := b.Add(&relay.Message{Topic: "events", Value: []byte(fmt.Sprint(i))}); err != nil {
				t.Fatalf("round %d: Add %d: %v", round, i, err)
			}
		}
		errs, cause := b.Wait()
		cancel()
		if cause != nil {
			t.Fatalf("round %d: batch-level cause: %v", round, cause)
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: message %d: %v (sent only after linger.ms?)", round, i, err)
			}
		}
	}
}

// TestRecycledBatches: batches that take the last one's buffers (Recycle)
// report their own messages: sizes that shrink and grow across the
// opaque slots' 1,024-message chunks, each message acknowledged once, and
// the slots reused rather than added to.
func TestRecycledBatches(t *testing.T) {
	_, p := newTestProducer(t, 3)
	maxSlots := 0
	for _, n := range []int{1500, 10, 3000, 1, 2048} {
		b, errs := produceBatch(t, p, n)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%d messages: message %d: %v", n, i, err)
			}
		}
		if got := len(b.Latencies()); got != n {
			t.Errorf("%d messages: %d latencies", n, got)
		}
		kb := b.(*batch)
		maxSlots = max(maxSlots, (n+slotChunk-1)/slotChunk)
		if len(kb.slots) != maxSlots {
			t.Errorf("%d messages: %d slot chunks, want %d (the largest batch's so far)", n, len(kb.slots), maxSlots)
		}
		kb.Recycle()
	}
}

// TestRecycleKeepsAChannelReportsMayReach: a batch with reports still to
// come, or unread, keeps its delivery channel and slots out of the next
// batch, which would count them for its own messages.
func TestRecycleKeepsAChannelReportsMayReach(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pending int
		unread  int
		reuse   bool
	}{
		{"all reported and read", 0, 0, true},
		{"reports to come", 2, 0, false},
		{"reports unread", 0, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &instance{}
			r := &batch{s: s, done: true, pending: tc.pending, dr: make(chan kafka.Event, 4), slots: [][]int32{make([]int32, slotChunk)},
				state: []uint8{reported}, errs: []error{relay.ErrNoReport}}
			for range tc.unread {
				r.dr <- &kafka.Message{}
			}
			r.Recycle()
			sp := s.spare.Load()
			if sp == nil {
				t.Fatal("nothing kept")
			}
			if got := sp.dr != nil; got != tc.reuse {
				t.Errorf("channel kept: %v, want %v", got, tc.reuse)
			}
			if got := sp.slots != nil; got != tc.reuse {
				t.Errorf("slots kept: %v, want %v", got, tc.reuse)
			}
			if len(sp.state) != 0 || cap(sp.errs) != 1 || r.errs[0] != nil {
				t.Errorf("kept state %v, errors %v: want them emptied", sp.state, r.errs)
			}
		})
	}
}

// TestBrokersDownNamesALaterCause: librdkafka's "all brokers down" and the
// error that says why can be handed over in either order (a batch's flush
// polls events beside the producer's poller); either way the batch's
// failure names the cause and its hint.
func TestBrokersDownNamesALaterCause(t *testing.T) {
	resolve := kafka.NewError(kafka.ErrResolve, "b-1.example.invalid:9098/bootstrap: Failed to resolve 'b-1.example.invalid:9098': Name or service not known", false)
	down := kafka.NewError(kafka.ErrAllBrokersDown, "1/1 brokers are down", false)
	for _, tc := range []struct {
		name   string
		events []kafka.Error
	}{
		{"cause first", []kafka.Error{resolve, down}},
		{"cause after", []kafka.Error{down, resolve}},
		{"cause after, repeated", []kafka.Error{down, resolve, down, resolve}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			s := &instance{log: slog.New(slog.NewJSONHandler(&logs, nil)), batches: map[*batch]struct{}{}}
			for _, e := range tc.events {
				s.onError(e)
			}
			tr := s.currentTrouble()
			if tr == nil || tr.reason != relay.ReasonBrokersDown {
				t.Fatalf("trouble %+v, want brokers_down", tr)
			}
			for _, want := range []string{"Failed to resolve", "hint: the broker's name does not resolve"} {
				if !strings.Contains(tr.err.Error(), want) {
					t.Errorf("the batch's cause %q does not say %q", tr.err, want)
				}
			}
			if !strings.Contains(logs.String(), "the broker's name does not resolve") {
				t.Errorf("logs do not give the hint:\n%s", logs.String())
			}
		})
	}
}
