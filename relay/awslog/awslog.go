// Package awslog makes the AWS SDK write through log/slog, so that its
// warnings (an IMDS fallback, a retry quota spent) are JSON lines like the
// relay's own instead of the SDK's plain "SDK <date> WARN ..." text.
package awslog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// Option is a config.LoadDefaultConfig option logging to log. The SDK
// logs requests and responses only when asked (ClientLogMode), which the
// relay never does, so no credential reaches these lines.
func Option(log *slog.Logger) func(*config.LoadOptions) error {
	return config.WithLogger(Logger(log))
}

// Logger is log as a smithy-go logger, its lines marked "source":"aws-sdk".
func Logger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		level := slog.LevelInfo
		switch c {
		case logging.Warn:
			level = slog.LevelWarn
		case logging.Debug:
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, fmt.Sprintf(format, v...), "source", "aws-sdk")
	})
}
