package sqsevent

import (
	"errors"
	"fmt"
)

// Events at least this large are decoded on their own goroutine while the
// records already read are mapped and produced; smaller ones are decoded
// inline, where the goroutine, its chunks and the handoffs cost more than
// they save. 512 KiB is about 370 records of 1 KiB: measured against raw
// produce, 100-record events ran about 5% faster inline, 300-record ones
// the same either way, 1,000-record ones about 3% faster pipelined. Since
// templates made decoding cheaper, 64 KiB, 512 KiB and 4 MiB measure the
// same within noise at 100 to 1,000 records (docs/performance.md).
const PipelineMinBytes = 512 << 10

// pipeChunk is how many records the decoding goroutine hands over at once:
// enough to spread a channel operation's cost, few enough to start
// producing early.
const pipeChunk = 32

// pipeDepth is how many chunks may be in flight between the goroutines.
const pipeDepth = 8

// pipeRelease is how many chunks are handed back to the decoder at once.
const pipeRelease = 4

// chunk is a run of decoded records and the attributes they point into.
type chunk struct {
	recs  [pipeChunk]Record
	errs  [pipeChunk]error
	attrs []Attribute
	n     int
}

// errPipeQuit unwinds the decoder when the caller's side has stopped.
var errPipeQuit = errors.New("pipeline stopped")

// decodePipelined decodes d's event on a new goroutine and calls each for
// every record, in order, on the caller's. It returns when both are done,
// so nothing reads the payload afterwards.
func decodePipelined(d *eventDecoder, each func(*Record, error)) error {
	free := make(chan *chunk, pipeDepth)
	full := make(chan *chunk, pipeDepth)
	for range pipeDepth {
		free <- &chunk{}
	}
	// Should each panic, quit stops the decoder, which would otherwise
	// stay blocked on a channel holding the payload, and the panic goes on
	// once the decoder no longer reads the payload.
	quit := make(chan struct{})
	defer func() {
		close(quit)
		for range full {
		}
	}()
	var err error
	go func() {
		defer close(full)
		defer func() {
			// The scanner is bounds-checked and fuzzed; should it still
			// panic, fail the batch rather than the process.
			if p := recover(); p != nil && p != errPipeQuit {
				err = fmt.Errorf("decoder panicked: %v", p)
			}
		}()
		// Records are decoded straight into the chunk's slots, and their
		// attributes into its buffer, which goes with it when it is full.
		c := <-free
		d.into, d.attrs, d.pipelined = &c.recs[0], c.attrs[:0], true
		d.each = func(_ *Record, rerr error) {
			c.errs[c.n] = rerr
			c.n++
			if c.n == pipeChunk {
				c.attrs = d.attrs
				select {
				case full <- c:
				case <-quit:
					panic(errPipeQuit)
				}
				select {
				case c = <-free:
				case <-quit:
					panic(errPipeQuit)
				}
				d.attrs = c.attrs[:0]
			}
			d.into = &c.recs[c.n]
		}
		err = d.run()
		if c.n > 0 {
			select {
			case full <- c:
			case <-quit:
			}
		}
	}()
	// Chunks go back to the decoder pipeRelease at a time, so that it is
	// woken once per pipeRelease chunks rather than for each, but never
	// held back while there is none to take: it could be waiting for them.
	var done []*chunk
	for c := range full {
		for i := range c.n {
			each(&c.recs[i], c.errs[i])
		}
		c.n = 0
		done = append(done, c)
		if len(done) == pipeRelease || len(full) == 0 {
			for _, c := range done {
				free <- c
			}
			done = done[:0]
		}
	}
	return err
}
