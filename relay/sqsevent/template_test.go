package sqsevent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
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
		{"number where a skipped string was", `"AIDA"`, `12.5`, true},
		{"other receipt handle", `"AQEB"`, `"AQEC+/="`, true},
		{"receipt handle not a string", `"AQEB"`, `12.5`, false},
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

// TestTemplatesAlternating alternates two layouts, which the two
// templates hold: only the second record misses. Three layouts in turn
// miss every time, so templates stop being tried.
func TestTemplatesAlternating(t *testing.T) {
	layouts := []string{first, strings.Replace(first, `"type":`, `"kind":`, 1), strings.Replace(first, `"bin":`, `"raw":`, 1)}
	tests := []struct {
		layouts      int
		hits, misses int
	}{
		{2, 38, 1},
		{3, 0, maxMisses + 1},
	}
	for _, tt := range tests {
		var records []string
		for i := range 40 {
			records = append(records, strings.Replace(layouts[i%tt.layouts], `"m-1"`, fmt.Sprintf(`"m-%d"`, i), 1))
		}
		hits, misses := checkTemplates(t, []byte(`{"Records":[`+strings.Join(records, ",")+`]}`))
		if hits != tt.hits || misses != tt.misses {
			t.Errorf("%d layouts in turn: templates read %d records and missed %d; want %d and %d", tt.layouts, hits, misses, tt.hits, tt.misses)
		}
	}
}

// mixedEvent is an event of n records as a busy queue sends it: most in
// one layout, some with an AWSTraceHeader system attribute (X-Ray
// sampled), some with one more message attribute, and JSON bodies.
func mixedEvent(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	handle := strings.Repeat("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a", 9) // receipt handles run to hundreds of bytes
	var records []string
	for i := range n {
		attrs := fmt.Sprintf(`{"ApproximateReceiveCount":"%d","SentTimestamp":"17000000%05d","SenderId":"AIDAIENQZJOLO23YVJ4VO","ApproximateFirstReceiveTimestamp":"17000000%05d"`, 1+i%3, i, i)
		if rng.IntN(10) == 0 {
			attrs += `,"AWSTraceHeader":"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"`
		}
		msgAttrs := fmt.Sprintf(`"type":{"stringValue":"order.paid","stringListValues":[],"binaryListValues":[],"dataType":"String"},"tenant":{"stringValue":"t-%d","stringListValues":[],"binaryListValues":[],"dataType":"String"}`, i%16)
		if rng.IntN(20) == 0 {
			msgAttrs += `,"retry":{"stringValue":"2","stringListValues":[],"binaryListValues":[],"dataType":"Number"}`
		}
		body, _ := json.Marshal(fmt.Sprintf(`{"orderId":"o-%d","total":%d.%02d,"note":"a \"gift\""}`, i, i*3, i%100))
		records = append(records, fmt.Sprintf(`{"messageId":"%08d-6c43-4e1d-8c4f-2d4a6bb0a1e5","receiptHandle":"%s%d","body":%s,"attributes":%s},"messageAttributes":{%s},"md5OfMessageAttributes":"b25f48e8c2a6f6b8f5a3b3f0d6d7a1c2","md5OfBody":"6a204bd89f3c8348afd5c77c717a097a","eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:eu-west-1:123456789012:orders","awsRegion":"eu-west-1"}`,
			i, handle, i, body, attrs, msgAttrs))
	}
	return []byte(`{"Records":[` + strings.Join(records, ",") + `]}`)
}

// TestTemplatesOnMixedLayouts reads a mixedEvent, compact as Lambda sends
// it and indented: each record reads as encoding/json reads it, templates
// read most records, and they are still being tried at the end.
func TestTemplatesOnMixedLayouts(t *testing.T) {
	compact := mixedEvent(200)
	var indented bytes.Buffer
	if err := json.Indent(&indented, compact, "", "  "); err != nil {
		t.Fatal(err)
	}
	for _, payload := range [][]byte{compact, indented.Bytes()} {
		recs, _ := decodeLikeEncodingJSON(t, payload)
		hits, misses := checkTemplates(t, payload)
		if hits < len(recs)*3/4 || misses > len(recs)/4 {
			t.Errorf("templates read %d of %d records and missed %d (%.20q…)", hits, len(recs), misses, payload)
		}
	}
}

// BenchmarkDecodeMixedLayouts decodes a 1,000-record mixedEvent through
// templates and on the general path only, alternated, so that templates
// are seen to pay off where layouts vary too.
func BenchmarkDecodeMixedLayouts(b *testing.B) {
	const n = 1000
	payload := mixedEvent(n)
	var took [2]time.Duration // through templates, general path only
	var hits int
	for range b.N {
		for k, noTemplates := range []bool{false, true} {
			start := time.Now()
			d := newEventDecoder(payload)
			d.noTemplates = noTemplates
			d.each = func(*Record, error) {}
			if err := d.event(); err != nil {
				b.Fatal(err)
			}
			took[k] += time.Since(start)
			if !noTemplates {
				hits = d.hits
			}
		}
	}
	b.ReportMetric(float64(took[0].Nanoseconds())/float64(b.N*n), "templates-ns/record")
	b.ReportMetric(float64(took[1].Nanoseconds())/float64(b.N*n), "general-ns/record")
	b.ReportMetric(took[1].Seconds()/took[0].Seconds(), "general/templates")
	b.ReportMetric(float64(hits)/n, "read-by-templates")
	b.ReportMetric(0, "ns/op")
}
