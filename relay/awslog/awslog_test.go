package awslog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/smithy-go/logging"
)

func TestLoggerWritesJSON(t *testing.T) {
	for _, tc := range []struct {
		class logging.Classification
		level string
	}{
		{logging.Warn, "WARN"},
		{logging.Debug, "DEBUG"},
		{"other", "INFO"},
	} {
		var buf bytes.Buffer
		l := Logger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
		l.Logf(tc.class, "falling back to %s", "IMDSv1")
		var line struct{ Level, Msg, Source string }
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: %q is not JSON: %v", tc.class, buf.String(), err)
		}
		if line.Level != tc.level || line.Msg != "falling back to IMDSv1" || line.Source != "aws-sdk" {
			t.Errorf("%s: %+v, want level %s", tc.class, line, tc.level)
		}
	}
}
