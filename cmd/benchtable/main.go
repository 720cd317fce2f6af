// Command benchtable reads `go test -bench` output on stdin and prints the
// relay's figures as a table, with ratios between benchmarks of the same
// run. `make bench` runs it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	// metrics[benchmark][unit] = value, benchmark names without the -N suffix.
	metrics := map[string]map[string]float64{}
	sc := bufio.NewScanner(os.Stdin)
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
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				m[f[i+1]] = v
			}
		}
		metrics[name] = m
	}
	get := func(bench, unit string) (float64, bool) {
		v, ok := metrics[bench][unit]
		return v, ok
	}
	fmt.Println()
	fmt.Println("| measure | figure | target |")
	fmt.Println("|---|---|---|")
	relay, okR := get("BenchmarkRelay", "records/s")
	raw, okW := get("BenchmarkRawProduce", "records/s")
	if okR {
		fmt.Printf("| relay, 10,000 × 1 KiB batch through the handler | %.0f records/s | |\n", relay)
	}
	if okW {
		fmt.Printf("| raw confluent-kafka-go async produce, same messages | %.0f records/s | |\n", raw)
	}
	if okR && okW && raw > 0 {
		fmt.Printf("| relay ÷ raw | %.2f | ≥ 0.90 |\n", relay/raw)
	}
	if a, ok := get("BenchmarkDecodeAndMap", "allocs/record"); ok {
		fmt.Printf("| heap allocations per record, decoding + mapping | %.2f | ≤ 4 |\n", a)
	}
	if a, ok := get("BenchmarkRelay", "allocs/op"); ok {
		fmt.Printf("| heap allocations per record, whole handler incl. the Go client | %.1f | |\n", a/10000)
	}
	if !okR || !okW {
		fmt.Fprintln(os.Stderr, "benchtable: missing BenchmarkRelay or BenchmarkRawProduce figures")
		os.Exit(1)
	}
}
