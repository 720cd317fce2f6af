// Command relay-doctor checks the relay's path to Kafka with the same
// RELAY_* configuration the function reads: DNS, TCP, TLS, credentials,
// authentication and metadata, the topics, and with -produce a test
// message. It prints one line per step with a hint for known failures, and
// exits 1 if any step failed. The deployed function runs the same checks
// when invoked with {"relay":"doctor"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/auth"
	"github.com/sqs-msk-relay/relay/relay/doctor"
	"github.com/sqs-msk-relay/relay/relay/kafka"
)

func main() {
	produce := flag.String("produce", "", "produce one test message with acks=all to this topic")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	timeout := flag.Duration("timeout", 5*time.Second, "time limit of each step")
	flag.Parse()

	cfg, err := relay.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-doctor:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := kafka.CheckProperties(cfg.KafkaProperties); err != nil {
		fmt.Fprintln(os.Stderr, "relay-doctor:", err)
		os.Exit(2)
	}
	a, err := auth.Setup(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay-doctor: credentials:", err)
		os.Exit(1)
	}
	opts := doctor.Options{ProduceTopic: *produce, StepTimeout: *timeout, Tokens: a.TokenSource()}
	rep := doctor.Run(ctx, a.Config, opts)
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(rep)
	} else {
		rep.Write(os.Stdout)
	}
	if !rep.OK {
		os.Exit(1)
	}
}
