package relay

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkTemplates decodes payload as DecodeEvent does, through templates,
// and on the general path only, and fails unless both read the same
// records, record errors and event error. It returns how many records the
// templates read and how many they missed.
func checkTemplates(t *testing.T, payload []byte) (hits, misses int) {
	t.Helper()
	read := func(noTemplates bool) *eventDecoder {
		d := newEventDecoder(payload)
		d.noTemplates = noTemplates
		err := d.event()
		if err != nil {
			d.errs = append(d.errs, fmt.Errorf("event: %w", err))
		}
		return d
	}
	tm, gen := read(false), read(true)
	if !reflect.DeepEqual(tm.recs, gen.recs) || fmt.Sprint(tm.errs) != fmt.Sprint(gen.errs) {
		t.Fatalf("through templates:\n%+v %v\ngeneral path:\n%+v %v", tm.recs, tm.errs, gen.recs, gen.errs)
	}
	if gen.hits != 0 || gen.tmpl != nil {
		t.Fatalf("general path only, yet %d records read through a template", gen.hits)
	}
	return tm.hits, tm.misses
}

// first is the layout the template is learned from, as Lambda writes it.
const first = `{"messageId":"m-1","receiptHandle":"AQEB","body":"one",` +
	`"attributes":{"ApproximateReceiveCount":"1","SentTimestamp":"1700000000000","SenderId":"AIDA","MessageGroupId":"g","SequenceNumber":"1"},` +
	`"messageAttributes":{"type":{"stringValue":"order.paid","stringListValues":[],"binaryListValues":[],"dataType":"String"},` +
	`"bin":{"binaryValue":"AAH/","stringListValues":[],"binaryListValues":[],"dataType":"Binary"}},` +
	`"md5OfBody":"0","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:1:q.fifo","awsRegion":"eu-west-1"}`

// TestTemplateReadsLikeGeneralPath reads a record after one of Lambda's
// layout, changed in one place: the template reads it where only values
// changed, and gives it to the general path otherwise, with the same
// result either way.
func TestTemplateReadsLikeGeneralPath(t *testing.T) {
	tests := []struct {
		name       string
		old, new   string // replaced once in the second record
		viaPattern bool
	}{
		{"same layout, other values", `"m-1"`, `"m-2"`, true},
		{"escaped body", `"one"`, `"{\"x\":\"\\u00e9\\n\"}"`, true},
		{"empty body", `"one"`, `""`, true},
		{"escaped messageId", `"m-1"`, `"m\u002d2"`, true},
		{"other Binary value", `"AAH/"`, `"/w=="`, true},
		{"other dataType label", `"String"`, `"String.json"`, true},
		{"number where a skipped string was", `"AQEB"`, `12.5`, true},
		{"object where a skipped string was", `"aws:sqs"`, `{"body":"no"}`, true},
		{"other attribute name", `"type":`, `"kind":`, false},
		{"extra key", `"md5OfBody"`, `"x":"y","md5OfBody"`, false},
		{"space", `"body":"one"`, `"body": "one"`, false},
		{"null body", `"one"`, `null`, false},
		{"numeric body", `"one"`, `1`, false},
		{"empty messageId", `"m-1"`, `""`, false},
		{"numeric messageId", `"m-1"`, `7`, false},
		{"Binary value not base64", `"AAH/"`, `"!!"`, false},
		{"dataType unknown", `"String"`, `"Text"`, false},
		{"dataType not a string", `"String"`, `5`, false},
		{"list values", `"stringListValues":[]`, `"stringListValues":["a"]`, false},
		{"control byte in a value", `"one"`, "\"o\x01ne\"", false},
		{"bad escape", `"one"`, `"o\qne"`, false},
		{"unterminated", `"awsRegion":"eu-west-1"}`, `"awsRegion":"eu-west-1`, false},
		{"SentTimestamp not a string", `"1700000000000"`, `1700000000000`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := strings.Replace(first, tt.old, tt.new, 1)
			if second == first {
				t.Fatalf("%q is not in the record", tt.old)
			}
			// A third record in the first layout: read through the template
			// again, or through one relearned after a miss.
			third := strings.Replace(first, `"m-1"`, `"m-3"`, 1)
			payload := []byte(`{"Records":[` + first + `,` + second + `,` + third + `]}`)
			hits, misses := checkTemplates(t, payload)
			if tt.viaPattern && (hits != 2 || misses != 0) {
				t.Errorf("templates read %d records and missed %d; want 2 and 0", hits, misses)
			}
			// Had the template read the second record, the third would not
			// miss either.
			if !tt.viaPattern && misses == 0 {
				t.Errorf("templates read %d records and missed none; want the second missed", hits)
			}
		})
	}
}

// TestTemplatesGiveUp alternates two layouts: each record misses the
// template learned from the one before, so templates stop being tried.
func TestTemplatesGiveUp(t *testing.T) {
	other := strings.Replace(first, `"type":`, `"kind":`, 1)
	var records []string
	for i := range 40 {
		r := []string{first, other}[i%2]
		records = append(records, strings.Replace(r, `"m-1"`, fmt.Sprintf(`"m-%d"`, i), 1))
	}
	hits, misses := checkTemplates(t, []byte(`{"Records":[`+strings.Join(records, ",")+`]}`))
	if hits != 0 || misses != maxMisses+1 {
		t.Errorf("templates read %d records and missed %d; want 0 and %d", hits, misses, maxMisses+1)
	}
}
