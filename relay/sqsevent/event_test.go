package sqsevent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

func TestDecodeEvent(t *testing.T) {
	recs, errs, err := Decode([]byte(`{"Records":[{
		"messageId":"m1","body":"hello","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q.fifo",
		"attributes":{"SentTimestamp":"1700000000000","ApproximateReceiveCount":"3","MessageGroupId":"g","SequenceNumber":"7"},
		"messageAttributes":{
			"z":{"dataType":"String","stringValue":"last"},
			"a":{"dataType":"Binary","binaryValue":"AAH/"},
			"n":{"dataType":"Number.int","stringValue":"42","stringListValues":[],"binaryListValues":[]}}}]}`))
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	r := recs[0]
	if r.MessageID != "m1" || string(r.Body) != "hello" || r.SentTimestamp != "1700000000000" || r.ReceiveCount != "3" ||
		r.MessageGroupID != "g" || r.SequenceNumber != "7" || !r.FIFO() {
		t.Errorf("record %+v", r)
	}
	var names []string
	for _, a := range r.Attributes {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "a,n,z" {
		t.Errorf("attributes in order %v, want name order", names)
	}
	if string(r.Attributes[0].Value) != "\x00\x01\xff" || string(r.Attributes[1].Value) != "42" {
		t.Errorf("attribute values %q %q", r.Attributes[0].Value, r.Attributes[1].Value)
	}
}

// TestDecodeEventNulls reads null attributes and messageAttributes as
// absent, as encoding/json does.
func TestDecodeEventNulls(t *testing.T) {
	recs, errs, err := Decode([]byte(`{"Records":[{"messageId":"m1","body":"x","attributes":null,"messageAttributes":null}]}`))
	if err != nil || errs[0] != nil {
		t.Fatal(err, errs)
	}
	if r := recs[0]; string(r.Body) != "x" || r.SentTimestamp != "" || r.Attributes != nil {
		t.Errorf("record %+v", r)
	}
}

func TestDecodeEventRecordErrors(t *testing.T) {
	for _, tc := range []struct {
		record string
		want   string
	}{
		{`{"messageId":"m1"}`, "record m1: body: missing"},
		{`{"messageId":"m1","body":3}`, "record m1: body: is a number, not a string"},
		{`{"messageId":"m1","body":null}`, "record m1: body: missing"},
		{`{"messageId":"m1","body":"x","eventSourceARN":null}`, "record m1: eventSourceARN: is null, not a string"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary","binaryValue":"%%%"}}}`, "record m1: messageAttributes.a.binaryValue: not base64"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary"}}}`, "record m1: messageAttributes.a.binaryValue: missing"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String"}}}`, "record m1: messageAttributes.a.stringValue: missing"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Blob","stringValue":"v"}}}`, `record m1: messageAttributes.a.dataType: "Blob" is not String, Number or Binary`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringListValues":["v"]}}}`, "record m1: messageAttributes.a.stringListValues: list values are not supported"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary","binaryListValues":["AA=="]}}}`, "record m1: messageAttributes.a.binaryListValues: list values are not supported"},
		{`{"messageId":"m1","body":"x","attributes":{"SentTimestamp":5}}`, "record m1: attributes.SentTimestamp: is a number, not a string"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":5}}`, "record m1: messageAttributes.a: is a number, not an object"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":true}}}`, "record m1: messageAttributes.a.stringValue: not a string"},
		{`{"messageId":"m1","body":"x","messageAttributes":[]}`, "record m1: messageAttributes: is an array, not an object"},
		{`{"body":"x","messageId":"m1","eventSourceARN":{}}`, "record m1: eventSourceARN: is an object, not a string"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v","stringListValues":"x"}}}`, "record m1: messageAttributes.a.stringListValues: not an array"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v","binaryListValues":{}}}}`, "record m1: messageAttributes.a.binaryListValues: not an array"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v"},"a":{"dataType":"String","stringValue":"w"}}}`, "record m1: messageAttributes.a: given twice"},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v","stringValue":null}}}`, "record m1: messageAttributes.a.stringValue: missing"},
		{`{"messageId":"m1","body":"x","body":null}`, "record m1: body: missing"},
	} {
		recs, errs, err := Decode([]byte(`{"Records":[` + tc.record + `]}`))
		if err != nil {
			t.Errorf("%s: whole event failed: %v", tc.record, err)
			continue
		}
		var re *FieldError
		if !errors.As(errs[0], &re) || re.MessageID != "m1" || recs[0].MessageID != "m1" {
			t.Errorf("%s: error %v is not a FieldError for m1", tc.record, errs[0])
			continue
		}
		if !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%s: %q does not contain %q", tc.record, errs[0], tc.want)
		}
	}
}

// TestDecodeEventRepeatedKeys: Lambda never repeats a key, nor varies
// its case; a hand-made event that does is read as encoding/json reads it
// into a map: keys exactly, the last of a repeated one winning.
func TestDecodeEventRepeatedKeys(t *testing.T) {
	for _, tc := range []struct{ record, want string }{
		{`{"messageId":"m1","body":"x","Body":"y"}`, `"m1" "x" ""`},
		{`{"messageId":"m1","Body":"y","body":"x","BODY":"z"}`, `"m1" "x" ""`},
		{`{"messageId":"m1","body":"x","body":"y"}`, `"m1" "y" ""`},
		{`{"messageId":"m0","messageId":"m1","body":"x","eventSourceARN":"a","eventSourceARN":"b"}`, `"m1" "x" "b"`},
		{`{"messageId":"m1","body":"x","attributes":{"SentTimestamp":"1"},"attributes":{"MessageGroupId":"g"}}`, `"m1" "x" "" group "g" sent ""`},
		{`{"messageId":"m1","body":"x","attributes":{"SentTimestamp":"1","SentTimestamp":"2"}}`, `"m1" "x" "" group "" sent "2"`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v"}},"messageAttributes":{"b":{"dataType":"String","stringValue":"w"}}}`, `"m1" "x" "" attrs b=w`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v","stringValue":"w"}}}`, `"m1" "x" "" attrs a=w`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"Binary","stringValue":"v","dataType":"String"}}}`, `"m1" "x" "" attrs a=v`},
		{`{"messageId":"m1","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v"},"A":{"dataType":"String","stringValue":"w"}}}`, `"m1" "x" "" attrs A=w a=v`},
	} {
		// Twice in one event: the second record may be read through a
		// template learned from the first, which must not happen.
		payload := []byte(`{"Records":[` + tc.record + `,` + tc.record + `]}`)
		recs, errs, err := Decode(payload)
		if err != nil || errs[0] != nil || errs[1] != nil {
			t.Errorf("%s: %v %v", tc.record, err, errs)
			continue
		}
		for _, r := range recs {
			got := fmt.Sprintf("%q %q %q", r.MessageID, r.Body, r.EventSourceARN)
			if strings.Contains(tc.want, "group") {
				got += fmt.Sprintf(" group %q sent %q", r.MessageGroupID, r.SentTimestamp)
			}
			if len(r.Attributes) > 0 {
				got += " attrs"
				for _, a := range r.Attributes {
					got += " " + a.Name + "=" + string(a.Value)
				}
			}
			if got != tc.want {
				t.Errorf("%s: read %s, want %s", tc.record, got, tc.want)
			}
		}
		checkTemplates(t, payload)
	}
}

// TestDecodeEventRecordsTwice: a second Records array is refused before a
// record is handed on, however the key is spelt and whatever the size.
func TestDecodeEventRecordsTwice(t *testing.T) {
	rec := func(id string) string { return `{"messageId":"` + id + `","body":"x"}` }
	for _, payload := range []string{
		`{"Records":[` + rec("a") + `,` + rec("b") + `],"Records":[` + rec("c") + `]}`,
		`{"Records":[` + rec("a") + `],"R\u0065cords":[` + rec("c") + `]}`,
		`{"R\u0065cords":[` + rec("a") + `],"Records":[]}`,
		`{"Records":[` + rec("a") + `],"x":{"Records":1},"Records":null}`,
	} {
		if _, _, err := Decode([]byte(payload)); !errors.Is(err, ErrNotSQSEvent) || !strings.Contains(fmt.Sprint(err), "Records key is given twice") {
			t.Errorf("%s: err %v, want the Records key refused as given twice", payload, err)
		}
		for _, pipelined := range []bool{false, true} {
			handed := 0
			each := func(*Record, error) { handed++ }
			var err error
			if d := newEventDecoder([]byte(payload)); pipelined {
				err = decodePipelined(d, each)
			} else {
				d.each = each
				err = d.event()
			}
			if err == nil || handed != 0 {
				t.Errorf("%s, pipelined=%v: %d records handed on before the event was refused (err %v)", payload, pipelined, handed, err)
			}
		}
	}
	// A large event, decoded on its own goroutine, is refused before a
	// record is handed on too.
	big := `{"Records":[` + strings.Repeat(rec("a")+",", PipelineMinBytes/20) + rec("b") + `],"Records":[]}`
	if _, _, err := Decode([]byte(big)); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("large event with two Records keys: err %v", err)
	}
	handed := 0
	if err := Stream([]byte(big), func(*Record, error) { handed++ }); err == nil || handed != 0 {
		t.Errorf("large event with two Records keys: %d records handed on, err %v", handed, err)
	}
	// "Records" as a value or a nested key, and a \u escape of a letter
	// elsewhere, are not a second key.
	for _, payload := range []string{
		`{"Records":[{"messageId":"a","body":"Records","messageAttributes":{"Records":{"dataType":"String","stringValue":"Records"}}}],"x":{"Records":[]}}`,
		`{"Records":[{"messageId":"a","body":"\u0041"}]}`,
	} {
		recs, _, err := Decode([]byte(payload))
		if err != nil || len(recs) != 1 {
			t.Errorf("%s: %d records, %v", payload, len(recs), err)
		}
	}
}

// TestDecodeEventDeepNesting: nesting is bounded, as in encoding/json, so a
// deep payload is an error, not a stack overflow that kills the process.
func TestDecodeEventDeepNesting(t *testing.T) {
	for _, depth := range []int{maxDepth - 10, 3_000_000} {
		for _, open := range []string{"[", `{"a":`} {
			close := map[string]string{"[": "]", `{"a":`: "}"}[open]
			payload := `{"Records":[],"x":` + strings.Repeat(open, depth) + "0" + strings.Repeat(close, depth) + `}`
			_, _, err := Decode([]byte(payload))
			if depth < maxDepth && err != nil {
				t.Errorf("depth %d of %s: %v", depth, open, err)
			}
			if depth > maxDepth && (!errors.Is(err, ErrNotSQSEvent) || !strings.Contains(err.Error(), "nested more than 10000 levels deep")) {
				t.Errorf("depth %d of %s: err %v", depth, open, err)
			}
		}
	}
	// Inside a record, in an unknown key and in a list value, too.
	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	for _, rec := range []string{
		`{"messageId":"m","body":"x","extra":` + deep + `}`,
		`{"messageId":"m","body":"x","messageAttributes":{"a":{"dataType":"String","stringValue":"v","stringListValues":[` + deep + `]}}}`,
	} {
		if _, _, err := Decode([]byte(`{"Records":[` + rec + `]}`)); err == nil || !strings.Contains(err.Error(), "nested more than") {
			t.Errorf("deep value in a record: err %v", err)
		}
	}
}

func TestDecodeEventSalvagesFIFOGroup(t *testing.T) {
	recs, errs, err := Decode([]byte(`{"Records":[{"messageId":"m1","body":1,"eventSourceARN":"arn:aws:sqs:r:1:q.fifo","attributes":{"MessageGroupId":"g"}}]}`))
	if err != nil || errs[0] == nil {
		t.Fatal(err, errs)
	}
	if recs[0].MessageGroupID != "g" || !recs[0].FIFO() {
		t.Errorf("malformed FIFO record lost its group: %+v", recs[0])
	}
}

func TestDecodeEventWholeFailures(t *testing.T) {
	for _, payload := range []string{
		``, `null`, `[]`, `"x"`, `{}`, `{"relay":"doctor"}`, `{"Records":{}}`,
		`{"Records":[{"body":"no id"}]}`, `{"Records":[{"messageId":"","body":"x"}]}`, `{"Records":[5]}`,
		"{\"Records\":[]}\x00", `{"Records":[]} x`, // data after the event, a NUL byte too
	} {
		if _, _, err := Decode([]byte(payload)); !errors.Is(err, ErrNotSQSEvent) {
			t.Errorf("%s: err %v, want ErrNotSQSEvent", payload, err)
		}
	}
	recs, _, err := Decode([]byte(`{"Records":[]}`))
	if err != nil || len(recs) != 0 {
		t.Errorf("empty batch: %v %v", recs, err)
	}
}

func TestDecodeEventUnescapesLikeEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`plain`, `{"order":1,"note":"tab\there"}`, "é😀 \u2028", `back\slash "quoted" /slash/`, "\x01\x1f",
		// Long, with escapes at every offset within a word.
		strings.Repeat(`{"k":"v"}`, 60), strings.Repeat(`ab"cdefghi\jk`, 40) + "\n",
	} {
		enc, _ := json.Marshal(body)
		// Also the escapes encoding/json never writes.
		payload := []byte(`{"Records":[{"messageId":"m\u0031","body":` + string(enc) + `,"eventSourceARN":"a\/b"}]}`)
		orig := bytes.Clone(payload)
		recs, errs, err := Decode(payload)
		if err != nil || errs[0] != nil {
			t.Fatalf("%q: %v %v", body, err, errs)
		}
		if string(recs[0].Body) != body || recs[0].MessageID != "m1" || recs[0].EventSourceARN != "a/b" {
			t.Errorf("decoded %q %q %q, want %q m1 a/b", recs[0].Body, recs[0].MessageID, recs[0].EventSourceARN, body)
		}
		if !bytes.Equal(payload, orig) {
			t.Errorf("DecodeEvent modified its input")
		}
	}
	recs, _, err := Decode([]byte(`{"Records":[{"messageId":"x","body":"\ud83d\ude00 \ud83d lone"}]}`))
	if err != nil || string(recs[0].Body) != "😀 \uFFFD lone" {
		t.Errorf("surrogates: %q %v", recs[0].Body, err)
	}
}

// FuzzDecodeEvent feeds arbitrary bytes: no panic, invalid JSON never
// accepted, every record identified, for valid events the same ids and
// bodies encoding/json reads, and the same result through templates as on
// the general path.
func FuzzDecodeEvent(f *testing.F) {
	sample, err := os.ReadFile("testdata/aws-lambda-go-sqs-event.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte(`{"Records":[{"messageId":"a","body":"{\"x\":\"\\u00e9\"}","attributes":{"MessageGroupId":"g"},"eventSourceARN":"q.fifo"}]}`))
	f.Add([]byte(`{"Records":[{"messageId":"a","body":3},{"messageId":"b","body":"x","messageAttributes":{"k":{"dataType":"Binary","binaryValue":"AA=="}}}]}`))
	f.Add([]byte(`{"Records":[]}`))
	f.Add([]byte(`{"Records":[{"body":"x"}]}`))
	f.Add([]byte(`[1e5, -0.5, true, null, "\ud800"]`))
	// Records of one layout, which the second and third are read through
	// a template learned from the first; mutations make them differ.
	f.Add([]byte(`{"Records":[` + first + `,` + first + `,` + strings.Replace(first, `"one"`, `"t\"wo"`, 1) + `]}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkTemplates(t, payload)
		orig := bytes.Clone(payload)
		recs, errs, err := Decode(payload)
		if !bytes.Equal(payload, orig) {
			t.Fatal("DecodeEvent modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrNotSQSEvent) {
				t.Fatalf("error %v is not ErrNotSQSEvent", err)
			}
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("accepted invalid JSON %q", payload)
		}
		if len(errs) != len(recs) {
			t.Fatalf("%d errors for %d records", len(errs), len(recs))
		}
		checkStreaming(t, payload, recs, errs)
		// The reference reads keys exactly, as the decoder does (encoding/json
		// into a struct would match them in any case), the last of a repeated
		// key winning.
		var top map[string]json.RawMessage
		var refRecs []map[string]json.RawMessage
		refOK := json.Unmarshal(payload, &top) == nil && json.Unmarshal(top["Records"], &refRecs) == nil && len(refRecs) == len(recs)
		for i, r := range recs {
			if r.MessageID == "" {
				t.Fatalf("record %d has no messageId", i)
			}
			if e := errs[i]; e != nil {
				var re *FieldError
				if !errors.As(e, &re) || re.MessageID != r.MessageID || !strings.HasPrefix(e.Error(), "record "+r.MessageID+": ") {
					t.Fatalf("record %d: error %v does not name the record", i, e)
				}
				continue
			}
			if !refOK {
				continue
			}
			// Strings are kept byte for byte, where encoding/json turns
			// invalid UTF-8 into U+FFFD: only valid ones are compared.
			if want, ok := referenceRecord(refRecs[i]); ok {
				got := fmt.Sprintf("%q %q %q %q %q %q %q %q %q %q", r.MessageID, r.Body, r.EventSourceARN, r.ReceiptHandle, r.TraceHeader, r.SentTimestamp, r.ReceiveCount, r.MessageGroupID, r.SequenceNumber, r.Attributes)
				if got != want && validUTF8(r) {
					t.Fatalf("record %d: decoded\n%s\nencoding/json reads\n%s", i, got, want)
				}
			}
		}
	})
}

// validUTF8 reports whether r's strings are valid UTF-8, which encoding/json
// reads as the decoder does (it turns invalid bytes into U+FFFD).
func validUTF8(r Record) bool {
	all := r.MessageID + string(r.Body) + r.EventSourceARN + r.ReceiptHandle + r.TraceHeader + r.SentTimestamp + r.ReceiveCount + r.MessageGroupID + r.SequenceNumber
	for _, a := range r.Attributes {
		all += a.Name + a.DataType
		if !strings.HasPrefix(a.DataType, "Binary") {
			all += string(a.Value)
		}
	}
	return utf8.ValidString(all)
}

// referenceRecord reads an SQS record with encoding/json, keys matched
// exactly, and formats it as FuzzDecodeEvent compares it; false if the
// record is not one the decoder accepts.
func referenceRecord(raw map[string]json.RawMessage) (string, bool) {
	var id, body, arn, handle string
	if json.Unmarshal(raw["messageId"], &id) != nil || json.Unmarshal(raw["eventSourceARN"], &arn) != nil && raw["eventSourceARN"] != nil ||
		json.Unmarshal(raw["receiptHandle"], &handle) != nil && raw["receiptHandle"] != nil {
		return "", false
	}
	var bodyp *string
	if json.Unmarshal(raw["body"], &bodyp) != nil || bodyp == nil {
		return "", false
	}
	body = *bodyp
	var sys map[string]json.RawMessage
	if raw["attributes"] != nil && json.Unmarshal(raw["attributes"], &sys) != nil {
		return "", false
	}
	sysv := map[string]string{}
	for _, k := range []string{"SentTimestamp", "ApproximateReceiveCount", "MessageGroupId", "SequenceNumber", "AWSTraceHeader"} {
		if v, ok := sys[k]; ok && json.Unmarshal(v, new(string)) != nil {
			return "", false
		}
		var v string
		json.Unmarshal(sys[k], &v)
		sysv[k] = v
	}
	var attrs map[string]map[string]json.RawMessage
	if raw["messageAttributes"] != nil && json.Unmarshal(raw["messageAttributes"], &attrs) != nil {
		return "", false
	}
	var list []Attribute
	for name, a := range attrs {
		var dataType, sv, bv *string
		if json.Unmarshal(a["dataType"], &dataType) != nil || json.Unmarshal(a["stringValue"], &sv) != nil && a["stringValue"] != nil ||
			json.Unmarshal(a["binaryValue"], &bv) != nil && a["binaryValue"] != nil || dataType == nil {
			return "", false
		}
		base, _, _ := strings.Cut(*dataType, ".")
		var value []byte
		switch {
		case (base == "String" || base == "Number") && sv != nil:
			value = []byte(*sv)
		case base == "Binary" && bv != nil:
			b, err := base64.StdEncoding.DecodeString(*bv)
			if err != nil {
				return "", false
			}
			value = b
		default:
			return "", false
		}
		list = append(list, Attribute{Name: name, DataType: *dataType, Value: value})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	if len(list) == 0 {
		list = nil
	}
	return fmt.Sprintf("%q %q %q %q %q %q %q %q %q %q", id, body, arn, handle, sysv["AWSTraceHeader"], sysv["SentTimestamp"], sysv["ApproximateReceiveCount"],
		sysv["MessageGroupId"], sysv["SequenceNumber"], list), true
}

// checkStreaming decodes payload as the handler does, one reused record at
// a time, inline, on a second goroutine, and while it arrives 5 bytes at a
// time with a look-ahead of 32 or 256 bytes (so that records run past what
// has come and the event is read again, after some records were handed
// on or before any), and fails unless each sees what DecodeEvent returned.
func checkStreaming(t *testing.T, payload []byte, recs []Record, errs []error) {
	t.Helper()
	for _, mode := range []string{"inline", "pipelined", "arriving-32", "arriving-256"} {
		n := 0
		each := func(r *Record, err error) {
			if n >= len(recs) {
				t.Fatalf("%s: record %d; DecodeEvent gave %d", mode, n, len(recs))
			}
			if !reflect.DeepEqual(*r, recs[n]) || fmt.Sprint(err) != fmt.Sprint(errs[n]) {
				t.Fatalf("%s: record %d is %+v (%v), DecodeEvent gave %+v (%v)", mode, n, *r, err, recs[n], errs[n])
			}
			n++
		}
		d := newEventDecoder(payload)
		var err error
		switch mode {
		case "inline":
			d.each = each
			err = d.event()
		case "pipelined":
			err = decodePipelined(d, each)
		default:
			tr := &trickle{full: payload, step: 5, copyEvery: 3}
			d.s.buf, _, _ = tr.Wait(1)
			d.arriving = tr
			d.ahead, _ = strconv.Atoi(strings.TrimPrefix(mode, "arriving-"))
			err = decodePipelined(d, each)
		}
		if err != nil || n != len(recs) {
			t.Fatalf("%s: %d records, %v; DecodeEvent gave %d", mode, n, err, len(recs))
		}
	}
}

// TestPlain checks the string scanner's fast path against a byte-by-byte
// reading, with each kind of byte at every position around its word and
// vector boundaries.
func TestPlain(t *testing.T) {
	// firstStop is the index of the first quote, backslash or control
	// byte, or len(b): what indexSpecial returns, and where closingQuote's string ends
	// if that byte is a quote.
	firstStop := func(b []byte) int {
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return len(b)
	}
	// What follows the closing quote is read by the word-wide checks too,
	// so the string ends the input or is followed by bytes of every class.
	var tails []string
	for _, c := range []byte{0, 'x', '"', '\\', 0x01, 0x80} {
		tails = append(tails, strings.Repeat(string([]byte{c}), 40))
	}
	tails[0] = ""
	for _, c := range []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
		for n := 0; n < 200; n++ {
			for pos := 0; pos <= n; pos++ {
				for _, tail := range tails {
					b := append(bytes.Repeat([]byte{'x'}, n+1), tail...)
					b[n] = '"'
					b[pos] = c
					want := firstStop(b)
					wantOK := want < len(b) && b[want] == '"'
					gotN, gotOK := closingQuote(b)
					if gotOK != wantOK || wantOK && gotN != want {
						t.Fatalf("closingQuote(%q) = %d, %v; want %d, %v", b, gotN, gotOK, want, wantOK)
					}
					if got := indexSpecial(b); got != want {
						t.Fatalf("indexSpecial(%q) = %d, want %d", b, got, want)
					}
					if got := indexSpecialWords(b); got != want {
						t.Fatalf("indexSpecialWords(%q) = %d, want %d", b, got, want)
					}
				}
			}
		}
	}
	if _, ok := closingQuote([]byte(strings.Repeat("x", 100))); ok {
		t.Error("closingQuote accepted a string without a closing quote")
	}
}

// TestDecodeEventKeysInAnyOrder decodes records whose keys change order,
// are escaped, spaced, unknown or more than a keys table holds, so the
// decoder's guess of the next key is wrong in every way it can be, and
// compares each record with encoding/json's reading.
func TestDecodeEventKeysInAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// key writes a key as JSON, sometimes with its first letter escaped,
	// then the colon, sometimes spaced.
	key := func(k string) string {
		q := `"` + k + `"`
		if rng.IntN(4) == 0 {
			q = fmt.Sprintf(`"\u%04x%s"`, k[0], k[1:])
		}
		if rng.IntN(4) == 0 {
			return q + " : "
		}
		return q + ":"
	}
	object := func(members map[string]string) string {
		names := make([]string, 0, len(members))
		for k := range members {
			names = append(names, k)
		}
		slices.Sort(names)
		if rng.IntN(3) > 0 { // mostly a new order, sometimes the same
			rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		}
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range names {
			if i > 0 {
				b.WriteString([]string{",", " , "}[rng.IntN(2)])
			}
			b.WriteString(key(k) + members[k])
		}
		b.WriteByte('}')
		return b.String()
	}
	var records []string
	for i := range 300 {
		// Decoys differ from a key the decoder reads in its last letter only.
		attrs := map[string]string{"SentTimestamp": `"1700000000000"`, "ApproximateReceiveCount": fmt.Sprintf(`"%d"`, i%5+1), "SenderId": `"AIDA"`, "SentTimestamx": `"1"`}
		if i%3 == 0 {
			attrs["MessageGroupId"], attrs["SequenceNumber"] = fmt.Sprintf(`"g%d"`, i%7), fmt.Sprintf(`"%d"`, i)
		}
		msgAttrs := map[string]string{}
		for j := range i % 5 {
			msgAttrs[fmt.Sprintf("a%d", (i+j)%12)] = object(map[string]string{"dataType": `"String"`, "stringValue": fmt.Sprintf(`"v%d"`, j), "stringListValues": "[]", "binaryListValues": "null", "dataTypx": `"Binary"`})
		}
		if i%4 == 0 {
			msgAttrs["bin"] = object(map[string]string{"dataType": `"Binary"`, "binaryValue": `"AAH/"`})
		}
		rec := map[string]string{
			"messageId": fmt.Sprintf(`"m-%d"`, i), "receiptHandle": `"AQEB"`, "body": fmt.Sprintf(`"body \"%d\""`, i),
			"md5OfBody": `"0"`, "eventSource": `"aws:sqs"`, "awsRegion": `"eu-west-1"`,
			"eventSourceARN": `"arn:aws:sqs:eu-west-1:1:q.fifo"`, "attributes": object(attrs), "messageAttributes": object(msgAttrs),
			"bodx": `"decoy"`, "messageIx": `"decoy"`,
		}
		for j := range i % 25 { // up to 24 unknown keys: more than a table learns
			rec[fmt.Sprintf("extra%d", j)] = `{"body":"not this one","messageId":"nor this"}`
		}
		records = append(records, object(rec))
	}
	payload := []byte(`{"Records":[` + strings.Join(records, ",") + `]}`)

	recs, errs := decodeLikeEncodingJSON(t, payload)
	checkStreaming(t, payload, recs, errs)
}

// decodeLikeEncodingJSON decodes payload, whose records must all be valid,
// and fails unless each reads as encoding/json reads it.
func decodeLikeEncodingJSON(t *testing.T, payload []byte) ([]Record, []error) {
	t.Helper()
	var want events.SQSEvent
	if err := json.Unmarshal(payload, &want); err != nil {
		t.Fatal(err)
	}
	recs, errs, err := Decode(payload)
	if err != nil || len(recs) != len(want.Records) {
		t.Fatalf("%d records, %v; encoding/json reads %d", len(recs), err, len(want.Records))
	}
	for i, r := range recs {
		w := want.Records[i]
		if errs[i] != nil {
			t.Fatalf("record %d: %v", i, errs[i])
		}
		if r.MessageID != w.MessageId || string(r.Body) != w.Body || r.EventSourceARN != w.EventSourceARN || r.ReceiptHandle != w.ReceiptHandle ||
			r.SentTimestamp != w.Attributes["SentTimestamp"] || r.ReceiveCount != w.Attributes["ApproximateReceiveCount"] ||
			r.MessageGroupID != w.Attributes["MessageGroupId"] || r.SequenceNumber != w.Attributes["SequenceNumber"] ||
			r.TraceHeader != w.Attributes["AWSTraceHeader"] {
			t.Fatalf("record %d: %+v; encoding/json reads %+v", i, r, w)
		}
		if len(r.Attributes) != len(w.MessageAttributes) {
			t.Fatalf("record %d: %d message attributes, encoding/json reads %d", i, len(r.Attributes), len(w.MessageAttributes))
		}
		for _, a := range r.Attributes {
			wa, ok := w.MessageAttributes[a.Name]
			wv := wa.BinaryValue
			if wa.StringValue != nil {
				wv = []byte(*wa.StringValue)
			}
			if !ok || a.DataType != wa.DataType || string(a.Value) != string(wv) {
				t.Fatalf("record %d: attribute %+v; encoding/json reads %+v", i, a, wa)
			}
		}
	}
	return recs, errs
}

// TestPipelinedCallbackPanic panics in the per-record callback of a
// pipelined decode: the panic reaches the caller, and the decoding
// goroutine stops instead of staying blocked on its channel.
func TestPipelinedCallbackPanic(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"Records":[`)
	for i := range 10 * pipeChunk * pipeDepth {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"messageId":"m-%d","body":"x"}`, i)
	}
	b.WriteString(`]}`)
	payload := []byte(b.String())

	before := runtime.NumGoroutine()
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		n := 0
		_ = decodePipelined(newEventDecoder(payload), func(*Record, error) {
			if n++; n == 3*pipeChunk/2 {
				panic("callback failed")
			}
		})
	}()
	if recovered != "callback failed" {
		t.Fatalf("recovered %v, want the callback's panic", recovered)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before: the decoder did not stop", runtime.NumGoroutine(), before)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkDecodeJSONBodies decodes, as the handler does, an event of
// 1,000 records whose bodies are 1 KiB JSON documents: escaped quotes
// every few bytes, the common case for event-sourced producers, where
// BenchmarkDecodeAndMap's bodies need no unescaping.
func BenchmarkDecodeJSONBodies(b *testing.B) {
	const n = 1000
	var doc strings.Builder
	doc.WriteString(`{"type":"order.paid","items":[`)
	for i := 0; doc.Len() < 1000; i++ {
		fmt.Fprintf(&doc, `{"sku":"SKU-%05d","qty":%d,"note":"gift wrap"},`, i, i%7)
	}
	doc.WriteString(`{}]}`)
	body, _ := json.Marshal(doc.String())
	var sb strings.Builder
	sb.WriteString(`{"Records":[`)
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"messageId":"%08d-0000-4000-8000-000000000000","body":%s,"attributes":{"SentTimestamp":"1700000000000"},"eventSourceARN":"arn:aws:sqs:eu-west-1:1:q"}`, i, body)
	}
	sb.WriteString(`]}`)
	payload := []byte(sb.String())
	var failed error
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for range b.N {
		d := newEventDecoder(payload)
		d.each = func(r *Record, err error) {
			if err == nil && len(r.Body) != doc.Len() {
				err = fmt.Errorf("body of %d bytes, want %d", len(r.Body), doc.Len())
			}
			if err != nil && failed == nil {
				failed = err
			}
		}
		if err := d.event(); err != nil {
			b.Fatal(err)
		}
	}
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkIndexSpecial times indexSpecial, the string scan (assembly on amd64 and
// arm64), against indexSpecialWords, its portable version, alternating them in
// one run, on a string as long as a messageId and on a 1 KiB body.
func BenchmarkIndexSpecial(b *testing.B) {
	const calls = 100 // per timing, so that reading the clock costs little
	for _, n := range []int{36, 1024} {
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			s := append(bytes.Repeat([]byte{'x'}, n), `","next":"value"`...)
			var vector, words time.Duration
			for range b.N {
				t0 := time.Now()
				for range calls {
					if indexSpecial(s) != n {
						b.Fatal("indexSpecial missed the quote")
					}
				}
				t1 := time.Now()
				for range calls {
					if indexSpecialWords(s) != n {
						b.Fatal("indexSpecialWords missed the quote")
					}
				}
				vector, words = vector+t1.Sub(t0), words+time.Since(t1)
			}
			b.ReportMetric(float64(vector.Nanoseconds())/float64(b.N*calls), "vector-ns")
			b.ReportMetric(float64(words.Nanoseconds())/float64(b.N*calls), "words-ns")
			b.ReportMetric(words.Seconds()/vector.Seconds(), "words/vector")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestDecodeEventArenaBlocks unescapes more than an arena block holds:
// many escaped bodies and Binary values, so that blocks fill in the middle
// of a value, and one body larger than a block. Each must read as
// encoding/json reads it.
func TestDecodeEventArenaBlocks(t *testing.T) {
	var records []string
	var want []string
	for i := range 150 {
		body := strings.Repeat(fmt.Sprintf(`{"n":%d,"s":"a\\b"}`, i), 20+i%13)
		if i == 70 {
			body = strings.Repeat(`"quoted" \ `, 3*arenaBlock/10)
		}
		enc, _ := json.Marshal(body)
		records = append(records, fmt.Sprintf(`{"messageId":"m%d","body":%s,"messageAttributes":{"b":{"dataType":"Binary","binaryValue":"%s"}}}`,
			i, enc, base64.StdEncoding.EncodeToString([]byte(body[:100]))))
		want = append(want, body)
	}
	payload := []byte(`{"Records":[` + strings.Join(records, ",") + `]}`)
	recs, errs, err := Decode(payload)
	if err != nil || len(recs) != len(want) {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if errs[i] != nil || string(r.Body) != want[i] || string(r.Attributes[0].Value) != want[i][:100] {
			t.Fatalf("record %d: %v, body of %d bytes %.40q…, want %d bytes %.40q…", i, errs[i], len(r.Body), r.Body, len(want[i]), want[i])
		}
	}
	checkStreaming(t, payload, recs, errs)
}

// TestEmptyBinaryValue: an empty Binary value is empty, not nil, whether or
// not an earlier string used the arena: the relay maps nil to a null Kafka
// header and empty to an empty one, so the two must not depend on what
// came before in the event (the arriving decoder's second reading found
// it).
func TestEmptyBinaryValue(t *testing.T) {
	rec := func(id, body string) string {
		return `{"messageId":"` + id + `","body":"` + body + `","messageAttributes":{"b":{"binaryValue":"","dataType":"Binary"}}}`
	}
	payload := []byte(`{"Records":[` + rec("first", "x") + `,` + rec("escaped", `a\"b`) + `,` + rec("after", "y") + `]}`)
	recs, _, err := Decode(payload)
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	for _, r := range recs {
		if v := r.Attributes[0].Value; v == nil || len(v) != 0 {
			t.Errorf("record %s: binary value %#v, want empty and not nil", r.MessageID, v)
		}
	}
}
