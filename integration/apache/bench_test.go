package apache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/integration/apache"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
)

// BenchmarkRealCluster alternates a relay batch and a raw confluent-kafka-go
// batch of 10,000 × 1 KiB records on the RF-3 cluster (acks=all, both with
// the relay's producer settings), so both see the same machine, and then
// times kafka-python's send-then-flush per message on the same cluster.
// It reports records/s of each side, relay ÷ raw (median of the pairs) and
// relay ÷ naive.
func BenchmarkRealCluster(b *testing.B) {
	const n, size = 10000, 1024
	ctx := context.Background()
	if err := cluster.CreateTopic(ctx, "bench", 6, nil); err != nil {
		b.Fatal(err)
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"RELAY_BROKERS": cluster.Addrs(apache.Plaintext), "RELAY_TOPIC": "bench", "RELAY_AUTH": "none"}[k]
		return v, ok
	})
	if err != nil {
		b.Fatal(err)
	}
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
	conf := kafka.ConfigMap(cfg)
	raw, err := ckafka.NewProducer(&conf)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	go func() {
		for range raw.Events() {
		}
	}()
	go func() {
		for range raw.Logs() {
		}
	}()
	topic := "bench"
	msgs := make([]ckafka.Message, n)
	for i, m := range ev.Records {
		k := *m.MessageAttributes["k"].StringValue
		msgs[i] = ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
			Key: []byte(k), Value: []byte(m.Body), Headers: []ckafka.Header{{Key: "k", Value: []byte(k)}, {Key: relay.HeaderMessageID, Value: []byte(m.MessageId)}}}
	}
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
