package apache_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/integration/apache"
	"github.com/sqs-msk-relay/relay/integration/broker"
)

// cluster is started once for the package; tests restart its nodes
// rather than re-creating it, and leave every broker running.
var cluster *apache.Cluster

const (
	scramUser     = "relay"
	scramPassword = "relay-scram-password-3b9e"
)

func TestMain(m *testing.M) {
	if os.Getenv("RELAY_KAFKA_LIBS") == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "RELAY_KAFKA_LIBS is not set: make test fetches the Kafka jars (make kafka-libs) and sets it")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "SKIP: the real Kafka tests need RELAY_KAFKA_LIBS (run make kafka-libs, or make test)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "kafka-cluster")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	pki, err := broker.NewPKI(dir)
	if err == nil {
		var logw *os.File
		if os.Getenv("RELAY_KAFKA_LOG") != "" {
			logw = os.Stderr
		}
		cfg := apache.Config{Dir: dir, PKI: pki, SCRAMUsers: map[string]string{scramUser: scramPassword}}
		if logw != nil {
			cfg.Log = logw
		}
		start := time.Now()
		cluster, err = apache.Start(ctx, cfg)
		fmt.Fprintf(os.Stderr, "Kafka %s cluster (1 controller, %d brokers) ready in %v\n", apache.Version, apache.Brokers, time.Since(start).Round(time.Millisecond))
	}
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the Kafka cluster:", err)
	} else {
		code = m.Run()
		cluster.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestClusterShape(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.CreateTopic(ctx, "shape", 3, nil); err != nil {
		t.Fatal(err)
	}
	md, err := cluster.Metadata(ctx, "shape")
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 3 || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata %+v", md)
	}
	for _, p := range md.Topics[0].Partitions {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 {
			t.Errorf("partition %d: replicas %v ISR %v, want 3 and 3", p.Partition, p.Replicas, p.ISR)
		}
	}
}
