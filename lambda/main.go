// Command lambda is the relay's AWS Lambda function: it reads the RELAY_*
// configuration, builds the Kafka producer once per sandbox and serves SQS
// batches with relay.Handler.
package main

import (
	"bytes"
	"context"
	"errors"
	stdlog "log"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/auth"
	"github.com/sqs-msk-relay/relay/relay/awslog"
	"github.com/sqs-msk-relay/relay/relay/doctor"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/lambdaruntime"
	relaysqs "github.com/sqs-msk-relay/relay/relay/sqs"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

// initBudget bounds the AWS calls made at init; Lambda allows 10 s.
const initBudget = 5 * time.Second

// readyWait bounds init's wait for the producer id, so that the first
// batch does not pay for it; brokers that do not answer cost init this
// much and fail nothing.
const readyWait = 2 * time.Second

func main() {
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("version", version)
	// A dependency printing through the standard log package writes
	// JSON lines too.
	stdlog.SetFlags(0)
	stdlog.SetOutput(jsonLines{log})

	cfg, err := relay.ConfigFromEnv(os.LookupEnv)
	if err == nil {
		err = kafka.CheckProperties(cfg.KafkaProperties)
	}
	if err != nil {
		initFailed(log, "Runtime.ConfigError", err)
	}
	level.Set(cfg.LogLevel)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && cfg.FunctionMemoryMB > 0 {
		debug.SetMemoryLimit(relay.GoMemoryLimit(cfg.FunctionMemoryMB))
	}

	ctx, cancel := context.WithTimeout(context.Background(), initBudget)
	defer cancel()
	sdkLog := awslog.Option(log)
	a, err := auth.Setup(ctx, cfg, sdkLog)
	if err != nil {
		initFailed(log, "Runtime.AuthError", err)
	}
	p, err := kafka.New(a.Config, log, a.Options()...)
	if err != nil {
		initFailed(log, "Runtime.ProducerError", err)
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, readyWait)
	began := time.Now()
	if err := p.Ready(readyCtx, cfg.Topic); err != nil {
		log.Warn("the Kafka producer is not ready at the end of init: the first batch waits for it", "waitedMs", time.Since(began).Milliseconds(), "error", err.Error())
	}
	readyCancel()
	log.Info("relay ready", "brokers", cfg.Brokers, "topic", cfg.Topic, "auth", cfg.Auth, "clientId", cfg.ClientID,
		"producerReadyMs", time.Since(began).Milliseconds())
	h := relay.NewHandler(cfg, p, log)
	h.Warm()
	h.Metrics = &relay.Metrics{W: os.Stdout, FunctionName: cfg.ClientID}
	if h.Retry.Base > 0 || h.DeadLetters {
		// The endpoint comes from the SDK's own configuration
		// (AWS_ENDPOINT_URL_SQS); the calls are bounded per batch.
		if awsCfg, err := config.LoadDefaultConfig(ctx, sdkLog); err != nil {
			log.Warn("no SQS client: failed records come back after the queue's visibility timeout", "error", err.Error())
		} else {
			h.Queue = relaysqs.NewQueue(awssqs.NewFromConfig(awsCfg), cfg.DLQURL)
		}
	}
	var sqsPing func(ctx context.Context) (string, error)
	if q, ok := h.Queue.(*relaysqs.Queue); ok {
		sqsPing = q.Ping
	}
	h.Diagnose = func(ctx context.Context) any {
		return doctor.Run(ctx, a.Config, doctor.Options{Tokens: a.TokenSource(), SQS: sqsPing})
	}
	api := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if api == "" {
		initFailed(log, "Runtime.ConfigError", errors.New("AWS_LAMBDA_RUNTIME_API is not set: the relay runs inside Lambda or beside a Runtime API (make run)"))
	}
	err = lambdaruntime.Serve(api, arriving{h}, log)
	log.Error("the invocation loop stopped: exiting", "error", err.Error())
	os.Exit(1)
}

func initFailed(log *slog.Logger, errorType string, err error) {
	log.Error("cannot start", "errorType", errorType, "error", err.Error())
	if rerr := lambdaruntime.ReportInitError(errorType, err); rerr != nil {
		log.Error("cannot report the init error to Lambda", "error", rerr.Error())
	}
	os.Exit(1)
}

// arriving hands the relay large events while they arrive, so that it
// produces during the transfer.
type arriving struct{ *relay.Handler }

func (a arriving) InvokeStream(ctx context.Context, ev *lambdaruntime.Event) ([]byte, error) {
	return a.InvokeArriving(ctx, ev)
}

// jsonLines writes each line given to the standard log package as a JSON
// line of log, at error level.
type jsonLines struct{ log *slog.Logger }

func (j jsonLines) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		j.log.Error(string(line))
	}
	return len(p), nil
}
