package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// A test binary started with rawProcessBrokers set is the raw side of
// BenchmarkBinaryVsRaw in a process of its own, as the relay's binary is:
// both sides then pay for being a second process beside the brokers on
// the same cores.
const (
	rawProcessBrokers = "RELAY_BENCH_RAW_BROKERS"
	rawProcessRecords = "RELAY_BENCH_RAW_RECORDS"
)

// rawProcessMain produces the benchmark's messages to brokers once for
// every line read from stdin, answering each with "ok" or the error on
// stdout, until stdin closes. It returns the process's exit code.
func rawProcessMain(brokers string) int {
	kp, msgs, err := rawSide(brokers)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kp.Close()
	dr := make(chan ckafka.Event, len(msgs))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := produceRaw(kp, msgs, dr); err != nil {
			fmt.Printf("error: %v\n", err)
			continue
		}
		fmt.Println("ok")
	}
	return 0
}

// rawSide is the producer and the messages of raw in a process of its
// own, the raw process's or the raw function's: the benchmark's
// rawProcessRecords messages, mapped, for brokers.
func rawSide(brokers string) (*ckafka.Producer, []relay.Message, error) {
	n, err := strconv.Atoi(os.Getenv(rawProcessRecords))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", rawProcessRecords, err)
	}
	msgs, err := mapEvent(benchEvent(n))
	if err != nil {
		return nil, nil, err
	}
	kp, err := newRawProducer(brokers)
	if err != nil {
		return nil, nil, err
	}
	return kp, msgs, nil
}

// rawProcess starts this test binary as the raw side for n messages to
// brokers and returns a function that has it produce them once and waits
// for its answer, and the process's id. The process ends when the
// benchmark does.
func rawProcess(b *testing.B, n int, brokers string) (func(), int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), rawProcessBrokers+"="+brokers, rawProcessRecords+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr // why it could not start, should it not
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		stdin.Close() // the process's loop ends
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	out := bufio.NewReader(stdout)
	produce := func() {
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			b.Fatalf("raw process: %v", err)
		}
		if line, err := out.ReadString('\n'); err != nil || line != "ok\n" {
			b.Fatalf("raw process answered %q: %v", line, err)
		}
	}
	return produce, cmd.Process.Pid
}
