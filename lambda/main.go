// Command lambda is the relay's AWS Lambda function: it reads the RELAY_*
// configuration, builds the Kafka producer once per sandbox and serves SQS
// batches with relay.Handler.
package main

import (
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/runtimeapi"
)

// version is stamped by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	level := new(slog.LevelVar)
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("version", version)

	cfg, err := relay.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		initFailed(log, "Runtime.ConfigError", err)
	}
	level.Set(cfg.LogLevel)

	p, err := kafka.New(cfg, log)
	if err != nil {
		initFailed(log, "Runtime.ProducerError", err)
	}
	log.Info("relay ready", "brokers", cfg.Brokers, "topic", cfg.Topic, "auth", cfg.Auth, "clientId", cfg.ClientID)
	lambda.Start(relay.NewHandler(cfg, p, log))
}

func initFailed(log *slog.Logger, errorType string, err error) {
	log.Error("cannot start", "errorType", errorType, "error", err.Error())
	if rerr := runtimeapi.ReportInitError(errorType, err); rerr != nil {
		log.Error("cannot report the init error to Lambda", "error", rerr.Error())
	}
	os.Exit(1)
}
