package lambdaruntime

import (
	"context"
	"io"
	"sync"
)

// StreamHandler is a Handler that can start on a large event before all of
// it has arrived: a 6 MB event takes milliseconds to come from the Runtime
// API, which the handler then spends decoding and producing instead of
// waiting. Serve calls InvokeStream for events over streamAfter bytes.
type StreamHandler interface {
	Handler
	InvokeStream(ctx context.Context, ev *Event) ([]byte, error)
}

// streamAfter is how much of an event is read before the handler starts;
// an event no larger is read whole and given to Invoke. Below it a second
// goroutine and its wake-ups cost more than the overlap saves (the relay
// decodes events under 512 KiB on the calling goroutine for the same
// reason).
const streamAfter = 512 << 10

// readStep bounds one read of an event, so that a streamed event's
// handler hears of what has arrived in steps of at most this much.
const readStep = 256 << 10

// Event is an invocation's event while it is read from the Runtime API.
type Event struct {
	mu   sync.Mutex
	more sync.Cond
	buf  []byte // buf[:n] has arrived; a larger buffer is a copy
	n    int
	done bool
	err  error
}

func newEvent(buf []byte, n int) *Event {
	e := &Event{buf: buf, n: n}
	e.more.L = &e.mu
	return e
}

// Wait blocks until at least n bytes of the event have arrived or all of
// it has, and returns the bytes so far. Bytes once returned are not
// written again, so slices of them stay valid; err is why the event could
// not be read to its end.
func (e *Event) Wait(n int) (buf []byte, complete bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.n < n && !e.done {
		e.more.Wait()
	}
	return e.buf[:e.n:e.n], e.done && e.err == nil, e.err
}

// readRest reads the rest of body, which has size bytes (-1: unknown), and
// returns the buffer it ended in.
func (e *Event) readRest(body io.Reader, size int) []byte {
	buf, n, err := readInto(body, e.buf, e.n, size, func(buf []byte, n int) bool {
		e.publish(buf, n, nil)
		return false
	})
	e.publish(buf, n, err)
	return buf
}

// publish makes buf[:n] visible to Wait; err ends the event (io.EOF: it
// arrived whole).
func (e *Event) publish(buf []byte, n int, err error) {
	e.mu.Lock()
	e.buf, e.n = buf, n
	if err != nil {
		e.done = true
		if err != io.EOF {
			e.err = err
		}
	}
	e.mu.Unlock()
	e.more.Broadcast()
}

// readInto reads body, which has size bytes (-1: unknown), into buf after
// its first n bytes, until the body ends (io.EOF), a read fails, or stop
// says so after a read. A full buf is grown by copying, so bytes once read
// are never written again.
func readInto(body io.Reader, buf []byte, n, size int, stop func(buf []byte, n int) bool) ([]byte, int, error) {
	for {
		if n == size {
			return buf, n, io.EOF
		}
		if n == len(buf) {
			grown := make([]byte, max(2*len(buf), 64<<10, size))
			copy(grown, buf[:n])
			buf = grown
		}
		m, err := body.Read(buf[n:min(len(buf), n+readStep)])
		n += m
		if err != nil {
			return buf, n, err
		}
		if stop(buf, n) {
			return buf, n, nil
		}
	}
}
