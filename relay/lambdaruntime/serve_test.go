package lambdaruntime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// event is one invocation the test Runtime API hands out.
type event struct {
	payload  string
	deadline string // header value; "" for now + 10 s
	chunked  bool   // no Content-Length
	// hold, if set, is waited on after the first held bytes are sent;
	// with cut, the connection is closed then instead.
	hold chan struct{}
	held int
	cut  bool
}

// answer is what the function posted for an invocation.
type answer struct {
	path, errorType, body string
}

// fakeAPI serves events in order on /next, then fails /next so that Serve
// returns; it records every answer.
type fakeAPI struct {
	mu      sync.Mutex
	events  []event
	answers []answer
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasSuffix(r.URL.Path, "/next") {
		if len(f.events) == 0 {
			http.Error(w, "no more events", http.StatusGone)
			return
		}
		e := f.events[0]
		f.events = f.events[1:]
		id := strconv.Itoa(len(f.answers) + len(f.events))
		if e.deadline == "" {
			e.deadline = strconv.FormatInt(time.Now().Add(10*time.Second).UnixMilli(), 10)
		}
		w.Header().Set(headerRequestID, "req-"+id)
		w.Header().Set(headerDeadline, e.deadline)
		if !e.chunked {
			w.Header().Set("Content-Length", strconv.Itoa(len(e.payload)))
		}
		rest := e.payload
		if e.held > 0 {
			io.WriteString(w, e.payload[:e.held])
			w.(http.Flusher).Flush()
			if e.cut {
				panic(http.ErrAbortHandler)
			}
			f.mu.Unlock()
			<-e.hold
			f.mu.Lock()
			rest = e.payload[e.held:]
		}
		io.WriteString(w, rest)
		if e.chunked {
			w.(http.Flusher).Flush()
		}
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.answers = append(f.answers, answer{path: r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:], errorType: r.Header.Get(headerErrorType), body: string(b)})
	w.WriteHeader(http.StatusAccepted)
}

type badEvent struct{}

func (*badEvent) Error() string { return "bad event" }

// echo answers with the payload, fails on "fail", panics on "panic", and
// checks the context it is given.
type echo struct{ t *testing.T }

func (e echo) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if lc, ok := lambdacontext.FromContext(ctx); !ok || !strings.HasPrefix(lc.AwsRequestID, "req-") {
		e.t.Errorf("no request id in the context: %+v", lc)
	}
	if _, ok := ctx.Deadline(); !ok {
		e.t.Error("no deadline in the context")
	}
	switch string(payload) {
	case "fail":
		return nil, &badEvent{}
	case "panic":
		panic("boom")
	}
	return append([]byte(nil), payload...), nil
}

func TestServe(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	api := &fakeAPI{events: []event{
		{payload: big},
		{payload: "small"}, // the big event's buffer, resliced
		{payload: big[:1000], chunked: true},
		{payload: "fail"},
		{payload: "x", deadline: "soon"},
		{payload: "after"},
		{payload: "panic"},
		{payload: "never served"},
	}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	var logs bytes.Buffer // read once Serve has returned
	done := make(chan error, 1)
	go func() {
		done <- Serve(strings.TrimPrefix(srv.URL, "http://"), echo{t}, slog.New(slog.NewJSONHandler(&logs, nil)))
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Errorf("Serve returned %v, want the panic", err)
	}
	want := []answer{
		{path: "response", body: big},
		{path: "response", body: "small"},
		{path: "response", body: big[:1000]},
		{path: "error", errorType: "badEvent", body: `{"errorMessage":"bad event","errorType":"badEvent","stackTrace":[]}`},
		{path: "error", errorType: "Runtime.InvalidDeadline"},
		{path: "response", body: "after"},
		{path: "error", errorType: "string"},
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.answers) != len(want) {
		t.Fatalf("%d answers, want %d: %+v", len(api.answers), len(want), api.answers)
	}
	for i, w := range want {
		got := api.answers[i]
		if got.path != w.path || got.errorType != w.errorType || w.body != "" && got.body != w.body {
			t.Errorf("answer %d: %s %q %.80q, want %s %q %.80q", i, got.path, got.errorType, got.body, w.path, w.errorType, w.body)
		}
	}
	if b := api.answers[4].body; !strings.Contains(b, `Lambda-Runtime-Deadline-Ms \"soon\"`) {
		t.Errorf("the bad deadline's error does not name the header and value: %s", b)
	}
	if b := api.answers[6].body; !strings.Contains(b, `"errorMessage":"boom"`) || !strings.Contains(b, "serve_test.go") {
		t.Errorf("the panic's error has no message or stack: %.300s", b)
	}
	l := logs.String()
	if !strings.Contains(l, `"msg":"invocation failed","requestId":"req-`) || !strings.Contains(l, `"errorType":"badEvent"`) {
		t.Errorf("no log line for the failed invocation:\n%s", l)
	}
	if !strings.Contains(l, `"msg":"the handler panicked: reporting it, then exiting"`) || !strings.Contains(l, `"panic":"boom"`) || !strings.Contains(l, "serve_test.go") {
		t.Errorf("no log line with the panic and its stack:\n%.500s", l)
	}
}

func TestServeStopsWhenTheAPIFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	err := Serve(addr, echo{t}, slog.New(slog.DiscardHandler))
	var netErr interface{ Timeout() bool }
	if err == nil || !errors.As(err, &netErr) {
		t.Errorf("Serve returned %v, want the connection error", err)
	}
}

// streamer is echo that also takes events as they arrive, noting whether
// it had one before all of it came, and lets the held rest come then.
type streamer struct {
	echo
	hold     chan struct{}
	early    int // events seen incomplete
	streamed int
	invoked  []string
}

func (s *streamer) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	s.invoked = append(s.invoked, string(payload))
	return s.echo.Invoke(ctx, payload)
}

func (s *streamer) InvokeStream(ctx context.Context, ev *Event) ([]byte, error) {
	s.streamed++
	if _, complete, _ := ev.Wait(0); !complete {
		s.early++
	}
	s.hold <- struct{}{}
	buf, complete, err := ev.Wait(math.MaxInt)
	if !complete || err != nil {
		return nil, fmt.Errorf("the event did not come whole: %v", err)
	}
	return s.echo.Invoke(ctx, buf)
}

// TestServeStreams: a large event goes to a StreamHandler before all of
// it has come, chunked or not, and its answer is what came; a small one
// goes to Invoke; an event cut off stops Serve with the reason.
func TestServeStreams(t *testing.T) {
	big := strings.Repeat("y", 3*streamAfter)
	hold := make(chan struct{}, 1) // the cut event's handler sends too, and nobody waits
	api := &fakeAPI{events: []event{
		{payload: big, hold: hold, held: streamAfter + 100},
		{payload: big, chunked: true, hold: hold, held: streamAfter + 1},
		{payload: "small"},
		{payload: big, held: streamAfter + 1, cut: true},
	}}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	h := &streamer{echo: echo{t}, hold: hold}
	err := Serve(strings.TrimPrefix(srv.URL, "http://"), h, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "read the invocation's event") {
		t.Errorf("Serve returned %v, want the event's read failing", err)
	}
	if h.streamed != 3 || h.early != 3 {
		t.Errorf("%d events streamed, %d of them seen before they had come whole; want the three large ones", h.streamed, h.early)
	}
	if len(h.invoked) != 1 || h.invoked[0] != "small" {
		t.Errorf("Invoke was called with %.20q, want the small event only", h.invoked)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.answers) != 3 || api.answers[0].body != big || api.answers[1].body != big || api.answers[2].body != "small" {
		t.Errorf("answers %.40q, want the two large events and the small one", api.answers)
	}
}
