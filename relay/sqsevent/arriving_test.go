package sqsevent

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/sqs-msk-relay/relay/relay/sqsevent/sqseventtest"
)

// trickle is an event arriving step bytes more at each Wait (at least
// what is asked for), in a new buffer every copyEvery calls, as a grown
// buffer is: the decoder must read the same bytes from either.
type trickle struct {
	full            []byte
	step, copyEvery int
	cur             []byte
	n, calls        int
	whole           bool // asked for everything: the event was read again
	fail            error
	failAt          int
}

func (tr *trickle) Wait(n int) ([]byte, bool, error) {
	tr.calls++
	if n == math.MaxInt {
		tr.whole = true
	}
	if tr.cur == nil || tr.copyEvery > 0 && tr.calls%tr.copyEvery == 0 {
		tr.cur = bytes.Clone(tr.full)
	}
	tr.n = min(len(tr.full), max(n, tr.n+tr.step))
	if tr.fail != nil && tr.n >= tr.failAt {
		tr.n = tr.failAt
		return tr.cur[:tr.n:tr.n], false, tr.fail
	}
	return tr.cur[:tr.n:tr.n], tr.n == len(tr.full), nil
}

// collect decodes ev with StreamArriving and returns copies of what each
// was handed.
func collect(ev Arriving) ([]Record, []error, error) {
	var recs []Record
	var errs []error
	err := StreamArriving(ev, func(r *Record, err error) {
		c := *r
		c.Attributes = append([]Attribute(nil), r.Attributes...)
		recs, errs = append(recs, c), append(errs, err)
	})
	return recs, errs, err
}

// checkSame fails unless recs and errs are what Decode reads from payload.
func checkSame(t *testing.T, payload []byte, recs []Record, errs []error) {
	t.Helper()
	want, wantErrs, err := Decode(payload)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records handed on, Decode reads %d", len(recs), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(recs[i], want[i]) || fmt.Sprint(errs[i]) != fmt.Sprint(wantErrs[i]) {
			t.Fatalf("record %d is %+v (%v), Decode reads %+v (%v)", i, recs[i], errs[i], want[i], wantErrs[i])
		}
	}
}

// bigBodyEvent is a mixedEvent of n records with one body of size bytes at
// record at, larger than the decoder looks ahead.
func bigBodyEvent(n, at, size int) []byte {
	ev := mixedEvent(n)
	k := bytes.Index(ev, []byte(fmt.Sprintf(`"messageId":"%08d-`, at)))
	b := bytes.Index(ev[k:], []byte(`"body":"`)) + k + len(`"body":"`)
	return append(ev[:b:b], append([]byte(strings.Repeat("b", size)), ev[b:]...)...)
}

func TestStreamArriving(t *testing.T) {
	large := mixedEvent(3000) // about 2.3 MB
	if len(large) < 2*PipelineMinBytes {
		t.Fatalf("the large event is %d bytes, want over %d", len(large), 2*PipelineMinBytes)
	}
	for _, tc := range []struct {
		name       string
		payload    []byte
		step, copy int
		readTwice  bool
	}{
		{"in 16 KiB steps", large, 16 << 10, 0, false},
		{"in 1 KiB steps, a new buffer every 50th wait", large, 1 << 10, 50, false},
		{"in one step", large, len(large), 0, false},
		{"a record larger than the look-ahead", bigBodyEvent(3000, 1500, 3*aheadMin), 4 << 10, 2, true},
		{"the first record larger than the look-ahead", bigBodyEvent(1000, 0, PipelineMinBytes), 4 << 10, 0, true},
		{"small: read whole first", mixedEvent(50), 100, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trickle{full: tc.payload, step: tc.step, copyEvery: tc.copy}
			recs, errs, err := collect(tr)
			if err != nil {
				t.Fatal(err)
			}
			checkSame(t, tc.payload, recs, errs)
			if tr.whole != tc.readTwice {
				t.Errorf("read again whole: %v, want %v", tr.whole, tc.readTwice)
			}
		})
	}
	t.Run("written by another goroutine", func(t *testing.T) {
		recs, errs, err := collect(sqseventtest.NewFlow(large, 7000))
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, large, recs, errs)
	})
}

// TestStreamArrivingRefuses: what Stream refuses is refused while
// arriving too, with the records before the flaw handed on; a failure to
// receive is not taken for a malformed event.
func TestStreamArrivingRefuses(t *testing.T) {
	large := mixedEvent(2000)
	body := large[:len(large)-1] // without the closing brace
	for _, tc := range []struct {
		name, want string
		payload    []byte
	}{
		{"data after the event", "unexpected data after the event", append(bytes.Clone(large), " x"...)},
		{"a second Records key", "the Records key is given twice", append(bytes.Clone(body), `,"Records":[]}`...)},
		{"cut short", "unexpected end of JSON", large[:len(large)-100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := collect(&trickle{full: tc.payload, step: 8 << 10})
			if !errors.Is(err, ErrNotSQSEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrNotSQSEvent saying %q", err, tc.want)
			}
		})
	}
	t.Run("not received whole", func(t *testing.T) {
		cause := errors.New("connection reset")
		recs, _, err := collect(&trickle{full: large, step: 8 << 10, fail: cause, failAt: len(large) / 2})
		if !errors.Is(err, cause) || errors.Is(err, ErrNotSQSEvent) {
			t.Errorf("err %v, want the receive error and not ErrNotSQSEvent", err)
		}
		if len(recs) == 0 || len(recs) >= 2000 {
			t.Errorf("%d records handed on before the event broke off, want some and not all", len(recs))
		}
	})
}
