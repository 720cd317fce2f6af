package apache_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/integration"
	"github.com/sqs-msk-relay/relay/integration/apache"
)

// TestRollingRestartThroughTheStack: the three brokers restarted one at a
// time, as MSK patching does, under continuous load through the whole
// local stack (SQS, the event source mapping, the real lambda binary, the
// real cluster): nothing lost, the DLQ empty, duplicates reported.
func TestRollingRestartThroughTheStack(t *testing.T) {
	createTopic(t, "rolling", 3, nil)
	restoreCluster(t, "rolling")
	root, err := integration.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, err := integration.BuildFunction(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	s, err := integration.StartStack(integration.StackConfig{
		Root: root, Binary: bin, FunctionTimeout: 5 * time.Second, Logs: logs,
		FunctionEnv: []string{"RELAY_TOPIC=rolling", "RELAY_BROKERS_DOWN_GRACE=2s"},
		External:    &integration.ExternalKafka{Brokers: cluster.Addrs(apache.Plaintext), Records: cluster.Records},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("function output (tail):\n%s", tail(logs.String(), 20000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	q, err := s.CreateQueue(ctx, "rolling", false, 30*time.Second, 5)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Mapping(q, 100, 200*time.Millisecond)
	runCtx, stopRun := context.WithCancel(ctx)
	var runWG sync.WaitGroup
	runWG.Add(1)
	go func() { defer runWG.Done(); m.Run(runCtx) }()

	// Load: a round of 50 messages every 100 ms until the restarts end.
	var sent []string
	var mu sync.Mutex
	loadDone := make(chan struct{})
	stopLoad := make(chan struct{})
	go func() {
		defer close(loadDone)
		for round := 0; round < 2000; round++ {
			select {
			case <-stopLoad:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ids, err := s.Send(ctx, q, fmt.Sprint("r", round), 50, func(i int) integration.Message {
				return integration.Message{Body: fmt.Sprintf("rolling %d %d", round, i)}
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sent = append(sent, ids...)
			mu.Unlock()
		}
	}()
	for id := 1; id <= apache.Brokers; id++ {
		n := cluster.Broker(id)
		n.Stop(30 * time.Second)
		waitISR(t, "rolling", 2)
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
		waitISR(t, "rolling", 3)
	}
	close(stopLoad)
	<-loadDone
	// The mapping keeps running until the queue is empty.
	err = s.Drain(ctx, 2*time.Minute, []integration.Queue{q}, func(ctx context.Context) { <-ctx.Done() })
	stopRun()
	runWG.Wait()
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	r, err := s.Account(ctx, []string{"rolling"}, q, sent)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rolling restart of %d brokers under load: %v; %+v", apache.Brokers, r, m.Stats())
	if len(r.Lost) != 0 || r.InDLQ != 0 || r.InKafka != len(sent) {
		t.Errorf("%v: want every message in Kafka, none in the DLQ, none lost", r)
	}
	if os.Getenv("RELAY_KAFKA_LOG") != "" {
		t.Log(tail(logs.String(), 4000))
	}
}
