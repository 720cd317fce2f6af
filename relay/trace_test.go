package relay

import "testing"

// TestTraceparent: X-Ray headers as SQS passes them, and the W3C
// traceparent each becomes, or none where W3C would call it invalid.
func TestTraceparent(t *testing.T) {
	for _, tt := range []struct {
		xray, want string // want "" for none
	}{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"},
		{"Sampled=1; Parent=53995c3f42cd8ad8; Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=a87bd80c:1", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", ""}, // no parent: W3C needs one
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000", ""},
		{"Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8", ""},
		{"Root=1-5759E988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", ""}, // uppercase
		{"Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8", ""},
		{"Root=1-5759e988-bd862e3f;Parent=53995c3f42cd8ad8", ""},
		{"garbage", ""},
		{"", ""},
	} {
		var buf [traceparentLen]byte
		got, ok := traceparent(&buf, tt.xray)
		if string(got) != tt.want || ok != (tt.want != "") {
			t.Errorf("traceparent(%q) = %q, %v; want %q", tt.xray, got, ok, tt.want)
		}
	}
}

// TestMapTraceHeaders: the X-Ray header travels verbatim with its derived
// traceparent; a traceparent attribute from the producer wins.
func TestMapTraceHeaders(t *testing.T) {
	m := NewMapper(Config{Topic: "events", MaxMessageBytes: 100})
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	headers := func(r *Record) map[string][]string {
		var msg Message
		msg.Headers = make([]Header, 0, HeaderCount(r))
		if err := m.Map(r, &msg); err != nil {
			t.Fatal(err)
		}
		if len(msg.Headers) > HeaderCount(r) {
			t.Errorf("%d headers, HeaderCount said %d", len(msg.Headers), HeaderCount(r))
		}
		out := map[string][]string{}
		for _, h := range msg.Headers {
			out[h.Key] = append(out[h.Key], string(h.Value))
		}
		return out
	}
	h := headers(&Record{MessageID: "m1", Body: []byte("b"), TraceHeader: xray})
	if got := h[HeaderXRay]; len(got) != 1 || got[0] != xray {
		t.Errorf("%s = %v, want the AWSTraceHeader verbatim", HeaderXRay, got)
	}
	if got := h[HeaderTraceparent]; len(got) != 1 || got[0] != "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01" {
		t.Errorf("traceparent = %v", got)
	}
	own := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	h = headers(&Record{MessageID: "m2", Body: []byte("b"), TraceHeader: xray,
		Attributes: []Attribute{{Name: "traceparent", DataType: "String", Value: []byte(own)}}})
	if got := h[HeaderTraceparent]; len(got) != 1 || got[0] != own {
		t.Errorf("traceparent = %v, want only the producer's %s", got, own)
	}
	h = headers(&Record{MessageID: "m3", Body: []byte("b")})
	if len(h[HeaderXRay]) != 0 || len(h[HeaderTraceparent]) != 0 {
		t.Errorf("trace headers without an AWSTraceHeader: %v", h)
	}
}
