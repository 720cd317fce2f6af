package integration

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/lambdaruntime"
)

// A test binary started with rawFunctionBrokers set is raw's work as a
// Lambda function, the ceiling of BenchmarkBinaryVsRaw: under the Runtime
// API, for every event it produces the benchmark's messages, mapped once
// at start, with raw's loop while the event arrives, then reads the event
// to its end and answers that nothing failed. It pays the relay's exchange
// and transfer, and none of its decoding, mapping or tracking.
const rawFunctionBrokers = "RELAY_BENCH_RAW_FUNCTION_BROKERS"

// rawFunctionMain serves invocations as the raw function until the
// Runtime API fails, and returns the process's exit code.
func rawFunctionMain(brokers string) int {
	kp, msgs, err := rawSide(brokers)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer kp.Close()
	f := &rawFunction{kp: kp, msgs: msgs, dr: make(chan ckafka.Event, len(msgs))}
	err = lambdaruntime.Serve(os.Getenv("AWS_LAMBDA_RUNTIME_API"), f, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	fmt.Fprintln(os.Stderr, err)
	return 1
}

// rawFunction is a lambdaruntime.StreamHandler, so that large events reach
// it while they arrive, as they reach the relay.
type rawFunction struct {
	kp   *ckafka.Producer
	msgs []relay.Message
	dr   chan ckafka.Event
}

func (f *rawFunction) Invoke(context.Context, []byte) ([]byte, error) {
	return f.produce()
}

func (f *rawFunction) InvokeStream(_ context.Context, ev *lambdaruntime.Event) ([]byte, error) {
	resp, err := f.produce()
	if _, _, werr := ev.Wait(math.MaxInt); werr != nil {
		return nil, werr
	}
	return resp, err
}

func (f *rawFunction) produce() ([]byte, error) {
	if err := produceRaw(f.kp, f.msgs, f.dr); err != nil {
		return nil, err
	}
	return []byte(`{"batchItemFailures":[]}`), nil
}
