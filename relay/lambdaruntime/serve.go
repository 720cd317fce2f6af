package lambdaruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Handler is what Serve calls for each invocation; relay.Handler is one
// (and, like aws-lambda-go's lambda.Handler, it takes the raw event).
type Handler interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// The Runtime API's headers on an invocation.
const (
	headerRequestID   = "Lambda-Runtime-Aws-Request-Id"
	headerDeadline    = "Lambda-Runtime-Deadline-Ms"
	headerFunctionARN = "Lambda-Runtime-Invoked-Function-Arn"
	headerTraceID     = "Lambda-Runtime-Trace-Id"
	headerErrorType   = "Lambda-Runtime-Function-Error-Type"
)

// Serve runs the invocation loop against the Runtime API at api (host:port,
// AWS_LAMBDA_RUNTIME_API) until the API fails or the handler panics, and
// returns why. It replaces aws-lambda-go's lambda.Start for one reason: the
// event is read into one buffer kept across invocations. aws-lambda-go takes
// its buffer from a sync.Pool, which misses whenever the goroutine resumes
// on another P, and a miss grows a fresh buffer to the event's size: about
// 5.6 ms and 16 MB of garbage for a 6 MB event (docs/performance.md).
func Serve(api string, h Handler, log *slog.Logger) error {
	c := &client{
		base: runtimeURL(api) + "invocation/",
		// The Runtime API is link-local: never through a proxy, never
		// timed out (/next waits for as long as no event comes).
		http: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1}},
		log:  log,
	}
	for {
		inv, err := c.next(h)
		if err != nil {
			return err
		}
		if err := c.serve(h, inv); err != nil {
			return err
		}
	}
}

type client struct {
	base string
	http *http.Client
	log  *slog.Logger
	buf  []byte // the event's bytes, reused: capacity grows to the largest event
}

// invocation is one event read from /next.
type invocation struct {
	id       string
	deadline time.Time
	arn      string
	trace    string
	payload  []byte // c.buf: valid until the next call to next
	// event, for a large event and a StreamHandler, is the event while
	// it arrives (payload is nil); read is closed once it has.
	event *Event
	read  chan struct{}
}

// next waits for the next invocation. Its event is read whole, but for a
// StreamHandler an event larger than streamAfter is read on a goroutine
// while the handler starts on it.
func (c *client) next(h Handler) (*invocation, error) {
	res, err := c.http.Get(c.base + "next")
	if err != nil {
		return nil, fmt.Errorf("get the next invocation: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		return nil, fmt.Errorf("get the next invocation: the Runtime API answered %s", res.Status)
	}
	inv := &invocation{id: res.Header.Get(headerRequestID), arn: res.Header.Get(headerFunctionARN),
		trace: res.Header.Get(headerTraceID)}
	if inv.id == "" {
		res.Body.Close()
		return nil, fmt.Errorf("get the next invocation: no %s header", headerRequestID)
	}
	ms, deadlineErr := strconv.ParseInt(res.Header.Get(headerDeadline), 10, 64)
	_, streams := h.(StreamHandler)
	streams = streams && deadlineErr == nil
	size := int(res.ContentLength) // -1 when the event comes chunked, as AWS's emulator sends it
	buf, n, err := readInto(res.Body, c.buf[:cap(c.buf)], 0, size, func(_ []byte, n int) bool { return streams && n > streamAfter })
	switch {
	case err == nil:
		inv.event, inv.read = newEvent(buf, n), make(chan struct{})
		go func() {
			defer close(inv.read)
			defer res.Body.Close()
			c.buf = inv.event.readRest(res.Body, size)
		}()
	case err == io.EOF:
		res.Body.Close()
		c.buf, inv.payload = buf, buf[:n]
	default:
		res.Body.Close()
		return nil, fmt.Errorf("read the invocation's event (%d bytes so far): %w", n, err)
	}
	if deadlineErr != nil {
		// Without a deadline the relay cannot keep its promise to answer
		// in time: fail the invocation rather than guess.
		return inv, c.fail(inv, "Runtime.InvalidDeadline", fmt.Errorf("invocation %s: %s %q: %w", inv.id, headerDeadline, res.Header.Get(headerDeadline), deadlineErr), nil)
	}
	inv.deadline = time.UnixMilli(ms)
	return inv, nil
}

func (c *client) serve(h Handler, inv *invocation) error {
	if inv.deadline.IsZero() {
		return nil // next answered it with an error already
	}
	ctx, cancel := context.WithDeadline(context.Background(), inv.deadline)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: inv.id, InvokedFunctionArn: inv.arn})
	// Where the X-Ray SDK looks for it; Lambda's own runtimes set it too.
	os.Setenv("_X_AMZN_TRACE_ID", inv.trace)
	var resp []byte
	var panicked *panicValue
	var err error
	if inv.event != nil {
		resp, panicked, err = call(func() ([]byte, error) { return h.(StreamHandler).InvokeStream(ctx, inv.event) })
		// The answer goes on the connection the event came on, after it.
		<-inv.read
		if _, _, rerr := inv.event.Wait(0); rerr != nil {
			return fmt.Errorf("read the invocation's event: %w", rerr)
		}
	} else {
		resp, panicked, err = call(func() ([]byte, error) { return h.Invoke(ctx, inv.payload) })
	}
	if panicked != nil {
		c.log.Error("the handler panicked: reporting it, then exiting", "requestId", inv.id, "panic", fmt.Sprint(panicked.value), "stack", panicked.stack[0])
		if ferr := c.fail(inv, typeName(panicked.value), fmt.Errorf("%v", panicked.value), panicked.stack); ferr != nil {
			return ferr
		}
		return fmt.Errorf("the handler panicked: %v", panicked.value)
	}
	if err != nil {
		c.log.Error("invocation failed", "requestId", inv.id, "errorType", typeName(err), "error", err.Error())
		return c.fail(inv, typeName(err), err, nil)
	}
	return c.post(c.base+inv.id+"/response", resp, "")
}

type panicValue struct {
	value any
	stack []string
}

// call runs the handler, turning a panic into a value to report.
func call(invoke func() ([]byte, error)) (resp []byte, p *panicValue, err error) {
	defer func() {
		if v := recover(); v != nil {
			p = &panicValue{value: v, stack: []string{string(debug.Stack())}}
		}
	}()
	resp, err = invoke()
	return resp, nil, err
}

// fail posts err as the invocation's error, as aws-lambda-go does: the
// error's type name is its errorType.
func (c *client) fail(inv *invocation, errorType string, err error, stack []string) error {
	body, err := errorBody(errorType, err, stack)
	if err != nil {
		return err
	}
	return c.post(c.base+inv.id+"/error", body, errorType)
}

// errorBody is the Runtime API's error document.
func errorBody(errorType string, err error, stack []string) ([]byte, error) {
	if stack == nil {
		stack = []string{}
	}
	body, merr := json.Marshal(map[string]any{"errorMessage": err.Error(), "errorType": errorType, "stackTrace": stack})
	if merr != nil {
		return nil, fmt.Errorf("encode the error for the Runtime API: %w", merr)
	}
	return body, nil
}

// runtimeURL is the Runtime API's base URL at api (host:port).
func runtimeURL(api string) string { return "http://" + api + "/2018-06-01/runtime/" }

func (c *client) post(url string, body []byte, errorType string) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post to the Runtime API: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if errorType != "" {
		req.Header.Set(headerErrorType, errorType)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("post to the Runtime API: %w", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("post to the Runtime API: it answered %s", res.Status)
	}
	return nil
}

// typeName is v's type name without the pointer: "InvalidSQSEvent" for
// *relay.InvalidSQSEvent, as aws-lambda-go reports it.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Name() == "" {
		return t.String()
	}
	return t.Name()
}
