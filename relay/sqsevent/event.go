// Package sqsevent decodes the SQS event Lambda hands a function, in one
// pass over the payload and without building a tree: records are handed
// to the caller one at a time as they are read (Stream), so that work on
// them starts before the rest is read, or collected (Decode). It imports
// nothing of the relay: it defines what it decodes into, Record.
package sqsevent

import (
	"bytes"
	"errors"
	"fmt"
	"unsafe"
)

// Decode reads an SQS event as Lambda delivers it, in one pass over
// payload, but for the records whose layout it learns (see template.go),
// which it reads twice.
//
// It fails as a whole (err != nil, wrapping ErrNotSQSEvent) only when no
// record can be reported on its own: the payload is not valid JSON, has no
// Records array (or two), or a record has no messageId. A record that has
// a messageId but is otherwise malformed comes back with its messageId and
// a *FieldError in errs at the same index.
//
// The records' strings and bytes share payload's memory where no
// unescaping was needed: payload must not change while they are in use.
func Decode(payload []byte) (recs []Record, errs []error, err error) {
	d := newEventDecoder(payload)
	if err := d.event(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotSQSEvent, err)
	}
	return d.recs, d.errs, nil
}

// StreamInline is Stream on the caller's goroutine whatever the event's
// size: for measuring the decoder itself.
func StreamInline(payload []byte, each func(r *Record, err error)) error {
	d := newEventDecoder(payload)
	d.each = each
	if err := d.event(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSQSEvent, err)
	}
	return nil
}

// Stream reads payload as Decode does and calls each for every record, in
// order, as soon as it is read, with its *FieldError or nil. The record
// and its attributes are reused for the next one: each must copy what it
// keeps. Events of PipelineMinBytes or more are read on a second goroutine
// while each runs. An error (wrapping ErrNotSQSEvent) means the event is
// not one; the records before the flaw were handed to each already.
func Stream(payload []byte, each func(r *Record, err error)) error {
	d := newEventDecoder(payload)
	var err error
	if len(payload) >= PipelineMinBytes {
		err = decodePipelined(d, each)
	} else {
		d.each = each
		err = d.event()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotSQSEvent, err)
	}
	return nil
}

type eventDecoder struct {
	s     scanner
	recs  []Record
	errs  []error
	attrs []Attribute // every record's attributes, carved into per-record slices
	n     int         // records read so far

	// each, if set, receives every record as soon as it is decoded, so work
	// on it starts while the rest of the event is read. The record and its
	// attributes are then reused for the next one, and recs and errs stay
	// empty: a batch's records are not all held at once, which spares the
	// allocation and the garbage collector's scanning of them.
	each func(r *Record, err error)
	// into is where the next record is decoded when each is set: single,
	// or a slot of a chunk that each moves on (see decodePipelined), which
	// then also manages attrs (pipelined), so that records decoded into
	// slots keep theirs.
	into      *Record
	single    Record
	pipelined bool

	// The keys of records, of their attributes, of message attribute
	// names and of message attribute values.
	recordKeys, systemKeys, nameKeys, valueKeys keys

	// tmpl and tmpl2 are the layouts of the last two records the general
	// path read, the one that last matched first, if records are being
	// read through templates (see template.go): a record of another
	// layout now and then costs one miss, not two.
	tmpl, tmpl2  *template
	slotSpans    []int        // learn's scratch: each slot's quotes
	slotValues   []attrValues // readByTemplate's scratch
	hits, misses int
	noTemplates  bool // set once they miss too often, or by tests

	// For an event still arriving (see arriving.go): where its bytes come
	// from until all have (s.buf is what has so far), how far past a
	// record's start to have before reading it, and why the event was not
	// received, if it was not.
	arriving Arriving
	ahead    int
	recvErr  error
}

// Indexes of the keys the decoder reads, as given to keys.init.
const (
	keyMessageID = iota
	keyBody
	keyEventSourceARN
	keyReceiptHandle
	keyAttributes
	keyMessageAttributes
)

const (
	keySentTimestamp = iota
	keyReceiveCount
	keyMessageGroupID
	keySequenceNumber
	keyTraceHeader
)

const (
	keyDataType = iota
	keyStringValue
	keyBinaryValue
	keyStringListValues
	keyBinaryListValues
)

func newEventDecoder(payload []byte) *eventDecoder {
	d := &eventDecoder{s: scanner{buf: payload}}
	d.recordKeys.init("messageId", "body", "eventSourceARN", "receiptHandle", "attributes", "messageAttributes")
	d.systemKeys.init("SentTimestamp", "ApproximateReceiveCount", "MessageGroupId", "SequenceNumber", "AWSTraceHeader")
	d.nameKeys.init()
	d.valueKeys.init("dataType", "stringValue", "binaryValue", "stringListValues", "binaryListValues")
	return d
}

func (d *eventDecoder) event() error {
	s := &d.s
	if err := d.ensure(0); err != nil {
		return err
	}
	c, i := s.peek(0)
	if c != '{' {
		return s.syntax(i, "expected an object")
	}
	// A second Records key is looked for before a record is handed on,
	// whatever the size: about 0.1 µs a record of 1 KiB, a quarter of
	// decoding and mapping it (BenchmarkDecodeAndMap), and a read of the
	// top level only where the searches find a candidate. An event still
	// arriving is checked as its top level is read (found, below).
	if d.arriving == nil && mayRepeatRecords(s.buf) {
		if err := d.checkRecordsOnce(); err != nil {
			return err
		}
	}
	found := false
	i, err := s.object(i, func(i int, key []byte) (int, error) {
		if string(key) != "Records" {
			return s.skip(i)
		}
		if found {
			return i, errRecordsTwice
		}
		if c, j := s.peek(i); c != '[' {
			return j, fmt.Errorf("Records is %s, not an array", s.kind(j))
		}
		found = true
		d.recs, d.errs, d.n = d.recs[:0], d.errs[:0], 0
		if d.arriving != nil {
			return s.array(i, d.recordArriving)
		}
		return s.array(i, d.record)
	})
	if err != nil {
		return err
	}
	if _, i = s.peek(i); i < len(s.buf) {
		return s.syntax(i, "unexpected data after the event")
	}
	if !found {
		return errors.New("no Records array")
	}
	return nil
}

// errRecordsTwice refuses an event with two Records arrays: encoding/json
// would read the last only, a streaming reader both.
var errRecordsTwice = errors.New("the Records key is given twice")

// mayRepeatRecords reports whether payload could hold a second Records key.
// One Records and no \u escape of an ASCII letter (which no encoder writes,
// but which could spell the key) rule it out. Otherwise checkRecordsOnce
// reads the top level first, so that nothing is produced from an event
// that is then refused. Both searches run over one cache-sized window at a
// time: a 6 MB payload is read from memory once, not twice.
func mayRepeatRecords(payload []byte) bool {
	const window = 32 << 10
	seen := 0
	for lo := 0; lo < len(payload); lo += window {
		// A match counts in the window it starts in.
		w := payload[lo:min(lo+window+len(recordsKey), len(payload))]
		for off := 0; ; {
			i := bytes.Index(w[off:], recordsKey)
			if i < 0 || off+i >= window {
				break
			}
			if seen++; seen > 1 {
				return true
			}
			off += i + 1
		}
		for off := 0; ; {
			i := bytes.Index(w[off:], escapeU00)
			if i < 0 || off+i >= window {
				break
			}
			if j := off + i + len(escapeU00); j >= len(w) || w[j] >= '4' && w[j] <= '7' {
				return true
			}
			off += i + 1
		}
	}
	return false
}

var recordsKey, escapeU00 = []byte(`Records`), []byte(`\u00`)

// checkRecordsOnce reads the event's top level, skipping every value, and
// fails if the Records key comes twice.
func (d *eventDecoder) checkRecordsOnce() error {
	pre := scanner{buf: d.s.buf}
	n := 0
	_, err := pre.object(0, func(i int, key []byte) (int, error) {
		if string(key) == "Records" {
			if n++; n > 1 {
				return i, errRecordsTwice
			}
		}
		return pre.skip(i)
	})
	return err
}

// record decodes the record at pos, through a template where one fits,
// or field by field. A value of the wrong type fails the record (if it has
// a messageId); a syntax error fails the event.
func (d *eventDecoder) record(pos int) (int, error) {
	s := &d.s
	c, j := s.peek(pos)
	if c != '{' {
		return j, fmt.Errorf("record %d is %s, not an object", d.n, s.kind(j))
	}
	r := d.nextRecord()
	attrStart := len(d.attrs)
	if end, ok := d.readByTemplates(j, r, attrStart); ok {
		d.deliver(r, attrStart, nil)
		return end, nil
	}
	rr := recordReader{d: d, s: s, r: r, index: d.n - 1, attrStart: attrStart}
	end, err := rr.read(j)
	if err != nil {
		return end, err
	}
	if r.MessageID == "" {
		return end, fmt.Errorf("record %d has no messageId, so it cannot be reported on its own", rr.index)
	}
	if rr.fieldErr == nil && !rr.hasBody {
		rr.fail("body", errors.New("missing"))
	}
	var rerr error
	if rr.fieldErr != nil {
		rr.fieldErr.MessageID = r.MessageID
		rerr = rr.fieldErr
	} else if !d.noTemplates && !rr.repeated {
		d.learn(j)
	}
	d.deliver(r, attrStart, rerr)
	return end, nil
}

// nextRecord returns the zeroed record the next one is decoded into.
func (d *eventDecoder) nextRecord() *Record {
	d.n++
	if d.each == nil {
		d.recs = append(d.recs, Record{})
		return &d.recs[len(d.recs)-1]
	}
	if d.into == nil {
		d.into = &d.single
	}
	*d.into = Record{}
	if !d.pipelined {
		d.attrs = d.attrs[:0]
	}
	return d.into
}

// readByTemplates reads the record at pos through the last two templates,
// the one that fits moved first. On a miss r and its attributes are reset
// for the general path, and templates are given up if they miss too often.
func (d *eventDecoder) readByTemplates(pos int, r *Record, attrStart int) (int, bool) {
	for _, t := range [2]*template{d.tmpl, d.tmpl2} {
		if t == nil {
			break
		}
		if end, ok := d.readByTemplate(t, pos, r); ok {
			if t == d.tmpl2 {
				d.tmpl, d.tmpl2 = t, d.tmpl
			}
			d.hits++
			return end, true
		}
		*r = Record{}
		d.attrs = d.attrs[:attrStart]
	}
	if d.tmpl != nil {
		if d.misses++; d.misses > maxMisses+d.hits/4 {
			d.tmpl, d.tmpl2, d.noTemplates = nil, nil, true
		}
	}
	return 0, false
}

// recordReader reads one record field by field, noting the first field of
// the wrong type and whether any key was given twice.
type recordReader struct {
	d         *eventDecoder
	s         *scanner
	r         *Record
	index     int // the record's position in the event
	attrStart int // r's attributes are d.attrs[attrStart:]
	fieldErr  *FieldError
	hasBody   bool
	// A key given twice is read as encoding/json reads it, the last one
	// winning (a null included), and keeps the record from being learned
	// as a template, whose literal would hold the first one.
	repeated bool
}

// fail notes a bad field; the first one is the record's error.
func (rr *recordReader) fail(field string, err error) {
	if rr.fieldErr == nil {
		rr.fieldErr = &FieldError{Field: field, Err: err}
	}
}

// typed reports whether the value at i starts with c ('"' or '{'); if
// not, it consumes the value: a null quietly where the field is nullable,
// anything else noting a type error on field.
func (rr *recordReader) typed(i int, field string, c byte, want string, nullable bool) (bool, int, error) {
	s := rr.s
	b, j := s.peek(i)
	if b == c {
		return true, j, nil
	}
	if nullable {
		if j, ok := s.null(j); ok {
			return false, j, nil
		}
	}
	rr.fail(field, fmt.Errorf("is %s, not %s", s.kind(j), want))
	j, err := s.skip(j)
	return false, j, err
}

// str reads a string member into dst, or notes a type error.
func (rr *recordReader) str(i int, field string, dst *string) (int, error) {
	ok, i, err := rr.typed(i, field, '"', "a string", false)
	if !ok {
		return i, err
	}
	b, i, err := rr.s.str(i)
	*dst = bytesToString(b)
	return i, err
}

// once notes key k in seen, and a repeat.
func (rr *recordReader) once(seen *uint32, k int) {
	if k >= 0 {
		rr.repeated = rr.repeated || *seen&(1<<k) != 0
		*seen |= 1 << k
	}
}

// read reads the record's members from pos, the opening brace.
func (rr *recordReader) read(pos int) (int, error) {
	s, r := rr.s, rr.r
	var seen uint32
	return s.fields(pos, &rr.d.recordKeys, func(i, k int, _ []byte) (int, error) {
		rr.once(&seen, k)
		switch k {
		case keyMessageID:
			return rr.str(i, "messageId", &r.MessageID)
		case keyBody:
			ok, i, err := rr.typed(i, "body", '"', "a string", true)
			if !ok {
				r.Body, rr.hasBody = nil, false
				return i, err
			}
			r.Body, i, err = s.str(i)
			rr.hasBody = true
			return i, err
		case keyEventSourceARN:
			return rr.str(i, "eventSourceARN", &r.EventSourceARN)
		case keyReceiptHandle:
			return rr.str(i, "receiptHandle", &r.ReceiptHandle)
		case keyAttributes:
			return rr.systemAttributes(i)
		case keyMessageAttributes:
			return rr.messageAttributes(i)
		}
		return s.skip(i)
	})
}

// systemAttributes reads the record's attributes object at pos.
func (rr *recordReader) systemAttributes(pos int) (int, error) {
	r := rr.r
	r.SentTimestamp, r.ReceiveCount, r.MessageGroupID, r.SequenceNumber, r.TraceHeader = "", "", "", "", ""
	ok, pos, err := rr.typed(pos, "attributes", '{', "an object", true)
	if !ok {
		return pos, err
	}
	var seen uint32
	return rr.s.fields(pos, &rr.d.systemKeys, func(i, k int, _ []byte) (int, error) {
		rr.once(&seen, k)
		switch k {
		case keySentTimestamp:
			return rr.str(i, "attributes.SentTimestamp", &r.SentTimestamp)
		case keyReceiveCount:
			return rr.str(i, "attributes.ApproximateReceiveCount", &r.ReceiveCount)
		case keyMessageGroupID:
			return rr.str(i, "attributes.MessageGroupId", &r.MessageGroupID)
		case keySequenceNumber:
			return rr.str(i, "attributes.SequenceNumber", &r.SequenceNumber)
		case keyTraceHeader:
			return rr.str(i, "attributes.AWSTraceHeader", &r.TraceHeader)
		}
		return rr.s.skip(i)
	})
}

// messageAttributes reads the record's messageAttributes object at pos
// into d.attrs, the last one given winning over earlier ones.
func (rr *recordReader) messageAttributes(pos int) (int, error) {
	d := rr.d
	d.attrs = d.attrs[:rr.attrStart]
	ok, pos, err := rr.typed(pos, "messageAttributes", '{', "an object", true)
	if !ok {
		return pos, err
	}
	return rr.s.fields(pos, &d.nameKeys, func(i, _ int, name []byte) (int, error) {
		i, field, problem, err := d.attribute(i, name, rr.attrStart, &rr.repeated)
		if problem != nil {
			rr.fail("messageAttributes."+string(name)+field, problem)
		}
		return i, err
	})
}

// deliver hands on the record just read, whose attributes are
// d.attrs[attrStart:].
func (d *eventDecoder) deliver(r *Record, attrStart int, rerr error) {
	if len(d.attrs) > attrStart {
		r.Attributes = d.attrs[attrStart:len(d.attrs):len(d.attrs)]
		sortAttributes(r.Attributes)
	}
	if d.each != nil {
		d.each(r, rerr)
		return
	}
	d.errs = append(d.errs, rerr)
}

// attribute decodes the message attribute at pos into d.attrs. A bad value
// comes back as problem, with the field's suffix (".binaryValue") and the
// value consumed; err is a syntax error.
// The record's attributes so far are d.attrs[attrStart:]: a name given
// twice fails the record, since one of its values would be dropped. A
// value key given twice sets *repeated.
func (d *eventDecoder) attribute(pos int, name []byte, attrStart int, repeated *bool) (next int, field string, problem, err error) {
	s := &d.s
	if c, j := s.peek(pos); c != '{' {
		problem = fmt.Errorf("is %s, not an object", s.kind(j))
		next, err = s.skip(j)
		return next, "", problem, err
	}
	var dataType, stringValue, binaryValue []byte
	var hasString, hasBinary bool
	var lists, typeErr, typeWant string
	var seen uint32
	pos, err = s.fields(pos, &d.valueKeys, func(i, k int, key []byte) (int, error) {
		if k >= 0 {
			*repeated = *repeated || seen&(1<<k) != 0
			seen |= 1 << k
		}
		var dst *[]byte
		var has *bool
		switch k {
		case keyDataType:
			dst, has = &dataType, new(bool)
		case keyStringValue:
			dst, has = &stringValue, &hasString
		case keyBinaryValue:
			dst, has = &binaryValue, &hasBinary
		case keyStringListValues, keyBinaryListValues:
			if j, ok := s.null(i); ok {
				return j, nil
			}
			if c, _ := s.peek(i); c != '[' {
				if typeErr == "" {
					typeErr, typeWant = "."+string(key), "an array"
				}
				return s.skip(i)
			}
			n := 0
			i, err := s.array(i, func(i int) (int, error) { n++; return s.skip(i) })
			if n > 0 && lists == "" {
				lists = "." + string(key)
			}
			return i, err
		default:
			return s.skip(i)
		}
		if j, ok := s.null(i); ok {
			*dst, *has = nil, false // the last value wins, a null too
			return j, nil
		}
		if c, _ := s.peek(i); c != '"' {
			if typeErr == "" {
				typeErr, typeWant = "."+string(key), "a string"
			}
			return s.skip(i)
		}
		b, i, err := s.str(i)
		*dst, *has = b, true
		return i, err
	})
	if err != nil {
		return pos, "", nil, err
	}
	if typeErr != "" {
		return pos, typeErr, errors.New("not " + typeWant), nil
	}
	for _, a := range d.attrs[attrStart:] {
		if a.Name == string(name) {
			return pos, "", errors.New("given twice"), nil
		}
	}
	field, problem = d.addAttribute(name, dataType, stringValue, binaryValue, hasString, hasBinary, lists)
	return pos, field, problem, nil
}

// addAttribute checks a message attribute's values against its dataType
// and appends it to d.attrs. A bad value comes back as problem, with the
// field's suffix. lists names a non-empty list field, if there was one.
func (d *eventDecoder) addAttribute(name, dataType, stringValue, binaryValue []byte, hasString, hasBinary bool, lists string) (field string, problem error) {
	s := &d.s
	base := dataType
	for i, c := range dataType {
		if c == '.' {
			base = dataType[:i]
			break
		}
	}
	var value []byte
	switch string(base) {
	case "String", "Number":
		if !hasString {
			if lists != "" && !hasBinary {
				return lists, errors.New("list values are not supported (SQS reserves them) and there is no scalar value")
			}
			return ".stringValue", fmt.Errorf("missing for dataType %s", quote(string(dataType)))
		}
		value = stringValue
	case "Binary":
		if !hasBinary {
			if lists != "" && !hasString {
				return lists, errors.New("list values are not supported (SQS reserves them) and there is no scalar value")
			}
			return ".binaryValue", fmt.Errorf("missing for dataType %s", quote(string(dataType)))
		}
		var err error
		if value, err = s.base64(binaryValue); err != nil {
			return ".binaryValue", err
		}
	default:
		return ".dataType", fmt.Errorf("%s is not String, Number or Binary", quote(string(dataType)))
	}
	d.attrs = append(d.attrs, Attribute{Name: bytesToString(name), DataType: bytesToString(dataType), Value: value})
	return "", nil
}

// sortAttributes orders a record's attributes by name (insertion sort: a
// record has at most ten).
func sortAttributes(a []Attribute) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Name < a[j-1].Name; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// bytesToString views b as a string without copying. The decoder only
// hands it bytes that are never written again: the payload, which the
// caller keeps unchanged, or the arena, whose bytes are never rewritten.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
