package sqsevent

import "unsafe"

// Lambda writes every record of an event in the same layout: the same keys
// in the same order, the same system attributes, usually the same message
// attribute names. A template is that layout, learned from a record the
// decoder read without error: the literal bytes between its string values,
// and what each value is. The next record is read by comparing its literal
// parts and scanning only its strings, instead of matching each key and
// dispatching on it. Anything that differs sends the record to the general
// path from its start, so a record read through a template comes out as
// the general path would read it.
type template struct {
	lits  []string // lits[k] comes before slots[k]; the last one ends the record
	slots []slot
	names []string // message attribute names, in order
}

// slot is a string value of a record and where it goes.
type slot struct {
	kind uint8
	attr int // the message attribute, for the slotAttr kinds
}

// Slot kinds. A slotSkip value is checked like any skipped one.
const (
	slotSkip uint8 = iota
	slotMessageID
	slotBody
	slotEventSourceARN
	slotReceiptHandle
	slotSentTimestamp
	slotReceiveCount
	slotMessageGroupID
	slotSequenceNumber
	slotTraceHeader
	slotAttrDataType
	slotAttrString
	slotAttrBinary
)

// The slot kinds of the values of the keys in the decoder's tables, by
// key index.
var (
	recordSlots = [...]uint8{keyMessageID: slotMessageID, keyBody: slotBody, keyEventSourceARN: slotEventSourceARN,
		keyReceiptHandle: slotReceiptHandle}
	systemSlots = [...]uint8{keySentTimestamp: slotSentTimestamp, keyReceiveCount: slotReceiveCount,
		keyMessageGroupID: slotMessageGroupID, keySequenceNumber: slotSequenceNumber, keyTraceHeader: slotTraceHeader}
	valueSlots = [...]uint8{keyDataType: slotAttrDataType, keyStringValue: slotAttrString, keyBinaryValue: slotAttrBinary}
)

// slotOf is the slot kind of key index k in kinds; other keys' values are
// skipped.
func slotOf(kinds []uint8, k int) uint8 {
	if k >= 0 && k < len(kinds) {
		return kinds[k]
	}
	return slotSkip
}

// Templates stop being tried for the rest of an event once they have
// missed more than maxMisses records beyond a quarter of those they read:
// records of changing layouts would each pay for a miss and a relearning.
const maxMisses = 4

// attrValues are one message attribute's strings while a template reads it.
type attrValues struct {
	dataType, str, bin []byte
	hasString, hasBin  bool
}

// learn makes the layout of the record at pos, which the general path
// read without error, the first template, and the first the second; the
// second's storage is reused for it. A record with no string values to
// template leaves the templates as they are.
func (d *eventDecoder) learn(pos int) {
	s := &d.s
	t := d.tmpl2
	if t == nil {
		t = &template{slots: make([]slot, 0, 32), lits: make([]string, 0, 33), names: make([]string, 0, 10)}
		if d.slotSpans == nil {
			d.slotSpans = make([]int, 0, 64)
		}
	}
	t.slots, t.lits, t.names = t.slots[:0], t.lits[:0], t.names[:0]
	quotes := d.slotSpans[:0] // each slot's opening and past-closing quote
	defer func() { d.slotSpans = quotes }()
	value := func(i int, kind uint8, attr int) (int, error) {
		c, j := s.peek(i)
		if c != '"' {
			return s.skip(i) // stays in the literal
		}
		end, err := s.skip(j)
		t.slots = append(t.slots, slot{kind: kind, attr: attr})
		quotes = append(quotes, j, end)
		return end, err
	}
	object := func(i int, member func(i int, key []byte) (int, error)) (int, error) {
		if c, _ := s.peek(i); c != '{' {
			return s.skip(i)
		}
		return s.object(i, member)
	}
	_, start := s.peek(pos)
	// Keys are classified by the general path's tables, so both read the
	// same keys.
	end, err := s.object(start, func(i int, key []byte) (int, error) {
		switch k := d.recordKeys.index(key, false); k {
		case keyAttributes:
			return object(i, func(i int, key []byte) (int, error) {
				return value(i, slotOf(systemSlots[:], d.systemKeys.index(key, false)), 0)
			})
		case keyMessageAttributes:
			return object(i, func(i int, name []byte) (int, error) {
				a := len(t.names)
				t.names = append(t.names, bytesToString(name))
				return object(i, func(i int, key []byte) (int, error) {
					switch k := d.valueKeys.index(key, false); k {
					case keyStringListValues, keyBinaryListValues:
						return s.skip(i) // null or an array: literal
					default:
						return value(i, slotOf(valueSlots[:], k), a)
					}
				})
			})
		default:
			return value(i, slotOf(recordSlots[:], k), 0)
		}
	})
	if err != nil || len(t.slots) == 0 {
		if t == d.tmpl2 {
			d.tmpl2 = nil // its storage was overwritten
		}
		return
	}
	from := start
	for k := 0; k < len(quotes); k += 2 {
		t.lits = append(t.lits, bytesToString(s.buf[from:quotes[k]]))
		from = quotes[k+1]
	}
	t.lits = append(t.lits, bytesToString(s.buf[from:end]))
	d.tmpl, d.tmpl2 = t, d.tmpl
}

// readByTemplate reads the record at pos into r through t. It reports false, with
// r and d.attrs to be reset by the caller, where the record differs from
// the template or the general path would find a fault in it.
func (d *eventDecoder) readByTemplate(t *template, pos int, r *Record) (int, bool) {
	s := &d.s
	if cap(d.slotValues) < len(t.names) {
		d.slotValues = make([]attrValues, len(t.names))
	}
	vals := d.slotValues[:len(t.names)]
	clear(vals)
	i := pos
	for k, sl := range t.slots {
		if !s.at(i, t.lits[k]) {
			return pos, false
		}
		i += len(t.lits[k])
		if sl.kind == slotSkip {
			var err error
			if i, err = s.skip(i); err != nil {
				return pos, false
			}
			continue
		}
		if i >= len(s.buf) || s.buf[i] != '"' {
			return pos, false
		}
		v, j, err := s.str(i)
		if err != nil {
			return pos, false
		}
		i = j
		switch sl.kind {
		case slotMessageID:
			r.MessageID = bytesToString(v)
		case slotBody:
			r.Body = v
		case slotEventSourceARN:
			r.EventSourceARN = bytesToString(v)
		case slotReceiptHandle:
			r.ReceiptHandle = bytesToString(v)
		case slotSentTimestamp:
			r.SentTimestamp = bytesToString(v)
		case slotReceiveCount:
			r.ReceiveCount = bytesToString(v)
		case slotMessageGroupID:
			r.MessageGroupID = bytesToString(v)
		case slotSequenceNumber:
			r.SequenceNumber = bytesToString(v)
		case slotTraceHeader:
			r.TraceHeader = bytesToString(v)
		case slotAttrDataType:
			vals[sl.attr].dataType = v
		case slotAttrString:
			vals[sl.attr].str, vals[sl.attr].hasString = v, true
		case slotAttrBinary:
			vals[sl.attr].bin, vals[sl.attr].hasBin = v, true
		}
	}
	lit := t.lits[len(t.slots)]
	if !s.at(i, lit) || r.MessageID == "" {
		return pos, false
	}
	i += len(lit)
	for a, name := range t.names {
		v := &vals[a]
		if _, problem := d.addAttribute(unsafe.Slice(unsafe.StringData(name), len(name)), v.dataType, v.str, v.bin, v.hasString, v.hasBin, ""); problem != nil {
			return pos, false
		}
	}
	return i, true
}
