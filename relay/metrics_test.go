package relay

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestPercentiles compares the selected percentiles with a sorted copy's,
// on inputs that trouble quickselects: sorted, reversed, all equal, few
// distinct values, one element, and random ones.
func TestPercentiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gen := map[string]func(n int) []time.Duration{
		"random": func(n int) []time.Duration {
			l := make([]time.Duration, n)
			for i := range l {
				l[i] = time.Duration(r.IntN(20e6))
			}
			return l
		},
		"sorted": func(n int) []time.Duration {
			l := make([]time.Duration, n)
			for i := range l {
				l[i] = time.Duration(i)
			}
			return l
		},
		"reversed": func(n int) []time.Duration {
			l := make([]time.Duration, n)
			for i := range l {
				l[i] = time.Duration(n - i)
			}
			return l
		},
		"equal": func(n int) []time.Duration { return slices.Repeat([]time.Duration{7}, n) },
		"three values": func(n int) []time.Duration {
			l := make([]time.Duration, n)
			for i := range l {
				l[i] = time.Duration(r.IntN(3))
			}
			return l
		},
	}
	ps := []float64{0.5, 0.9, 0.99, 1}
	for name, g := range gen {
		for _, n := range []int{1, 2, 3, 10, 99, 100, 101, 4000} {
			for range 5 {
				l := g(n)
				before := slices.Clone(l)
				got := percentiles(l, ps...)
				sorted := slices.Clone(l)
				slices.Sort(sorted)
				for i, p := range ps {
					if want := sorted[min(n-1, int(p*float64(n)))]; got[i] != want {
						t.Fatalf("%s, %d latencies: p%v = %v, want %v", name, n, p, got[i], want)
					}
				}
				if !slices.Equal(l, before) {
					t.Fatalf("%s, %d latencies: percentiles changed its input", name, n)
				}
			}
		}
	}
}

// TestSelectWithin: selection that gives up partitioning after 0, 1 or 3
// rounds and sorts the rest still puts the right element at k.
func TestSelectWithin(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, maxRounds := range []int{0, 1, 3} {
		for _, n := range []int{1, 2, 17, 1000} {
			l := make([]time.Duration, n)
			for i := range l {
				l[i] = time.Duration(r.IntN(50))
			}
			sorted := slices.Clone(l)
			slices.Sort(sorted)
			for _, k := range []int{0, n / 2, n - 1} {
				a := slices.Clone(l)
				selectWithin(a, k, maxRounds)
				if a[k] != sorted[k] {
					t.Fatalf("%d rounds, %d latencies: a[%d] = %v, want %v", maxRounds, n, k, a[k], sorted[k])
				}
				for i := range a {
					if i < k && a[i] > a[k] || i > k && a[i] < a[k] {
						t.Fatalf("%d rounds, %d latencies: a[%d] = %v on the wrong side of a[%d] = %v", maxRounds, n, i, a[i], k, a[k])
					}
				}
			}
		}
	}
}

// BenchmarkPercentiles is Emit's latency percentiles for a 4,000-record
// batch, selected (percentiles) against a sorted copy (what Emit did
// before): go test -run '^$' -bench Percentiles ./relay/
func BenchmarkPercentiles(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	l := make([]time.Duration, 4000)
	for i := range l {
		l[i] = time.Duration(r.IntN(20e6))
	}
	b.Run("select", func(b *testing.B) {
		for range b.N {
			percentiles(l, 0.5, 0.9, 0.99, 1)
		}
	})
	b.Run("sort", func(b *testing.B) {
		for range b.N {
			s := slices.Clone(l)
			slices.Sort(s)
		}
	})
}
