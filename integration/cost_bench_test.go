package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
)

// AWS Lambda's arm64 prices in us-east-1, read 2026-12-02 from
// aws.amazon.com/lambda/pricing: per GB-second of duration (the first
// 7.5 billion GB-s a month) and per request.
const (
	armPricePerGBSecond = 0.0000133334
	pricePerRequest     = 0.20 / 1e6
)

// costMemoryMB and costBatches are the memory sizes and batch sizes the
// cost table covers; 1,769 MB is one full vCPU.
var (
	costMemoryMB = []int{128, 256, 512, 1024, 1769}
	costBatches  = []int{10, 100, 1000}
)

// BenchmarkCostByMemory relays warm batches of 1 KiB records through the
// real binary in a sandbox of each memory size (its share of a CPU and its
// memory limit, as Lambda gives them) and turns the time from invoke to
// answer into Lambda's bill: duration rounded up to the millisecond, GB-s
// and dollars per million records at the arm64 price, requests included.
func BenchmarkCostByMemory(b *testing.B) {
	c, err := broker.Start(3, []string{"events"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	for _, mem := range costMemoryMB {
		b.Run(fmt.Sprintf("memory=%d", mem), func(b *testing.B) {
			sb, err := NewSandbox(fmt.Sprintf("relay-%d-cost-%d", os.Getpid(), mem), mem)
			if err != nil {
				if os.Getenv("CI") != "" {
					b.Fatal(err)
				}
				b.Skip(err)
			}
			b.Cleanup(sb.Close)
			api, err := runtimeapi.Start()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { api.Close() })
			cmd, err := StartFunction(sb.Wrap([]string{binary}), api.Addr(), []string{"RELAY_BROKERS=" + c.Addrs(), "RELAY_TOPIC=events",
				"RELAY_AUTH=none", "RELAY_LOG_LEVEL=warn", "RELAY_RETRY_BASE=0", fmt.Sprint("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=", mem)}, devNull{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			for _, n := range costBatches {
				payload, _ := json.Marshal(benchEvent(n))
				invoke := func() time.Duration {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					t0 := time.Now()
					res, err := api.Invoke(ctx, payload, 30*time.Second)
					if err != nil || res.Error || string(res.Payload) != `{"batchItemFailures":[]}` {
						b.Fatalf("invoke at %d MB: %.200s %v", mem, res.Payload, err)
					}
					return time.Since(t0)
				}
				b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
					invoke() // the first batch after start, and warm-up
					invoke()
					var billedMs float64
					cpu0 := cpuOf(b, cmd.Process.Pid)
					b.ResetTimer()
					for range b.N {
						billedMs += math.Ceil(float64(invoke().Microseconds()) / 1000)
					}
					b.StopTimer()
					cpu1 := cpuOf(b, cmd.Process.Pid)
					// In 10 ms ticks: meaningful over a run, not a batch.
					b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "function-cpu-µs/batch")
					ms := billedMs / float64(b.N)
					gbs := float64(mem) / 1024 * ms / 1000
					perMillion := 1e6 / float64(n)
					b.ReportMetric(ms, "billed-ms/batch")
					b.ReportMetric(gbs*perMillion, "GB-s/Mrecords")
					b.ReportMetric((gbs*armPricePerGBSecond+pricePerRequest)*perMillion, "$/Mrecords")
				})
			}
		})
	}
}
