// Package sqseventtest has what tests of the event decoder and of its
// callers share: an event that arrives while it is read.
package sqseventtest

import "sync"

// Flow is an event written into a growing buffer by a goroutine, chunk
// bytes at a time, as the function's runtime loop writes one it is still
// receiving; it is a sqsevent.Arriving. The writer keeps at most a chunk
// ahead of what Wait has asked for, so the reader meets the event
// incomplete however fast the writer is.
type Flow struct {
	mu    sync.Mutex
	more  *sync.Cond
	buf   []byte
	n     int
	total int
	asked int
	early int
}

// NewFlow starts writing payload, chunk bytes at a time.
func NewFlow(payload []byte, chunk int) *Flow {
	f := &Flow{total: len(payload)}
	f.more = sync.NewCond(&f.mu)
	go func() {
		buf := make([]byte, 4096)
		for n := 0; n < len(payload); {
			f.mu.Lock()
			for n >= f.asked+chunk {
				f.more.Wait()
			}
			f.mu.Unlock()
			if n == len(buf) {
				// A copy, never in place: bytes once handed out are not
				// written again.
				grown := make([]byte, 2*n)
				copy(grown, buf)
				buf = grown
			}
			n += copy(buf[n:min(len(buf), n+chunk)], payload[n:])
			f.mu.Lock()
			f.buf, f.n = buf, n
			f.mu.Unlock()
			f.more.Broadcast()
		}
	}()
	return f
}

// Wait blocks until at least n bytes have arrived or all have, and returns
// them.
func (f *Flow) Wait(n int) ([]byte, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = max(f.asked, min(n, f.total))
	f.more.Broadcast()
	for f.n < n && f.n < f.total {
		f.more.Wait()
	}
	if f.n < f.total {
		f.early++
	}
	return f.buf[:f.n:f.n], f.n == f.total, nil
}

// Early is how many Waits returned before the event had all come.
func (f *Flow) Early() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.early
}
