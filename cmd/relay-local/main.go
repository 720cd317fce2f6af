// Command relay-local runs the whole pipeline on the local stack: an
// embedded Kafka-protocol broker, the SQS emulator with a source queue and
// its DLQ, the real lambda binary under a Runtime API, and an event source
// mapping between them. It sends a few thousand sample messages (a few of
// them poison), runs until the queue is drained, and prints what became of
// every message. `make run` runs it.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sqs-msk-relay/relay/integration"
	"github.com/sqs-msk-relay/relay/integration/apache"
)

const (
	messages   = 3000
	batchSize  = 100
	maxReceive = 3 // deployments use at least 5; 3 keeps the demo short
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay-local:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := integration.RepoRoot()
	if err != nil {
		return err
	}
	logPath := filepath.Join(root, "build", "relay-local.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	env := []string{
		"RELAY_TOPIC=events", "RELAY_TOPIC_ATTRIBUTE=route", "RELAY_ALLOWED_TOPICS=audit",
		"RELAY_KEY_ATTRIBUTE=customer", "RELAY_MAX_MESSAGE_BYTES=4096",
	}
	ctx := context.Background()
	t0 := time.Now()
	cfg := integration.StackConfig{
		Root: root, Topics: []string{"events", "audit"}, FunctionEnv: env,
		FunctionTimeout: 10 * time.Second, Logs: logFile,
	}
	// KAFKA=apache (make run KAFKA=apache): the same pipeline on a real
	// Apache Kafka cluster of three brokers, RF 3, min.insync.replicas 2.
	if os.Getenv("KAFKA") == "apache" {
		fmt.Printf("starting a real Apache Kafka %s cluster (1 controller, %d brokers, JVMs from %s)...\n", apache.Version, apache.Brokers, os.Getenv("RELAY_KAFKA_LIBS"))
		dir, err := os.MkdirTemp("", "relay-local-kafka")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		kctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		kc, err := apache.Start(kctx, apache.Config{Dir: dir})
		if err != nil {
			return err
		}
		defer kc.Close()
		for _, t := range cfg.Topics {
			if err := kc.CreateTopic(kctx, t, 3, nil); err != nil {
				return err
			}
		}
		cfg.External = &integration.ExternalKafka{Brokers: kc.Addrs(apache.Plaintext), Records: kc.Records}
		fmt.Printf("  ready in %v\n", time.Since(t0).Round(time.Millisecond))
	}
	fmt.Println("starting the local stack: fauxqs (SQS), the lambda binary under a Runtime API, and kfake unless KAFKA=apache...")
	s, err := integration.StartStack(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	q, err := s.CreateQueue(ctx, "orders", false, 2*time.Second, maxReceive)
	if err != nil {
		return err
	}
	fmt.Printf("  ready in %v\n  function settings: %s\n  queue %s, DLQ after %d receives\n\n", time.Since(t0).Round(time.Millisecond), strings.Join(env, " "), q.ARN, maxReceive)

	poison := map[int]string{}
	sent, err := s.Send(ctx, q, "order", messages, func(i int) integration.Message {
		m := integration.Message{Body: fmt.Sprintf(`{"order":%d,"status":"paid"}`, i), Attrs: map[string]string{"customer": fmt.Sprintf("c-%d", i%50)}}
		switch {
		case i%600 == 17:
			m.Body = strings.Repeat("x", 5000)
			poison[i] = "oversized body"
		case i%600 == 301:
			m.Attrs["route"] = "payroll"
			poison[i] = "topic off the allow-list"
		case i%10 == 3:
			m.Attrs["route"] = "audit"
		}
		return m
	})
	if err != nil {
		return err
	}
	fmt.Printf("sent %d messages to SQS (%d of them poison); relaying with batches of up to %d...\n", len(sent), len(poison), batchSize)

	t1 := time.Now()
	m := s.Mapping(q, batchSize, 500*time.Millisecond)
	if err := s.Drain(ctx, 5*time.Minute, []integration.Queue{q}, m.Run); err != nil {
		return err
	}
	took := time.Since(t1)
	r, err := s.Account(ctx, []string{"events", "audit"}, q, sent)
	if err != nil {
		return err
	}
	st := m.Stats()
	fmt.Printf("\ndrained in %v (%d invocations, %d records delivered to the function)\n\n", took.Round(time.Millisecond), st.Invocations, st.Records)
	fmt.Printf("  sent to SQS         %5d\n", r.Sent)
	fmt.Printf("  delivered to Kafka  %5d\n", r.InKafka)
	fmt.Printf("  in the DLQ          %5d\n", r.InDLQ)
	fmt.Printf("  duplicates in Kafka %5d  (consumers drop them by the sqs:message-id header)\n", r.Duplicates)
	fmt.Printf("  lost                %5d\n", len(r.Lost))
	var dlq []string
	for i, why := range poison {
		mark := "MISSING from the DLQ"
		if r.DLQ[sent[i]] {
			mark = "in the DLQ"
		}
		dlq = append(dlq, fmt.Sprintf("    %s: %s, %s", sent[i], why, mark))
	}
	sort.Strings(dlq)
	fmt.Printf("\npoison messages:\n%s\n", strings.Join(dlq, "\n"))
	fmt.Printf("\nthe function's JSON logs: %s\n", logPath)
	if len(r.Lost) > 0 {
		return fmt.Errorf("%d messages lost: %v", len(r.Lost), r.Lost)
	}
	return nil
}
