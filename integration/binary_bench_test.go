package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
)

// procStatus is pid's /proc status lines counted in kB (VmHWM, RssAnon...),
// in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(v, " kB") {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, " kB")), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s of %d: %w", k, pid, err)
			}
			out[k] = kb * 1024
		}
	}
	return out, nil
}

// procCPU is pid's user and system time so far (from /proc/pid/stat, in
// clock ticks of 10 ms: sum it over many events).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the stat file's 14th and 15th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// cpuOf is procCPU(pid), failing b if it cannot be read.
func cpuOf(b *testing.B, pid int) time.Duration {
	b.Helper()
	d, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS(pid int) (int64, error) {
	st, err := procStatus(pid)
	if err != nil {
		return 0, err
	}
	hwm, ok := st["VmHWM"]
	if !ok {
		return 0, fmt.Errorf("no VmHWM for %d", pid)
	}
	return hwm, nil
}

// BenchmarkBinary measures the real lambda binary under a Runtime API on
// loopback: cold start (process start to its first /next), the first
// batch (connection, metadata, producer id) and a warm batch of 100
// records, and peak RSS after relaying a 6 MB batch of 10,000 records.
func BenchmarkBinary(b *testing.B) {
	c, err := broker.Start(3, []string{"events"}, kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	// A 6 MB event (Lambda's payload limit) of 10,000 records: bodies sized
	// so that each record, envelope included, is about 600 bytes.
	big := benchEvent(10000)
	for i := range big.Records {
		big.Records[i].Body = ""
	}
	empty, _ := json.Marshal(big)
	body := strings.Repeat("y", (6000000-len(empty))/len(big.Records))
	for i := range big.Records {
		big.Records[i].Body = body
	}
	bigPayload, _ := json.Marshal(big)
	smallPayload, _ := json.Marshal(benchEvent(100))

	var coldMs, firstMs, readyMs, warmMs, rssMB float64
	for i := range b.N {
		api, err := runtimeapi.Start()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cmd, err := StartFunction([]string{binary}, api.Addr(),
			[]string{"RELAY_BROKERS=" + c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_LOG_LEVEL=warn"}, devNull{})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		invoke := func(p []byte) time.Time {
			res, err := api.Invoke(ctx, p, 30*time.Second)
			if err != nil || res.Error || string(res.Payload) != `{"batchItemFailures":[]}` {
				b.Fatalf("invoke: %s %v", res.Payload, err)
			}
			return time.Now()
		}
		timed := func(p []byte) float64 {
			t0 := time.Now()
			return float64(invoke(p).Sub(t0).Microseconds()) / 1000
		}
		// Odd runs: the event waits for the function (an on-demand cold
		// start), timed from its first /next. Even runs: the function
		// sits at /next first (provisioned concurrency), timed from the
		// invoke.
		if i%2 == 0 {
			end := invoke(smallPayload)
			firstMs += float64(end.Sub(api.FirstNext()).Microseconds()) / 1000
		} else {
			for api.Nexts() == 0 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			readyMs += timed(smallPayload)
		}
		coldMs += float64(api.FirstNext().Sub(start).Microseconds()) / 1000
		warmMs += timed(smallPayload)
		invoke(bigPayload)
		rss, err := peakRSS(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		rssMB += float64(rss) / (1 << 20)
		cancel()
		cmd.Process.Kill()
		cmd.Wait()
		api.Close()
	}
	n := float64(b.N)
	b.ReportMetric(coldMs/n, "cold-start-ms")
	b.ReportMetric(firstMs/float64((b.N+1)/2), "first-batch-ms")
	if b.N > 1 {
		b.ReportMetric(readyMs/float64(b.N/2), "first-batch-ready-ms")
	}
	b.ReportMetric(warmMs/n, "warm-batch-ms")
	b.ReportMetric(rssMB/n, "peak-RSS-MB")
	b.ReportMetric(float64(len(bigPayload))/(1<<20), "batch-MB")
	b.ReportMetric(0, "ns/op")
}

// terminate stops cmd with SIGTERM, as Lambda ends a sandbox, and kills it
// if it has not exited within 10 s.
func terminate(cmd *exec.Cmd) error {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		cmd.Process.Kill()
		<-exited
		return errors.New("still running 10 s after SIGTERM: killed")
	}
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// batchTimes reads the function's log and adds up the durationMs of its
// "batch relayed" lines: the handler's time inside the binary, from the
// batch's start to its summary, in whole milliseconds (truncated, so
// their mean is about 0.5 ms low).
type batchTimes struct {
	mu      sync.Mutex
	partial []byte
	ms      float64
	n       int
}

func (t *batchTimes) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := t.partial[:i]
		if bytes.Contains(line, []byte(`"msg":"batch relayed"`)) {
			var v struct{ DurationMs float64 }
			if json.Unmarshal(line, &v) == nil {
				t.ms += v.DurationMs
				t.n++
			}
		}
		t.partial = t.partial[i+1:]
	}
}

// reset forgets the batches so far.
func (t *batchTimes) reset() {
	t.mu.Lock()
	t.ms, t.n = 0, 0
	t.mu.Unlock()
}

// mean is the mean durationMs of the batches since the last reset.
func (t *batchTimes) mean() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return 0
	}
	return t.ms / float64(t.n)
}

// invokeEach returns a function that invokes api's function with payload
// and fails b unless it answers that no record failed.
func invokeEach(b *testing.B, api *runtimeapi.Server, payload []byte) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := api.Invoke(ctx, payload, 30*time.Second)
		if err != nil || res.Error || string(res.Payload) != `{"batchItemFailures":[]}` {
			b.Fatalf("invoke: %s %v", res.Payload, err)
		}
	}
}

// rawFunctionOf starts this test binary as the raw function
// (rawfunction_test.go) for n messages to brokers under a Runtime API of
// its own, and returns a function that invokes it with payload, and the
// process's id.
func rawFunctionOf(b *testing.B, n int, brokers string, payload []byte) (func(), int) {
	b.Helper()
	api, err := runtimeapi.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { api.Close() })
	logs := &LogBuffer{}
	cmd, err := StartFunction([]string{os.Args[0], "-test.run=^$"}, api.Addr(),
		[]string{rawFunctionBrokers + "=" + brokers, rawProcessRecords + "=" + strconv.Itoa(n)}, logs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			b.Logf("raw function's output:\n%s", logs)
		}
	})
	return invokeEach(b, api, payload), cmd.Process.Pid
}

// BenchmarkBinaryVsRaw is relay ÷ raw through the real binary: a 6 MB
// event of 4,000 × 1 KiB records sent to the function by the Runtime API,
// decoded, produced and answered, in rotation with raw confluent-kafka-go
// producing the same messages from this process (relay/raw), raw from a
// process of its own as the binary is (relay/raw-process), and the same
// event through the handler in this process (handler/raw), and raw that
// flushes after its last message as the relay does (relay/raw-flush), and
// raw's loop as a Lambda function through the same exchange, the ceiling
// (raw-function/raw, relay/raw-function), each on a kfake broker of its
// own. The binary holds what the handler leaves out: the payload's
// transfer, the runtime client, the response and the GC of the previous
// payload.
func BenchmarkBinaryVsRaw(b *testing.B) {
	const n = 4000
	c, err := broker.Start(3, []string{"events"}, kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	payload, err := json.Marshal(benchEvent(n))
	if err != nil {
		b.Fatal(err)
	}
	api, err := runtimeapi.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { api.Close() })
	fn, env := binary, []string{"RELAY_BROKERS=" + c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=none", "RELAY_LOG_LEVEL=info"}
	profile := os.Getenv("RELAY_CPU_PROFILE") // make pgo: the function's CPU profile, for lambda/default.pgo
	if profile != "" {
		if fn, err = BuildFunction(b.TempDir(), "cpuprofile"); err != nil {
			b.Fatal(err)
		}
		env = append(env, "RELAY_CPU_PROFILE="+profile)
	}
	var inside batchTimes
	cmd, err := StartFunction([]string{fn}, api.Addr(), env, &inside)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if profile == "" {
			cmd.Process.Kill()
			cmd.Wait()
			return
		}
		if err := terminate(cmd); err != nil {
			b.Errorf("the profiled function: %v", err)
		}
	})
	relayOne := invokeEach(b, api, payload)
	rawOne := rawBatch(b, n, benchBroker(b, nil).Addrs())
	rawApart, apartPid := rawProcess(b, n, benchBroker(b, nil).Addrs())
	handlerOne := relayBatch(b, n, benchBroker(b, nil).Addrs())
	flushOne := rawFlushBatch(b, n, benchBroker(b, nil).Addrs())
	ceilingOne, ceilingPid := rawFunctionOf(b, n, benchBroker(b, nil).Addrs(), payload)
	relayOne()
	relayOne()
	rawOne()
	rawApart()
	handlerOne()
	flushOne()
	ceilingOne()
	ceilingOne()
	inside.reset()
	fn0, apart0, ceil0 := cpuOf(b, cmd.Process.Pid), cpuOf(b, apartPid), cpuOf(b, ceilingPid)
	b.ResetTimer()
	t := rotate(b, relayOne, rawOne, rawApart, handlerOne, flushOne, ceilingOne)
	relayT, rawT, apartT, handlerT, flushT, ceilingT := t[0], t[1], t[2], t[3], t[4], t[5]
	b.StopTimer()
	fn1, apart1, ceil1 := cpuOf(b, cmd.Process.Pid), cpuOf(b, apartPid), cpuOf(b, ceilingPid)
	perEvent := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 / float64(b.N) }
	// The function is idle but for its own events: its CPU is the relay's
	// side's, beside this process's (kfake, the Runtime API) in its turns.
	b.ReportMetric(perEvent(fn1-fn0), "relay-function-cpu-ms/event")
	b.ReportMetric(perEvent(fn1-fn0+relayT.cpu), "relay-cpu-ms/event")
	b.ReportMetric(perEvent(rawT.cpu), "raw-cpu-ms/event")
	// The raw process's CPU is raw's producer alone: what the function's
	// compares with.
	b.ReportMetric(perEvent(apart1-apart0), "raw-process-cpu-ms/event")
	b.ReportMetric(perEvent(ceil1-ceil0), "raw-function-cpu-ms/event")
	b.ReportMetric(rawT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw")
	b.ReportMetric(flushT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw-flush")
	b.ReportMetric(apartT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw-process")
	b.ReportMetric(rawT.wall.Seconds()/handlerT.wall.Seconds(), "handler/raw")
	// The ceiling: raw's loop through the same exchange, and how near the
	// relay comes to it.
	b.ReportMetric(rawT.wall.Seconds()/ceilingT.wall.Seconds(), "raw-function/raw")
	b.ReportMetric(ceilingT.wall.Seconds()/relayT.wall.Seconds(), "relay/raw-function")
	b.ReportMetric(perEvent(relayT.wall), "relay-ms/event")
	b.ReportMetric(inside.mean(), "relay-batch-ms/event")
	b.ReportMetric(perEvent(handlerT.wall), "handler-ms/event")
	b.ReportMetric(float64(b.N*n)/relayT.wall.Seconds(), "relay-records/s")
	b.ReportMetric(float64(b.N*n)/rawT.wall.Seconds(), "raw-records/s")
	b.ReportMetric(float64(b.N*n)/apartT.wall.Seconds(), "raw-process-records/s")
	b.ReportMetric(float64(len(payload))/(1<<20), "event-MB")
	b.ReportMetric(0, "ns/op")
}
