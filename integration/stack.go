package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/esm"
	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
	"github.com/sqs-msk-relay/relay/integration/sqsemu"
)

// Function is the lambda binary under a Runtime API, managed as Lambda
// manages a sandbox: one invocation at a time, and when an invocation
// outlives the function timeout the process is killed and a new one
// started (a cold start) for the next.
type Function struct {
	Timeout time.Duration
	argv    []string
	env     []string
	logs    io.Writer
	api     *runtimeapi.Server

	mu     sync.Mutex // one invocation at a time, as in a sandbox
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

// StartManagedFunction starts argv (the binary) under a new Runtime API.
func StartManagedFunction(argv, env []string, timeout time.Duration, logs io.Writer) (*Function, error) {
	api, err := runtimeapi.Start()
	if err != nil {
		return nil, err
	}
	f := &Function{Timeout: timeout, argv: argv, env: env, logs: logs, api: api}
	if err := f.start(); err != nil {
		api.Close()
		return nil, err
	}
	return f, nil
}

func (f *Function) start() error {
	cmd, err := StartFunction(f.argv, f.api.Addr(), append([]string{"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(f.Timeout.Seconds()))}, f.env...), f.logs)
	if err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	f.cmd, f.exited = cmd, exited
	f.starts++
	return nil
}

func (f *Function) stop() {
	if f.cmd != nil {
		f.cmd.Process.Kill()
		<-f.exited
		f.cmd = nil
	}
}

// Starts counts the processes started: 1 plus one per reset.
func (f *Function) Starts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts
}

// Invoke runs one invocation with the function's timeout. A function that
// has not answered a second after its deadline is reset.
func (f *Function) Invoke(ctx context.Context, payload []byte) (runtimeapi.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.exited:
		f.stop() // it died (an init error, a crash): a new sandbox
		if err := f.start(); err != nil {
			return runtimeapi.Result{}, err
		}
	default:
	}
	ictx, cancel := context.WithTimeout(ctx, f.Timeout+time.Second)
	defer cancel()
	res, err := f.api.Invoke(ictx, payload, f.Timeout)
	if err != nil && ctx.Err() == nil {
		f.stop()
		if serr := f.start(); serr != nil {
			return res, errors.Join(err, serr)
		}
		return res, fmt.Errorf("function timed out: %w", err)
	}
	return res, err
}

// Close stops the function and its Runtime API.
func (f *Function) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stop()
	f.api.Close()
}

// Stack is the local AWS stack: an embedded Kafka-protocol broker, the SQS
// emulator and the real lambda binary under a Runtime API, joined by event
// source mappings.
type Stack struct {
	Kafka *broker.Cluster // nil with an external cluster
	// readTopic reads a topic back for Account.
	readTopic func(ctx context.Context, topic string) ([]*kgo.Record, error)
	SQS       *sqsemu.Emulator
	Fn        *Function
	IAM       *broker.IAM // the token checker, when StackConfig.IAM
}

// StackConfig says what to start.
type StackConfig struct {
	Root            string   // the repository: node_modules and the lambda package
	Binary          string   // the lambda binary; built into a temp dir if empty
	Topics          []string // created with 3 partitions
	BrokerOpts      []kfake.Opt
	FunctionEnv     []string // RELAY_* settings; RELAY_BROKERS and RELAY_AUTH=none are added
	FunctionTimeout time.Duration
	Logs            io.Writer // the function's output
	// IAM runs the broker with TLS and MSK IAM token checks, and the
	// function with RELAY_AUTH=iam and made-up static credentials.
	IAM bool
	// Prepare, if set, runs once the SQS emulator is up and before the
	// function starts (to create queues), and returns more RELAY_*
	// settings (RELAY_DLQ_URL).
	Prepare func(s *Stack) ([]string, error)
	// External, if set, is a Kafka cluster the stack uses instead of
	// starting kfake (integration/apache's real one); Topics and
	// BrokerOpts are then the caller's business.
	External *ExternalKafka
}

// ExternalKafka is a cluster the stack does not run: its plaintext
// bootstrap list, and how to read a topic back for the accounting.
type ExternalKafka struct {
	Brokers string
	Records func(ctx context.Context, topic string) ([]*kgo.Record, error)
}

// Made-up credentials of the IAM stack, for the local broker only.
const (
	StackRegion    = "eu-west-1"
	StackAccessKey = "AKIASTACKEXAMPLE0000"
	StackSecretKey = "stack-secret-key-for-the-local-broker-only"
)

// StartStack starts everything on 127.0.0.1.
func StartStack(cfg StackConfig) (_ *Stack, err error) {
	s := &Stack{}
	defer func() {
		if err != nil {
			s.Close() // what started before the failure
		}
	}()
	env := []string{"RELAY_AUTH=none"}
	opts := cfg.BrokerOpts
	var iam *broker.IAM
	var pki *broker.PKI
	if cfg.IAM {
		dir, err := os.MkdirTemp("", "relay-stack-pki")
		if err != nil {
			return nil, err
		}
		if pki, err = broker.NewPKI(dir); err != nil {
			return nil, err
		}
		iam = &broker.IAM{Region: StackRegion, Keys: map[string]string{StackAccessKey: StackSecretKey}}
		opts = append(append(iam.Opts(), kfake.TLS(pki.ServerTLS(false))), opts...)
		env = []string{"RELAY_AUTH=iam", "RELAY_AWS_REGION=" + StackRegion, "RELAY_TLS_CA_FILE=" + pki.CAFile,
			"AWS_REGION=" + StackRegion, "AWS_ACCESS_KEY_ID=" + StackAccessKey, "AWS_SECRET_ACCESS_KEY=" + StackSecretKey}
	}
	brokers := ""
	if cfg.External != nil {
		brokers, s.readTopic = cfg.External.Brokers, cfg.External.Records
	} else {
		if s.Kafka, err = broker.Start(3, cfg.Topics, opts...); err != nil {
			return nil, err
		}
		brokers = s.Kafka.Addrs()
		s.readTopic = func(_ context.Context, topic string) ([]*kgo.Record, error) {
			return s.Kafka.Records(topic, 30*time.Second)
		}
	}
	if iam != nil && s.Kafka != nil {
		iam.Install(s.Kafka.Cluster)
		s.Kafka.ReadOpts = iam.ReaderOpts(pki.CA)
		s.IAM = iam
	}
	if s.SQS, err = sqsemu.Start(cfg.Root); err != nil {
		return nil, err
	}
	if cfg.Binary == "" {
		dir, err := os.MkdirTemp("", "relay-stack")
		if err != nil {
			return nil, err
		}
		if cfg.Binary, err = BuildFunction(dir); err != nil {
			return nil, err
		}
	}
	// The function reaches the emulator for its failure policy through
	// the SDK's standard endpoint setting. The backoff is off unless a
	// test turns it on: the tests' short visibility timeouts retry fast.
	env = append([]string{"AWS_ENDPOINT_URL_SQS=" + s.SQS.Endpoint, "AWS_REGION=" + sqsemu.Region,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "RELAY_RETRY_BASE=0"}, env...)
	env = append(append(env, "RELAY_BROKERS="+brokers), cfg.FunctionEnv...)
	if cfg.Prepare != nil {
		more, err := cfg.Prepare(s)
		if err != nil {
			return nil, err
		}
		env = append(env, more...)
	}
	if s.Fn, err = StartManagedFunction([]string{cfg.Binary}, env, cfg.FunctionTimeout, cfg.Logs); err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops everything that started.
func (s *Stack) Close() {
	if s.Fn != nil {
		s.Fn.Close()
	}
	if s.SQS != nil {
		s.SQS.Close()
	}
	if s.Kafka != nil {
		s.Kafka.Close()
	}
}

// Queue is a source queue and its dead-letter queue.
type Queue struct {
	URL, ARN, DLQURL, DLQARN string
	FIFO                     bool
}

// CreateQueue makes name (with ".fifo" appended for FIFO) and its DLQ,
// redriving after maxReceive receives.
func (s *Stack) CreateQueue(ctx context.Context, name string, fifo bool, visibility time.Duration, maxReceive int) (Queue, error) {
	c := s.SQS.Client()
	suffix := ""
	attrs := map[string]string{}
	if fifo {
		suffix = ".fifo"
		attrs["FifoQueue"] = "true"
		attrs["ContentBasedDeduplication"] = "true"
	}
	q := Queue{FIFO: fifo}
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq" + suffix), Attributes: attrs})
	if err != nil {
		return q, fmt.Errorf("create DLQ: %w", err)
	}
	q.DLQURL = *dlq.QueueUrl
	if q.DLQARN, err = s.arn(ctx, q.DLQURL); err != nil {
		return q, err
	}
	src := map[string]string{
		"VisibilityTimeout": strconv.Itoa(int(visibility.Seconds())),
		"RedrivePolicy":     fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":%d}`, q.DLQARN, maxReceive),
	}
	for k, v := range attrs {
		src[k] = v
	}
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + suffix), Attributes: src})
	if err != nil {
		return q, fmt.Errorf("create queue: %w", err)
	}
	q.URL = *out.QueueUrl
	q.ARN, err = s.arn(ctx, q.URL)
	return q, err
}

func (s *Stack) arn(ctx context.Context, url string) (string, error) {
	a, err := s.SQS.Client().GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &url, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		return "", fmt.Errorf("queue ARN: %w", err)
	}
	return a.Attributes[string(types.QueueAttributeNameQueueArn)], nil
}

// Mapping is an event source mapping from q to the function.
func (s *Stack) Mapping(q Queue, batchSize int, window time.Duration) *esm.Mapping {
	return &esm.Mapping{SQS: s.SQS.Client(), QueueURL: q.URL, QueueARN: q.ARN, Region: sqsemu.Region,
		BatchSize: batchSize, Window: window, Invoke: s.Fn.Invoke}
}

// RepoRoot finds the repository root (where go.mod is) from the working
// directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
