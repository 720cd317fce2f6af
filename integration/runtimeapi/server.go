// Package runtimeapi is a Lambda Runtime API server on 127.0.0.1 for tests
// and local runs: it hands invocations to a function process and collects
// its answers, its function errors and its init error.
package runtimeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Result is a function's answer to one invocation.
type Result struct {
	Payload   []byte
	Error     bool   // the function reported an error (POST .../error)
	ErrorType string // Lambda-Runtime-Function-Error-Type, for errors
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan Result
}

// Server is a Runtime API endpoint.
type Server struct {
	srv     *http.Server
	ln      net.Listener
	queue   chan *invocation
	seq     atomic.Int64
	mu      sync.Mutex
	open    map[string]*invocation
	initErr chan Result
	nexts   atomic.Int64
	firstAt atomic.Int64 // unix nanos of the first /next request
}

// Start serves on a random 127.0.0.1 port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, queue: make(chan *invocation), open: map[string]*invocation{}, initErr: make(chan Result, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", s.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) { s.answer(w, r, false) })
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", func(w http.ResponseWriter, r *http.Request) { s.answer(w, r, true) })
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", s.initError)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Addr is the value for AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// Nexts counts the /next requests the function made: one per invocation it
// took, plus the one it is waiting on.
func (s *Server) Nexts() int64 { return s.nexts.Load() }

// FirstNext is when the function first asked for an invocation: the end of
// its init phase.
func (s *Server) FirstNext() time.Time {
	if n := s.firstAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Invoke hands payload to the function with a deadline timeout away and
// waits for its answer, at most until ctx is done.
func (s *Server) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Result, error) {
	inv := &invocation{
		id:       "req-" + strconv.FormatInt(s.seq.Add(1), 10),
		payload:  payload,
		deadline: time.Now().Add(timeout),
		done:     make(chan Result, 1),
	}
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("function never asked for the invocation: %w", ctx.Err())
	}
	select {
	case r := <-inv.done:
		return r, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("no answer to %s: %w", inv.id, ctx.Err())
	}
}

// InitError waits for the function to report an init error.
func (s *Server) InitError(ctx context.Context) (Result, error) {
	select {
	case r := <-s.initErr:
		return r, nil
	case <-ctx.Done():
		return Result{}, errors.New("no init error reported")
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	s.nexts.Add(1)
	s.firstAt.CompareAndSwap(0, time.Now().UnixNano())
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	}
	s.mu.Lock()
	s.open[inv.id] = inv
	s.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:relay")
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
	h.Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, isErr bool) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	inv, ok := s.open[r.PathValue("id")]
	delete(s.open, r.PathValue("id"))
	s.mu.Unlock()
	if !ok {
		http.Error(w, "unknown request id", http.StatusBadRequest)
		return
	}
	inv.done <- Result{Payload: body, Error: isErr, ErrorType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}
	w.WriteHeader(http.StatusAccepted)
}

func (s *Server) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	select {
	case s.initErr <- Result{Payload: body, Error: true, ErrorType: r.Header.Get("Lambda-Runtime-Function-Error-Type")}:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
}
