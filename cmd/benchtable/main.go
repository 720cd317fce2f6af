// Command benchtable reads `go test -bench` output on stdin, prints it, then
// prints the relay's figures as tables with the ratios between benchmarks of
// the same run and the targets, and draws the throughput chart. `make bench`
// runs it. With -count > 1, each figure is the median of its runs.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

var sizes = []int{10, 100, 1000, 10000}

func main() {
	chart := flag.String("chart", "", "write the throughput chart (PNG) here")
	costChart := flag.String("cost-chart", "", "write the cost chart (PNG) here")
	flag.Parse()

	// runs[benchmark][unit] = values, names without the -GOMAXPROCS suffix.
	runs := map[string]map[string][]float64{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		if runs[name] == nil {
			runs[name] = map[string][]float64{}
		}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				runs[name][f[i+1]] = append(runs[name][f[i+1]], v)
			}
		}
	}
	get := func(bench, unit string) (float64, bool) {
		vs := runs[bench][unit]
		if len(vs) == 0 {
			return 0, false
		}
		s := slices.Clone(vs)
		slices.Sort(s)
		return s[len(s)/2], true
	}
	rate := func(bench string, n int) (float64, bool) {
		return get(fmt.Sprintf("%s/records=%d", bench, n), "records/s")
	}

	fmt.Println()
	fmt.Println("| measure | figure | target |")
	fmt.Println("|---|---|---|")
	row := func(measure, figure, target string) { fmt.Printf("| %s | %s | %s |\n", measure, figure, target) }
	relay, okR := rate("BenchmarkRelay", 10000)
	raw, okW := rate("BenchmarkRawProduce", 10000)
	naive, okN := rate("BenchmarkNaiveProduce", 100)
	if okR {
		row("relay: 10,000 × 1 KiB through the handler", fmt.Sprintf("%.0f records/s", relay), "")
	}
	if okW {
		row("raw confluent-kafka-go async produce, same messages", fmt.Sprintf("%.0f records/s", raw), "")
	}
	if okN {
		row("naive: produce then Flush per message (100 messages)", fmt.Sprintf("%.1f records/s", naive), "")
	}
	if vs := runs["BenchmarkRelayVsRaw"]["relay/raw"]; len(vs) > 0 {
		r, _ := get("BenchmarkRelayVsRaw", "relay/raw")
		row(fmt.Sprintf("relay ÷ raw, batches alternated (median of %d runs, range %.2f–%.2f)", len(vs), slices.Min(vs), slices.Max(vs)),
			fmt.Sprintf("%.2f", r), target(r, 0.90))
	}
	if vs := runs["BenchmarkBinaryVsRaw"]["relay/raw"]; len(vs) > 0 {
		r, _ := get("BenchmarkBinaryVsRaw", "relay/raw")
		row(fmt.Sprintf("relay ÷ raw through the lambda binary, 6 MB events of 4,000 × 1 KiB (median of %d runs, range %.2f–%.2f)", len(vs), slices.Min(vs), slices.Max(vs)),
			fmt.Sprintf("%.2f", r), target(r, 0.90))
	}
	if r, ok := get("BenchmarkBinaryVsRaw", "relay/raw-process"); ok {
		row("the same against raw in a process of its own, as the binary is (median)", fmt.Sprintf("%.2f", r), "")
	}
	if r, ok := get("BenchmarkBinaryVsRaw", "relay/raw-flush"); ok {
		row("the same against raw that flushes after its last message, as the relay does (median)", fmt.Sprintf("%.2f", r), "")
	}
	if r, ok := get("BenchmarkBinaryVsRaw", "handler/raw"); ok {
		row("the same event through the handler in the test process, in that rotation (median)", fmt.Sprintf("%.2f", r), "")
	}
	if r, ok := get("BenchmarkBinaryVsRaw", "raw-function/raw"); ok {
		row("the ceiling: raw's loop as a Lambda function through the same exchange, ÷ raw (median)", fmt.Sprintf("%.2f", r), "")
	}
	if r, ok := get("BenchmarkBinaryVsRaw", "relay/raw-function"); ok {
		row("relay ÷ that function (median)", fmt.Sprintf("%.2f", r), "")
	}
	relayCPU, ok1 := get("BenchmarkRelayVsRaw", "relay-cpu-ns/record")
	rawCPU, ok2 := get("BenchmarkRelayVsRaw", "raw-cpu-ns/record")
	if ok1 && ok2 {
		row("process CPU per record in those runs, relay vs raw", fmt.Sprintf("%.1f µs vs %.1f µs", relayCPU/1000, rawCPU/1000), "")
	}
	relayReqs, ok1 := get("BenchmarkRelayVsRaw", "relay-requests/batch")
	rawReqs, ok2 := get("BenchmarkRelayVsRaw", "raw-requests/batch")
	if ok1 && ok2 {
		row("produce requests per 10,000-message batch in those runs, relay vs raw", fmt.Sprintf("%.0f vs %.0f", relayReqs, rawReqs), "")
	}
	if okR && okW {
		row("relay ÷ raw, separate benchmarks above", fmt.Sprintf("%.2f", relay/raw), "")
	}
	if okR && okN {
		row("relay ÷ naive", fmt.Sprintf("%.0f", relay/naive), target(relay/naive, 100))
	}
	if a, ok := get("BenchmarkDecodeAndMap", "allocs/record"); ok {
		row("heap allocations per record, decoding + mapping", fmt.Sprintf("%.4f", a), "≤ 4")
	}
	for _, f := range []struct{ format, bench string }{{"raw", "BenchmarkDecodeAndMap"},
		{"sns", "BenchmarkDecodeAndMapEnvelope/format=sns"}, {"eventbridge", "BenchmarkDecodeAndMapEnvelope/format=eventbridge"}} {
		if v, ok := get(f.bench, "ns/record"); ok {
			row("decoding + mapping a record of a 1 KiB value, RELAY_BODY_FORMAT="+f.format, fmt.Sprintf("%.2f µs", v/1000), "")
		}
	}
	vector, ok1 := get("BenchmarkIndexSpecial/bytes=1024", "vector-ns")
	words, ok2 := get("BenchmarkIndexSpecial/bytes=1024", "words-ns")
	if ok1 && ok2 {
		row("scanning a 1 KiB string, the decoder's assembly vs its portable Go", fmt.Sprintf("%.0f ns vs %.0f ns", vector, words), "")
	}
	if a, ok := get("BenchmarkRelay/records=10000", "allocs/op"); ok {
		row("heap allocations per record, whole handler incl. the Go client", fmt.Sprintf("%.1f", a/10000), "")
	}
	if v, ok := get("BenchmarkBinary", "peak-RSS-MB"); ok {
		mb, _ := get("BenchmarkBinary", "batch-MB")
		row(fmt.Sprintf("peak RSS of the lambda binary relaying a %.1f MB batch of 10,000 records", mb), fmt.Sprintf("%.1f MB", v), "≤ 64 MB")
	}
	if v, ok := get("BenchmarkBinary", "cold-start-ms"); ok {
		row("cold start: process start to the first /next", fmt.Sprintf("%.1f ms", v), "≤ 30 ms")
	}
	first, ok1 := get("BenchmarkBinary", "first-batch-ms")
	warm, ok2 := get("BenchmarkBinary", "warm-batch-ms")
	if ok1 && ok2 {
		row("first batch after cold start (the event waiting) vs warm batch, 100 records", fmt.Sprintf("%.1f ms vs %.1f ms", first, warm), timesWarm(first/warm))
	}
	if ready, ok := get("BenchmarkBinary", "first-batch-ready-ms"); ok && ok2 {
		row("first batch once init is done (provisioned concurrency) vs warm batch", fmt.Sprintf("%.1f ms vs %.1f ms", ready, warm), timesWarm(ready/warm))
	}

	fmt.Println()
	fmt.Println("| batch size | relay records/s | raw records/s | naive records/s |")
	fmt.Println("|---|---|---|---|")
	cell := func(v float64, ok bool) string {
		if !ok {
			return "–"
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	for _, n := range sizes {
		r, okr := rate("BenchmarkRelay", n)
		w, okw := rate("BenchmarkRawProduce", n)
		v, okv := rate("BenchmarkNaiveProduce", n)
		fmt.Printf("| %d | %s | %s | %s |\n", n, cell(r, okr), cell(w, okw), cell(v, okv))
	}

	costTable(get)
	if *costChart != "" {
		if err := drawCost(*costChart, get); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		fmt.Println("\ncost chart:", *costChart)
	}

	if *chart != "" {
		if err := draw(*chart, rate); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		fmt.Println("\nchart:", *chart)
	}
	if !okR || !okW {
		fmt.Fprintln(os.Stderr, "benchtable: missing BenchmarkRelay or BenchmarkRawProduce figures")
		os.Exit(1)
	}
}

// target says "≥ min", and whether v meets it.
func target(v, min float64) string {
	t := "≥ " + strconv.FormatFloat(min, 'f', -1, 64)
	if v < min {
		return t + " — **not met**"
	}
	return t
}

// timesWarm is the target for a first batch ratio× as long as a warm one.
func timesWarm(ratio float64) string {
	t := fmt.Sprintf("≤ 2× warm (%.1f×)", ratio)
	if ratio > 2 {
		return t + " — **not met**"
	}
	return t
}

// draw plots throughput by batch size, both axes logarithmic: the naive
// pattern is three orders of magnitude below the others.
func draw(path string, rate func(string, int) (float64, bool)) error {
	p := plot.New()
	p.Title.Text = "Throughput by batch size (1 KiB records, kfake, 2 cores)"
	p.X.Label.Text = "records per batch"
	p.Y.Label.Text = "records/s"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	var args []any
	for _, s := range []struct{ bench, label string }{
		{"BenchmarkRelay", "relay (handler)"},
		{"BenchmarkRawProduce", "raw librdkafka async"},
		{"BenchmarkNaiveProduce", "naive produce+flush"},
	} {
		var pts plotter.XYs
		for _, n := range sizes {
			if v, ok := rate(s.bench, n); ok && v > 0 && !math.IsInf(v, 0) {
				pts = append(pts, plotter.XY{X: float64(n), Y: v})
			}
		}
		if len(pts) > 0 {
			args = append(args, s.label, pts)
		}
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}

// Memory sizes and batch sizes of BenchmarkCostByMemory.
var (
	costMemoryMB = []int{128, 256, 512, 1024, 1769}
	costBatches  = []int{10, 100, 1000}
)

func costName(mem, n int) string {
	return fmt.Sprintf("BenchmarkCostByMemory/memory=%d/batch=%d", mem, n)
}

// costTable prints what a million records cost by memory and batch size.
func costTable(get func(bench, unit string) (float64, bool)) {
	if _, ok := get(costName(costMemoryMB[0], costBatches[0]), "$/Mrecords"); !ok {
		return
	}
	fmt.Println()
	fmt.Println("| memory (MB) | batch | billed ms per batch | records/s per function | GB-s per million records | $ per million records |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, mem := range costMemoryMB {
		for _, n := range costBatches {
			ms, ok1 := get(costName(mem, n), "billed-ms/batch")
			gbs, ok2 := get(costName(mem, n), "GB-s/Mrecords")
			usd, ok3 := get(costName(mem, n), "$/Mrecords")
			if ok1 && ok2 && ok3 {
				fmt.Printf("| %d | %d | %.1f | %.0f | %.1f | %.4f |\n", mem, n, ms, float64(n)/ms*1000, gbs, usd)
			}
		}
	}
}

// drawCost plots dollars per million records by memory size, a line per
// batch size.
func drawCost(path string, get func(bench, unit string) (float64, bool)) error {
	p := plot.New()
	p.Title.Text = "Lambda cost per million 1 KiB records (arm64, us-east-1 price of 2026-12-02)"
	p.X.Label.Text = "function memory (MB)"
	p.Y.Label.Text = "$ per million records"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	var ticks []plot.Tick
	for _, mem := range costMemoryMB {
		ticks = append(ticks, plot.Tick{Value: float64(mem), Label: strconv.Itoa(mem)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Legend.Top, p.Legend.Left = true, true
	var args []any
	top := 0.0
	for _, n := range costBatches {
		var pts plotter.XYs
		for _, mem := range costMemoryMB {
			if v, ok := get(costName(mem, n), "$/Mrecords"); ok && v > 0 {
				pts = append(pts, plotter.XY{X: float64(mem), Y: v})
				top = max(top, v)
			}
		}
		if len(pts) > 0 {
			args = append(args, fmt.Sprintf("batch of %d", n), pts)
		}
	}
	if len(args) == 0 {
		return fmt.Errorf("no BenchmarkCostByMemory figures")
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	p.Y.Max = top * 5 // room for the legend above the lines
	return p.Save(7*vg.Inch, 4.5*vg.Inch, path)
}
