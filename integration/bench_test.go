package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/faultproxy"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

const benchBody = 1024

// benchEvent is an SQS event of n records with 1 KiB bodies and two
// attributes, as Lambda would deliver it.
func benchEvent(n int) events.SQSEvent {
	body, sent := strings.Repeat("x", benchBody), sentNow()
	var ev events.SQSEvent
	for i := range n {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId:      fmt.Sprintf("%08d-0000-4000-8000-000000000000", i),
			Body:           body,
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events",
			Attributes:     map[string]string{"SentTimestamp": sent, "ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{
				"type":   {DataType: "String", StringValue: ptr("order.paid")},
				"tenant": {DataType: "String", StringValue: ptr(fmt.Sprintf("t-%d", i%16))},
			},
		})
	}
	return ev
}

func ptr(s string) *string { return &s }

// sentNow is a SentTimestamp of now: an older one would have the relay warn
// on every batch that records predate the topic's retention, a cost a
// fresh batch does not pay.
func sentNow() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }

// benchBroker starts a broker for one side of a benchmark; if requests is
// not nil, it counts the produce requests the broker receives.
func benchBroker(b *testing.B, requests *atomic.Int64) *broker.Cluster {
	b.Helper()
	// Blackholed: offsets and idempotent sequences as usual, bytes dropped,
	// so the broker's memory does not grow with b.N.
	c, err := broker.Start(3, []string{"events"}, kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	if requests != nil {
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			requests.Add(1)
			return nil, nil, false // counted, then handled as usual
		})
	}
	return c
}

// benchConfig is the relay's configuration for the benchmarks; BENCH_PROPS
// (RELAY_KAFKA_PROPERTIES syntax) tries other librdkafka settings on both
// the relay and the raw baseline.
func benchConfig(b *testing.B, brokers string) relay.Config {
	b.Helper()
	cfg, err := benchConfigFor(brokers)
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchConfigFor is benchConfig outside a benchmark: for the raw side's
// own process.
func benchConfigFor(brokers string) (relay.Config, error) {
	env := map[string]string{"RELAY_BROKERS": brokers, "RELAY_TOPIC": "events", "RELAY_AUTH": "none", "RELAY_KAFKA_PROPERTIES": os.Getenv("BENCH_PROPS")}
	return relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

// batchSizes are the batch sizes the throughput benchmarks run at.
var batchSizes = []int{10, 100, 1000, 10000}

// BenchmarkRelay is an n × 1 KiB batch through the handler: decoding,
// mapping, producing, waiting for every delivery report, the response.
func BenchmarkRelay(b *testing.B) {
	for _, n := range batchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) { benchRate(b, n, relayBatch(b, n, benchBroker(b, nil).Addrs())) })
	}
}

// benchRate runs batch b.N times after one untimed run (connection,
// metadata, producer id: not part of the steady state) and reports
// records/s for batches of n records.
func benchRate(b *testing.B, n int, batch func()) {
	batch()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		batch()
	}
	b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// relayBatch returns a function that relays one n-record batch through
// the handler to brokers (benchBroker's, for a broker of its own).
func relayBatch(b *testing.B, n int, brokers string) func() {
	cfg := benchConfig(b, brokers)
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	h := relay.NewHandler(cfg, p, log)
	payload, err := json.Marshal(benchEvent(n))
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := h.Invoke(ctx, payload)
		if err != nil || string(out) != `{"batchItemFailures":[]}` {
			b.Fatalf("invoke: %s %v", out, err)
		}
	}
}

// BenchmarkRawProduce is the baseline: confluent-kafka-go producing the
// same messages (value and headers as the relay maps them) with the same
// settings, asynchronously, waiting on delivery reports.
func BenchmarkRawProduce(b *testing.B) {
	for _, n := range batchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) { benchRate(b, n, rawBatch(b, n, benchBroker(b, nil).Addrs())) })
	}
}

// rawBatch returns a function that produces n messages with
// confluent-kafka-go to brokers and waits for their delivery reports.
func rawBatch(b *testing.B, n int, brokers string) func() {
	kp, msgs := rawProducer(b, n, brokers)
	dr := make(chan ckafka.Event, n)
	return func() {
		if err := produceRaw(kp, msgs, dr); err != nil {
			b.Fatal(err)
		}
	}
}

// rawFlushBatch is rawBatch that flushes once every message is handed
// over, as the relay does (relay/kafka's sendNow): Flush on a goroutine,
// the delivery reports read here. It is the baseline for the relay's own
// work at small batches, where rawBatch waits out linger.ms and the relay
// does not. (Flush called in line takes at least a millisecond: its poll
// waits that long when the producer's poller takes the reports first.)
func rawFlushBatch(b *testing.B, n int, brokers string) func() {
	kp, msgs := rawProducer(b, n, brokers)
	dr := make(chan ckafka.Event, n)
	var flushes sync.WaitGroup
	b.Cleanup(flushes.Wait) // before rawProducer's Close
	flush := func() {
		flushes.Add(1)
		go func() {
			defer flushes.Done()
			kp.Flush(2) // the relay's flushMs
		}()
	}
	return func() {
		if err := produceRawThen(kp, msgs, dr, flush); err != nil {
			b.Fatal(err)
		}
	}
}

// produceRaw produces msgs to topic events and waits for their delivery
// reports on dr, which has room for them all.
func produceRaw(kp *ckafka.Producer, msgs []relay.Message, dr chan ckafka.Event) error {
	return produceRawThen(kp, msgs, dr, nil)
}

// produceRawThen is produceRaw that calls afterLast, if not nil, once the
// last message is handed over.
func produceRawThen(kp *ckafka.Producer, msgs []relay.Message, dr chan ckafka.Event, afterLast func()) error {
	topic := "events"
	for i := range msgs {
		if err := kp.Produce(rawMessage(&msgs[i], &topic), dr); err != nil {
			return err
		}
	}
	if afterLast != nil {
		afterLast()
	}
	var failed error
	for range msgs {
		if m := (<-dr).(*ckafka.Message); m.TopicPartition.Error != nil && failed == nil {
			failed = m.TopicPartition.Error
		}
	}
	return failed
}

// BenchmarkRelayVsRaw alternates a relay batch and a raw batch of 10,000
// records, so that both see the same machine: on a shared 2-core host the
// rate of either drifts by ±15% between runs a minute apart, which
// separate benchmarks turn into noise in their ratio. It also reports the
// process's CPU time per record on each side (both are CPU-bound there),
// and how many produce requests librdkafka sent per batch.
func BenchmarkRelayVsRaw(b *testing.B) {
	const n = 10000
	var relayReqs, rawReqs atomic.Int64
	relayOne, rawOne := relayBatch(b, n, benchBroker(b, &relayReqs).Addrs()), rawBatch(b, n, benchBroker(b, &rawReqs).Addrs())
	relayOne()
	rawOne()
	relayReqs.Store(0)
	rawReqs.Store(0)
	b.ResetTimer()
	relayT, rawT := alternate(b, relayOne, rawOne)
	records := float64(b.N * n)
	b.ReportMetric(records/relayT.wall.Seconds(), "relay-records/s")
	b.ReportMetric(records/rawT.wall.Seconds(), "raw-records/s")
	b.ReportMetric(rawT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw")
	b.ReportMetric(float64(relayT.cpu.Nanoseconds())/records, "relay-cpu-ns/record")
	b.ReportMetric(float64(rawT.cpu.Nanoseconds())/records, "raw-cpu-ns/record")
	b.ReportMetric(float64(relayReqs.Load())/float64(b.N), "relay-requests/batch")
	b.ReportMetric(float64(rawReqs.Load())/float64(b.N), "raw-requests/batch")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRelayVsRawSizes is BenchmarkRelayVsRaw at SQS's default batch
// size (10) and at the sizes around the handler's pipelining threshold
// (pipelineMinBytes: 512 KiB, about 370 of these records), where its
// choice was measured, with each side's wall-clock and process CPU time
// per batch. A third side, raw-flush, is raw that calls Flush after its
// last message as the relay does (relay/kafka's sendNow): relay ÷
// raw-flush is the relay's own cost where relay ÷ raw also counts the
// linger.ms raw waits out. It is not part of make bench: go test -run '^$'
// -bench RelayVsRawSizes -benchtime 400x ./integration/
func BenchmarkRelayVsRawSizes(b *testing.B) {
	for _, n := range []int{10, 100, 300, 1000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			var relayReqs, rawReqs atomic.Int64
			relayOne, rawOne := relayBatch(b, n, benchBroker(b, &relayReqs).Addrs()), rawBatch(b, n, benchBroker(b, &rawReqs).Addrs())
			flushOne := rawFlushBatch(b, n, benchBroker(b, nil).Addrs())
			relayOne()
			rawOne()
			flushOne()
			relayReqs.Store(0)
			rawReqs.Store(0)
			b.ResetTimer()
			t := rotate(b, relayOne, rawOne, flushOne)
			relayT, rawT, flushT := t[0], t[1], t[2]
			b.ReportMetric(float64(relayReqs.Load())/float64(b.N), "relay-requests/batch")
			b.ReportMetric(float64(rawReqs.Load())/float64(b.N), "raw-requests/batch")
			perBatch := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(rawT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw")
			b.ReportMetric(flushT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw-flush")
			b.ReportMetric(perBatch(relayT.wall), "relay-µs/batch")
			b.ReportMetric(perBatch(rawT.wall), "raw-µs/batch")
			b.ReportMetric(perBatch(flushT.wall), "raw-flush-µs/batch")
			b.ReportMetric(perBatch(relayT.cpu), "relay-cpu-µs/batch")
			b.ReportMetric(perBatch(rawT.cpu), "raw-cpu-µs/batch")
			b.ReportMetric(perBatch(flushT.cpu), "raw-flush-cpu-µs/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRelayVsRawRTT is BenchmarkRelayVsRawSizes at the small batch
// sizes with a round trip to the brokers like a cluster's instead of
// loopback's 0.1-0.3 ms: each side's brokers sit behind the fault proxy,
// which delays every byte by rttMs/2 each way. The relay's own work per
// batch (decoding, mapping, the response, the log line) is the same; the
// round trip it is set beside is not. It is not part of make bench:
// go test -run '^$' -bench RelayVsRawRTT -benchtime 400x ./integration/
func BenchmarkRelayVsRawRTT(b *testing.B) {
	const rttMs = 2 // acks=all on MSK: the leader waits for followers in other AZs
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			delayed := func() string {
				c, err := faultproxy.Start(3, 3, []string{"events"}, kfake.BlackholeProduce())
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(c.Close)
				for _, dir := range []string{"upstream", "downstream"} {
					spec := fmt.Sprintf(`{"type":"latency","stream":%q,"attributes":{"latency":%d}}`, dir, rttMs/2)
					if err := c.AddToxic("rtt-"+dir, spec); err != nil {
						b.Fatal(err)
					}
				}
				return c.Addrs()
			}
			relayOne, rawOne := relayBatch(b, n, delayed()), rawBatch(b, n, delayed())
			relayOne()
			rawOne()
			b.ResetTimer()
			relayT, rawT := alternate(b, relayOne, rawOne)
			perBatch := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(b.N) }
			b.ReportMetric(rawT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw")
			b.ReportMetric(perBatch(relayT.wall), "relay-µs/batch")
			b.ReportMetric(perBatch(rawT.wall), "raw-µs/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// alternate runs b.N relay batches and b.N raw batches, alternating which
// goes first so that neither always follows the other, and times each
// side.
func alternate(b *testing.B, relayOne, rawOne func()) (relayT, rawT sides) {
	t := rotate(b, relayOne, rawOne)
	return t[0], t[1]
}

// rotate runs b.N batches of each side, in turn, starting each round with
// the next side, and times each side.
func rotate(b *testing.B, batches ...func()) []sides {
	t := make([]sides, len(batches))
	for i := range b.N {
		for k := range batches {
			j := (i + k) % len(batches)
			t[j].time(batches[j])
		}
	}
	return t
}

// sides accumulates the wall-clock and process CPU time of one side's
// batches.
type sides struct{ wall, cpu time.Duration }

func (s *sides) time(batch func()) {
	c0, t0 := processCPU(), time.Now()
	batch()
	s.wall += time.Since(t0)
	s.cpu += processCPU() - c0
}

// processCPU is the user and system time of this process, every thread.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNaiveProduce is the pattern of many Lambda examples: produce a
// message, then Flush, for each message. Its cost is per message, so it
// runs at the two smallest sizes only (1,000 records would take a minute).
func BenchmarkNaiveProduce(b *testing.B) {
	for _, n := range batchSizes[:2] {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			kp, msgs := rawProducer(b, n, benchBroker(b, nil).Addrs())
			topic := "events"
			dr := make(chan ckafka.Event, 1)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				for i := range msgs {
					if err := kp.Produce(rawMessage(&msgs[i], &topic), dr); err != nil {
						b.Fatal(err)
					}
					kp.Flush(10000)
					if ev := <-dr; ev.(*ckafka.Message).TopicPartition.Error != nil {
						b.Fatal(ev)
					}
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "records/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func rawProducer(b *testing.B, n int, brokers string) (*ckafka.Producer, []relay.Message) {
	b.Helper()
	kp, err := newRawProducer(brokers)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(kp.Close)
	return kp, mappedMessages(b, benchEvent(n))
}

// newRawProducer is confluent-kafka-go with the relay's settings for
// brokers, its events read and dropped.
func newRawProducer(brokers string) (*ckafka.Producer, error) {
	cfg, err := benchConfigFor(brokers)
	if err != nil {
		return nil, err
	}
	conf := kafka.ConfigMap(cfg)
	conf["go.logs.channel.enable"] = false
	delete(conf, "debug") // the relay's readiness signal; raw has no use for it
	kp, err := ckafka.NewProducer(&conf)
	if err != nil {
		return nil, err
	}
	go func() {
		for range kp.Events() {
		}
	}()
	return kp, nil
}

func rawMessage(m *relay.Message, topic *string) *ckafka.Message {
	hs := make([]ckafka.Header, len(m.Headers))
	for j, h := range m.Headers {
		hs[j] = ckafka.Header{Key: h.Key, Value: h.Value}
	}
	return &ckafka.Message{
		TopicPartition: ckafka.TopicPartition{Topic: topic, Partition: ckafka.PartitionAny},
		Value:          m.Value, Headers: hs, Timestamp: m.Timestamp,
	}
}

func mappedMessages(b *testing.B, ev events.SQSEvent) []relay.Message {
	b.Helper()
	msgs, err := mapEvent(ev)
	if err != nil {
		b.Fatal(err)
	}
	return msgs
}

// mapEvent is ev's records as the relay maps them.
func mapEvent(ev events.SQSEvent) ([]relay.Message, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	recs, errs, err := sqsevent.Decode(payload)
	if err != nil {
		return nil, err
	}
	m := relay.NewMapper(relay.Config{Topic: "events", MaxMessageBytes: relay.DefaultMaxMessageBytes})
	msgs := make([]relay.Message, len(recs))
	for i := range recs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if err := m.Map(&recs[i], &msgs[i]); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}
