package apache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/integration/apache"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/sqsevent"
)

// BenchmarkRealCluster alternates a relay batch and a raw confluent-kafka-go
// batch of 10,000 × 1 KiB records (the messages the relay maps from the
// same event) on the RF-3 cluster (acks=all, both with the relay's
// producer settings), so both see the same machine, and then times
// kafka-python's send-then-flush per message on the same cluster. It
// reports records/s of each side, relay ÷ raw (median of the pairs) and
// relay ÷ naive.
func BenchmarkRealCluster(b *testing.B) {
	const n, size = 10000, 1024
	ctx := context.Background()
	cfg := benchConfig(b, "bench")
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	h := relay.NewHandler(cfg, p, log)
	ev := event("bench", n, size)
	payload, _ := json.Marshal(ev)
	relayOne := func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, err := h.Invoke(ctx, payload)
		var resp events.SQSEventResponse
		if err != nil || json.Unmarshal(out, &resp) != nil || len(resp.BatchItemFailures) != 0 {
			b.Fatalf("relay batch: %v %s", err, out[:min(len(out), 200)])
		}
	}
	raw := rawProducer(b, cfg, nil)
	msgs := mapped(b, cfg, payload) // the relay's messages: no key, its headers
	dr := make(chan ckafka.Event, n)
	rawOne := func() {
		for i := range msgs {
			for {
				err := raw.Produce(&msgs[i], dr)
				if e, ok := err.(ckafka.Error); ok && e.Code() == ckafka.ErrQueueFull {
					<-dr // a report makes room
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
				break
			}
		}
		for got := 0; got < n; got++ {
			if m := (<-dr).(*ckafka.Message); m.TopicPartition.Error != nil {
				b.Fatal(m.TopicPartition.Error)
			}
		}
	}
	relayOne() // connections and producer ids first
	rawOne()
	var relayT, rawT time.Duration
	var ratios []float64
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		relayOne()
		t1 := time.Now()
		rawOne()
		t2 := time.Now()
		relayT, rawT = relayT+t1.Sub(t0), rawT+t2.Sub(t1)
		ratios = append(ratios, t2.Sub(t1).Seconds()/t1.Sub(t0).Seconds())
	}
	b.StopTimer()
	sort.Float64s(ratios)
	relayRate := float64(n*b.N) / relayT.Seconds()
	b.ReportMetric(relayRate, "relay-rec/s")
	b.ReportMetric(float64(n*b.N)/rawT.Seconds(), "raw-rec/s")
	b.ReportMetric(ratios[len(ratios)/2], "relay/raw")
	out, err := exec.Command("/usr/bin/python3", "naive_producer.py", cluster.Broker(1).Addr(apache.Plaintext), "bench", "200", fmt.Sprint(size)).CombinedOutput()
	if err != nil {
		b.Fatalf("kafka-python (Debian's python3-kafka; make bench installs it): %v\n%s", err, out)
	}
	var naive struct{ PerSecond float64 }
	if err := json.Unmarshal(out, &naive); err != nil {
		b.Fatalf("kafka-python output %s: %v", out, err)
	}
	b.ReportMetric(naive.PerSecond, "naive-rec/s")
	b.ReportMetric(relayRate/naive.PerSecond, "relay/naive")
}

// BenchmarkRealClusterSmall is #20's small batches on the real broker MSK
// runs: relay ÷ raw at 10 and 100 × 1 KiB records (SQS's default batch
// size and ten times it) on the RF-3 cluster with acks=all, where each
// produce request waits for the followers. Raw produces the messages the
// relay maps from the same event, with the relay's settings; raw-flush is
// raw that calls Flush after its last message, as the relay has librdkafka
// send a batch's last messages without waiting out linger.ms. The sides
// take turns going first. It reports relay ÷ each raw side over the whole
// run and the median of the rounds, and each side's time per batch.
func BenchmarkRealClusterSmall(b *testing.B) {
	cfg := benchConfig(b, "bench-small")
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	h := relay.NewHandler(cfg, p, log)
	raw, rawFlush := rawProducer(b, cfg, nil), rawProducer(b, cfg, nil)
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			payload, err := json.Marshal(event("small", n, 1024))
			if err != nil {
				b.Fatal(err)
			}
			relayOne := func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if out, err := h.Invoke(ctx, payload); err != nil || string(out) != `{"batchItemFailures":[]}` {
					b.Fatalf("relay batch: %v %s", err, out)
				}
			}
			msgs := mapped(b, cfg, payload)
			dr := make(chan ckafka.Event, n)
			sides := []func(){
				relayOne,
				func() { produceAll(b, raw, msgs, dr, false) },
				func() { produceAll(b, rawFlush, msgs, dr, true) },
			}
			for _, side := range sides {
				side()
			}
			total := make([]time.Duration, len(sides))
			ratios := [2][]float64{make([]float64, 0, b.N), make([]float64, 0, b.N)}
			b.ResetTimer()
			for i := range b.N {
				var t [3]time.Duration
				for k := range sides {
					j := (i + k) % len(sides)
					t[j] = timed(sides[j])
					total[j] += t[j]
				}
				ratios[0] = append(ratios[0], t[1].Seconds()/t[0].Seconds())
				ratios[1] = append(ratios[1], t[2].Seconds()/t[0].Seconds())
			}
			b.StopTimer()
			median := func(r []float64) float64 { sort.Float64s(r); return r[len(r)/2] }
			b.ReportMetric(total[1].Seconds()/total[0].Seconds(), "relay/raw")
			b.ReportMetric(median(ratios[0]), "relay/raw-median")
			b.ReportMetric(total[2].Seconds()/total[0].Seconds(), "relay/raw-flush")
			b.ReportMetric(median(ratios[1]), "relay/raw-flush-median")
			perBatch := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(perBatch(total[0]), "relay-µs/batch")
			b.ReportMetric(perBatch(total[1]), "raw-µs/batch")
			b.ReportMetric(perBatch(total[2]), "raw-flush-µs/batch")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRealClusterLinger is why linger.ms is 0.5 (relay/kafka): raw
// producers that differ only in linger.ms take turns producing the same
// batch of 10, 100 or 1,000 × 1 KiB records to the RF-3 cluster. It
// reports each one's mean and median time per batch. Not part of make
// bench.
func BenchmarkRealClusterLinger(b *testing.B) {
	cfg := benchConfig(b, "bench-linger")
	lingers := []string{"0", "0.5", "1", "2"}
	prods := make([]*ckafka.Producer, len(lingers))
	for i, l := range lingers {
		prods[i] = rawProducer(b, cfg, ckafka.ConfigMap{"linger.ms": l})
	}
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			payload, err := json.Marshal(event("linger", n, 1024))
			if err != nil {
				b.Fatal(err)
			}
			msgs := mapped(b, cfg, payload)
			dr := make(chan ckafka.Event, n)
			for _, p := range prods {
				produceAll(b, p, msgs, dr, false)
			}
			times := make([][]time.Duration, len(prods))
			b.ResetTimer()
			for i := range b.N {
				for k := range prods {
					j := (i + k) % len(prods)
					times[j] = append(times[j], timed(func() { produceAll(b, prods[j], msgs, dr, false) }))
				}
			}
			b.StopTimer()
			for j, t := range times {
				var sum time.Duration
				for _, d := range t {
					sum += d
				}
				slices.Sort(t)
				b.ReportMetric(float64(sum.Microseconds())/float64(len(t)), "µs/batch-linger"+lingers[j])
				b.ReportMetric(float64(t[len(t)/2].Microseconds()), "p50-µs-linger"+lingers[j])
			}
			b.ReportMetric(0, "ns/op")
		})
	}
}

// benchConfig is the relay's configuration for a new 6-partition topic on
// the cluster's plaintext listeners, with BENCH_PROPS as
// RELAY_KAFKA_PROPERTIES.
func benchConfig(b *testing.B, topic string) relay.Config {
	b.Helper()
	if err := cluster.CreateTopic(context.Background(), topic, 6, nil); err != nil {
		b.Fatal(err)
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"RELAY_BROKERS": cluster.Addrs(apache.Plaintext), "RELAY_TOPIC": topic, "RELAY_AUTH": "none",
			"RELAY_KAFKA_PROPERTIES": os.Getenv("BENCH_PROPS")}[k]
		return v, ok
	})
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// rawProducer is confluent-kafka-go with the relay's settings for cfg and
// props over them, its events discarded; it closes with b.
func rawProducer(b *testing.B, cfg relay.Config, props ckafka.ConfigMap) *ckafka.Producer {
	b.Helper()
	conf := kafka.ConfigMap(cfg)
	conf["go.logs.channel.enable"] = false
	delete(conf, "debug") // the relay's readiness signal
	for k, v := range props {
		conf[k] = v
	}
	p, err := ckafka.NewProducer(&conf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	go func() {
		for range p.Events() {
		}
	}()
	return p
}

// produceAll produces msgs with p and waits for their delivery reports on
// dr, which has room for them all; with flush, it calls Flush after the
// last message, as the relay has librdkafka send them without waiting out
// linger.ms.
func produceAll(b *testing.B, p *ckafka.Producer, msgs []ckafka.Message, dr chan ckafka.Event, flush bool) {
	for i := range msgs {
		if err := p.Produce(&msgs[i], dr); err != nil {
			b.Fatal(err)
		}
	}
	if flush {
		p.Flush(2) // the relay's flushMs
	}
	for range msgs {
		if m := (<-dr).(*ckafka.Message); m.TopicPartition.Error != nil {
			b.Fatal(m.TopicPartition.Error)
		}
	}
}

// timed is how long f took.
func timed(f func()) time.Duration {
	t0 := time.Now()
	f()
	return time.Since(t0)
}

// mapped is payload's records as the relay maps them with cfg, ready for
// confluent-kafka-go.
func mapped(b *testing.B, cfg relay.Config, payload []byte) []ckafka.Message {
	b.Helper()
	recs, errs, err := sqsevent.Decode(payload)
	if err != nil {
		b.Fatal(err)
	}
	m := relay.NewMapper(cfg)
	out := make([]ckafka.Message, len(recs))
	for i := range recs {
		var msg relay.Message
		if errs[i] != nil {
			b.Fatal(errs[i])
		}
		if err := m.Map(&recs[i], &msg); err != nil {
			b.Fatal(err)
		}
		hs := make([]ckafka.Header, len(msg.Headers))
		for j, h := range msg.Headers {
			hs[j] = ckafka.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
		}
		out[i] = ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &cfg.Topic, Partition: ckafka.PartitionAny},
			Key: msg.Key, Value: msg.Value, Headers: hs, Timestamp: msg.Timestamp}
	}
	return out
}
