package sqsevent

import (
	"errors"
	"fmt"
	"math"
)

// Arriving is an event still being received: the function's Runtime API
// loop reads it from the socket while the decoder reads what has come.
// Wait blocks until at least n bytes have arrived or the event is complete
// and returns the bytes so far. Every call returns the same bytes at the
// same offsets, and bytes once returned are never written again (a larger
// buffer is a copy), so slices of an earlier result stay valid.
type Arriving interface {
	Wait(n int) (buf []byte, complete bool, err error)
}

// aheadMin is the least the decoder waits to have past a record's start
// before reading it; it also waits for twice the largest record so far.
// A record that still runs past what has arrived costs a second reading of
// the event (see run), so this errs on the large side.
const aheadMin = 64 << 10

// StreamArriving is Stream for an event still arriving: records are
// decoded and handed to each as their bytes come, so producing overlaps
// the event's transfer. Events smaller than PipelineMinBytes are waited
// for whole and decoded as Stream does.
//
// Stream refuses an event with two Records keys before handing on any
// record; here the second key may come after the first array's records
// were handed on (as with any flaw found late: at least once). A failure
// to receive the event comes back as is, not as ErrNotSQSEvent.
func StreamArriving(ev Arriving, each func(r *Record, err error)) error {
	buf, complete, err := ev.Wait(PipelineMinBytes)
	if err != nil {
		return fmt.Errorf("receive the event: %w", err)
	}
	if complete {
		return Stream(buf, each)
	}
	d := newEventDecoder(buf)
	d.arriving, d.ahead = ev, aheadMin
	err = decodePipelined(d, each)
	if d.recvErr != nil {
		return fmt.Errorf("receive the event: %w", d.recvErr)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotSQSEvent, err)
	}
	return nil
}

// errReceive unwinds the decoder when the event could not be received;
// the cause is in recvErr.
var errReceive = errors.New("the event was not received whole")

// ensure extends what the decoder reads to at least d.ahead bytes past pos
// (or to the end of the event), waiting for them to arrive.
func (d *eventDecoder) ensure(pos int) error {
	if d.arriving == nil || len(d.s.buf)-pos >= d.ahead {
		return nil
	}
	buf, complete, err := d.arriving.Wait(pos + d.ahead)
	if err != nil {
		d.recvErr = err
		return errReceive
	}
	d.s.buf = buf
	if complete {
		d.arriving = nil
	}
	return nil
}

// recordArriving is record for an event still arriving: it first waits
// for d.ahead bytes past pos, and sizes d.ahead by the records read.
func (d *eventDecoder) recordArriving(pos int) (int, error) {
	if err := d.ensure(pos); err != nil {
		return pos, err
	}
	end, err := d.record(pos)
	if err == nil {
		d.ahead = max(d.ahead, 2*(end-pos))
	}
	return end, err
}

// run reads the event. For one still arriving, a read that ran past what
// had arrived fails as a syntax error would, and what follows the top
// level is not known until the rest has come. Either way, once the event
// has all come it is read again from its start, and only the records
// after those already handed on are handed on (the decoder is
// deterministic: they are the records the first reading would have read).
// The last record waits for d.ahead bytes past its start, so the whole
// event has usually come by then.
func (d *eventDecoder) run() error {
	ev, each := d.arriving, d.each
	if ev == nil {
		return d.event()
	}
	handed := 0
	d.each = func(r *Record, err error) {
		handed++
		each(r, err)
	}
	err := d.event()
	if d.arriving == nil || d.recvErr != nil {
		return err
	}
	buf, _, werr := ev.Wait(math.MaxInt)
	if werr != nil {
		d.recvErr = werr
		return errReceive
	}
	d.arriving, d.s.buf, d.s.depth = nil, buf, 0
	skipped := 0
	d.each = func(r *Record, err error) {
		if skipped < handed {
			skipped++ // handed on by the first reading
			return
		}
		each(r, err)
	}
	return d.event()
}
