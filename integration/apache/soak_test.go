package apache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/integration/apache"
)

// TestSoak draws a fault at random for each of RELAY_KAFKA_SOAK batches
// (make soak: 200) on the real cluster: none, kill -9 of a broker, a pause
// (SIGSTOP, then SIGCONT after the answer), a clean restart, two brokers
// down, or leadership moved by stopping a partition leader. The fault
// lands while the batch produces; it is healed after the answer. At the
// end every record id is accounted for. RELAY_KAFKA_SOAK_SEED repeats a
// run; the seed is printed either way.
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("RELAY_KAFKA_SOAK"))
	if n <= 0 {
		t.Skip("set RELAY_KAFKA_SOAK to the number of batches (make soak)")
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("RELAY_KAFKA_SOAK_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (RELAY_KAFKA_SOAK_SEED=%d repeats this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	createTopic(t, "soak", 3, nil)
	restoreCluster(t, "soak")
	r := newRelay(t, map[string]string{"RELAY_TOPIC": "soak"})
	const deadline = 6 * time.Second
	faults := []string{"none", "kill", "pause", "restart", "two-down", "leader-moved"}
	count := map[string]int{}
	var sent []string
	failed := map[string]bool{}
	worst := 0.0
	ctx := context.Background()
	for b := range n {
		fault := faults[rng.IntN(len(faults))]
		count[fault]++
		victim := cluster.Broker(1 + rng.IntN(apache.Brokers))
		other := cluster.Broker(1 + (victim.ID % apache.Brokers))
		if fault == "leader-moved" {
			if l, err := cluster.Leader(ctx, "soak", int32(rng.IntN(3))); err == nil && l > 0 {
				victim = cluster.Broker(int(l))
			}
		}
		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		ev := event(fmt.Sprintf("s%03d", b), 300+rng.IntN(700), 200)
		injected := make(chan struct{})
		go func() {
			defer close(injected)
			time.Sleep(delay) // the fault's random moment in the batch
			switch fault {
			case "kill":
				victim.Kill()
			case "pause":
				victim.Pause()
			case "restart", "leader-moved":
				victim.Stop(20 * time.Second)
			case "two-down":
				victim.Stop(20 * time.Second)
				other.Stop(20 * time.Second)
			}
		}()
		f, took := r.invoke(t, ev, deadline)
		<-injected
		for _, m := range ev.Records {
			sent = append(sent, m.MessageId)
		}
		for id := range f {
			failed[id] = true
		}
		worst = max(worst, took.Seconds()/deadline.Seconds())
		for _, node := range []*apache.Node{victim, other} {
			node.Resume()
			if !node.Running() {
				if err := node.Start(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if b%20 == 19 {
			t.Logf("%d batches, %d records, %d failed so far", b+1, len(sent), len(failed))
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := cluster.WaitReady(wctx, "soak"); err != nil {
		t.Fatal(err)
	}
	tl, _ := account(t, "soak", sent, failed)
	t.Logf("faults drawn: %v", count)
	t.Logf("| batches | records | acknowledged | failed | duplicates | acknowledged but missing | worst answer / deadline |")
	t.Logf("|---|---|---|---|---|---|---|")
	t.Logf("| %d | %d | %d | %d | %d | %d | %.2f |", n, len(sent), tl.Acked, tl.Failed, tl.Duplicates, tl.AckedMissing, worst)
	if tl.AckedMissing != 0 {
		t.Errorf("%d records acknowledged but missing", tl.AckedMissing)
	}
	if worst >= 1 {
		t.Errorf("an answer came after the deadline (%.2f of it)", worst)
	}
}
