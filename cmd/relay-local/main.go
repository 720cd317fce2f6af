// Command relay-local runs the relay's handler end to end on embedded
// defaults: an in-process Kafka-protocol broker, a generated SQS batch with
// a few bad records, and a real librdkafka producer. It prints the batch
// response and what landed in Kafka. `make run` runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay-local:", err)
		os.Exit(1)
	}
}

func run() error {
	c, err := broker.Start(3, []string{"events", "audit"})
	if err != nil {
		return err
	}
	defer c.Close()

	env := map[string]string{
		"RELAY_BROKERS":           c.Addrs(),
		"RELAY_TOPIC":             "events",
		"RELAY_AUTH":              "none",
		"RELAY_TOPIC_ATTRIBUTE":   "route",
		"RELAY_ALLOWED_TOPICS":    "audit",
		"RELAY_KEY_ATTRIBUTE":     "customer",
		"RELAY_MAX_MESSAGE_BYTES": "4096",
	}
	fmt.Println("configuration:")
	for _, k := range []string{"RELAY_BROKERS", "RELAY_TOPIC", "RELAY_AUTH", "RELAY_TOPIC_ATTRIBUTE", "RELAY_ALLOWED_TOPICS", "RELAY_KEY_ATTRIBUTE", "RELAY_MAX_MESSAGE_BYTES"} {
		fmt.Printf("  %s=%s\n", k, env[k])
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	p, err := kafka.New(cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	h := relay.NewHandler(cfg, p, log)

	payload, err := json.Marshal(sampleBatch())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "local-1"})
	fmt.Printf("\ninvoking the handler with %d records (logs on stderr)...\n", len(sampleBatch().Records))
	resp, err := h.Invoke(ctx, payload)
	if err != nil {
		return fmt.Errorf("invoke: %w", err)
	}
	fmt.Printf("\nbatch response (records SQS will retry):\n  %s\n", resp)

	for _, topic := range []string{"events", "audit"} {
		recs, err := c.Records(topic, 10*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("\nin Kafka topic %q: %d records\n", topic, len(recs))
		for _, r := range recs {
			id := ""
			for _, hd := range r.Headers {
				if hd.Key == relay.HeaderMessageID {
					id = string(hd.Value)
				}
			}
			val := string(r.Value)
			if len(val) > 40 {
				val = val[:40] + "…"
			}
			fmt.Printf("  p%d@%-3d key=%-8q %s=%-10s %d headers  %s\n", r.Partition, r.Offset, r.Key, relay.HeaderMessageID, id, len(r.Headers), val)
		}
	}
	return nil
}

// sampleBatch is 20 records: most good, some routed to the audit topic,
// and three bad ones that must come back as failures.
func sampleBatch() events.SQSEvent {
	var ev events.SQSEvent
	for i := range 20 {
		m := events.SQSMessage{
			MessageId:      fmt.Sprintf("msg-%02d", i),
			Body:           fmt.Sprintf(`{"order":%d,"status":"paid"}`, i),
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:orders",
			Attributes:     map[string]string{"SentTimestamp": fmt.Sprint(time.Now().UnixMilli()), "ApproximateReceiveCount": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{
				"customer": {DataType: "String", StringValue: ptr(fmt.Sprintf("c-%d", i%4))},
			},
		}
		switch i {
		case 5:
			m.Body = strings.Repeat("x", 5000) // oversized
		case 9:
			m.MessageAttributes["route"] = events.SQSMessageAttribute{DataType: "String", StringValue: ptr("payroll")} // off the allow-list
		case 13:
			m.MessageAttributes["sig"] = events.SQSMessageAttribute{DataType: "Binary"} // Binary without a value
		case 3, 17:
			m.MessageAttributes["route"] = events.SQSMessageAttribute{DataType: "String", StringValue: ptr("audit")}
		}
		ev.Records = append(ev.Records, m)
	}
	return ev
}

func ptr(s string) *string { return &s }
