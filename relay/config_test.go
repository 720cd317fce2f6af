package relay

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func base(extra map[string]string) map[string]string {
	env := map[string]string{"RELAY_BROKERS": "b-1.msk:9092,b-2.msk:9092", "RELAY_TOPIC": "events", "RELAY_AUTH": "none"}
	for k, v := range extra {
		if v == "<unset>" {
			delete(env, k)
			continue
		}
		env[k] = v
	}
	return env
}

func TestConfigDefaults(t *testing.T) {
	c, err := ConfigFromEnv(lookup(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Brokers:          []string{"b-1.msk:9092", "b-2.msk:9092"},
		Topic:            "events",
		Auth:             AuthNone,
		MaxMessageBytes:  1000000,
		DeadlineMargin:   time.Second,
		BrokersDownGrace: 3 * time.Second,
		ClientID:         "sqs-msk-relay",
		BodyFormat:       BodyRaw,
		LogLevel:         slog.LevelInfo,
		RetryBase:        time.Minute,
		RetryMax:         11*time.Hour + 40*time.Minute,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
}

func TestConfigValues(t *testing.T) {
	c, err := ConfigFromEnv(lookup(base(map[string]string{
		"RELAY_TOPIC_ATTRIBUTE":    "route",
		"RELAY_ALLOWED_TOPICS":     "audit, billing",
		"RELAY_KEY_ATTRIBUTE":      "customer",
		"RELAY_MAX_MESSAGE_BYTES":  "2000000",
		"RELAY_DEADLINE_MARGIN":    "1500ms",
		"RELAY_BROKERS_DOWN_GRACE": "5s",
		"RELAY_KAFKA_PROPERTIES":   "linger.ms=20, compression.type=lz4",
		"AWS_LAMBDA_FUNCTION_NAME": "relay-prod",
		"RELAY_LOG_LEVEL":          "debug",
		"RELAY_DLQ_URL":            "https://sqs.eu-west-1.amazonaws.com/123456789012/events-dlq",
		"RELAY_RETRY_BASE":         "0",
		"RELAY_RETRY_MAX":          "2h",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if c.TopicAttribute != "route" || !reflect.DeepEqual(c.AllowedTopics, []string{"audit", "billing"}) ||
		c.KeyAttribute != "customer" || c.MaxMessageBytes != 2000000 || c.DeadlineMargin != 1500*time.Millisecond ||
		c.BrokersDownGrace != 5*time.Second || c.ClientID != "relay-prod" || c.LogLevel != slog.LevelDebug ||
		c.DLQURL != "https://sqs.eu-west-1.amazonaws.com/123456789012/events-dlq" || c.RetryBase != 0 || c.RetryMax != 2*time.Hour ||
		!reflect.DeepEqual(c.KafkaProperties, map[string]string{"linger.ms": "20", "compression.type": "lz4"}) {
		t.Errorf("got %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // the error names the variable and the bad value
	}{
		{map[string]string{"RELAY_BROKERS": "<unset>"}, "RELAY_BROKERS is required"},
		{map[string]string{"RELAY_BROKERS": " "}, "RELAY_BROKERS is required"},
		{map[string]string{"RELAY_BROKERS": "b-1.msk"}, `RELAY_BROKERS="b-1.msk": broker "b-1.msk" is not host:port`},
		{map[string]string{"RELAY_BROKERS": "b-1.msk:0"}, `RELAY_BROKERS="b-1.msk:0": broker "b-1.msk:0" has no valid port`},
		{map[string]string{"RELAY_BROKERS": "b-1.msk:x"}, `broker "b-1.msk:x" has no valid port`},
		{map[string]string{"RELAY_BROKERS": ":9092"}, `broker ":9092" is not host:port`},
		{map[string]string{"RELAY_BROKERS": ","}, `RELAY_BROKERS=",": no broker listed`},
		{map[string]string{"RELAY_TOPIC": "<unset>"}, "RELAY_TOPIC is required"},
		{map[string]string{"RELAY_TOPIC": "bad topic"}, `RELAY_TOPIC="bad topic": "bad topic" is not a valid Kafka topic name`},
		{map[string]string{"RELAY_TOPIC": ".."}, `RELAY_TOPIC=".."`},
		{map[string]string{"RELAY_TOPIC": strings.Repeat("t", 250)}, "is not a valid Kafka topic name"},
		{map[string]string{"RELAY_AUTH": "kerberos"}, `RELAY_AUTH="kerberos": not one of "iam", "scram-sha-512", "mtls", "none"`},
		{map[string]string{"RELAY_AUTH": "<unset>"}, `RELAY_AUTH=iam needs the cluster's region: set RELAY_AWS_REGION`},
		{map[string]string{"RELAY_AUTH": "iam", "RELAY_AWS_REGION": "Ireland"}, `RELAY_AWS_REGION="Ireland": not an AWS region`},
		{map[string]string{"RELAY_AUTH": "iam", "AWS_REGION": "eu-west-1", "RELAY_IAM_ROLE_ARN": "relay-role"}, `RELAY_IAM_ROLE_ARN="relay-role": not an IAM role ARN`},
		{map[string]string{"RELAY_AUTH": "iam", "AWS_REGION": "eu-west-1", "RELAY_TLS_CA_FILE": "/no/such/ca.pem"}, `RELAY_TLS_CA_FILE="/no/such/ca.pem": cannot read the file`},
		{map[string]string{"RELAY_AUTH": "iam", "AWS_REGION": "eu-west-1", "RELAY_SCRAM_PASSWORD": "hunter2"}, `RELAY_SCRAM_PASSWORD is set but RELAY_AUTH=iam does not use it`},
		{map[string]string{"RELAY_TLS_CA_FILE": "config_test.go"}, `RELAY_TLS_CA_FILE is set but RELAY_AUTH=none does not use it`},
		{map[string]string{"RELAY_AUTH": "scram-sha-512"}, `RELAY_AUTH=scram-sha-512 needs RELAY_SCRAM_USERNAME and RELAY_SCRAM_PASSWORD, or RELAY_SCRAM_SECRET_ARN`},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_USERNAME": "alice"}, `RELAY_SCRAM_PASSWORD is required with RELAY_SCRAM_USERNAME`},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_USERNAME": "alice", "RELAY_SCRAM_PASSWORD": "hunter2", "RELAY_SCRAM_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_x"}, `RELAY_SCRAM_SECRET_ARN and RELAY_SCRAM_USERNAME/RELAY_SCRAM_PASSWORD are both set`},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_SECRET_ARN": "AmazonMSK_x", "AWS_REGION": "eu-west-1"}, `RELAY_SCRAM_SECRET_ARN="AmazonMSK_x": not a Secrets Manager secret ARN`},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_x"}, `RELAY_SCRAM_SECRET_ARN needs a region`},
		{map[string]string{"RELAY_AUTH": "mtls"}, `RELAY_AUTH=mtls needs RELAY_TLS_CERT_FILE`},
		{map[string]string{"RELAY_AUTH": "mtls", "RELAY_TLS_CERT_FILE": "config_test.go"}, `RELAY_AUTH=mtls needs RELAY_TLS_KEY_FILE`},
		{map[string]string{"RELAY_TOPIC_ATTRIBUTE": "route"}, "RELAY_TOPIC_ATTRIBUTE is set but RELAY_ALLOWED_TOPICS is empty"},
		{map[string]string{"RELAY_TOPIC_ATTRIBUTE": "a b", "RELAY_ALLOWED_TOPICS": "x"}, `RELAY_TOPIC_ATTRIBUTE="a b": not a valid SQS message attribute name`},
		{map[string]string{"RELAY_ALLOWED_TOPICS": "audit"}, `RELAY_ALLOWED_TOPICS="audit": set without RELAY_TOPIC_ATTRIBUTE`},
		{map[string]string{"RELAY_TOPIC_ATTRIBUTE": "route", "RELAY_ALLOWED_TOPICS": "ok,no way"}, `RELAY_ALLOWED_TOPICS="ok,no way": "no way" is not a valid Kafka topic name`},
		{map[string]string{"RELAY_KEY_ATTRIBUTE": "k/y"}, `RELAY_KEY_ATTRIBUTE="k/y": not a valid SQS message attribute name`},
		{map[string]string{"RELAY_BODY_FORMAT": "SNS"}, `RELAY_BODY_FORMAT="SNS": want raw, sns or eventbridge`},
		{map[string]string{"RELAY_MAX_MESSAGE_BYTES": "1MB"}, `RELAY_MAX_MESSAGE_BYTES="1MB": not a whole number of bytes`},
		{map[string]string{"RELAY_MAX_MESSAGE_BYTES": "0"}, `RELAY_MAX_MESSAGE_BYTES="0": must be between 1 and 1000000000 bytes`},
		{map[string]string{"RELAY_MAX_MESSAGE_BYTES": "2000000000"}, `RELAY_MAX_MESSAGE_BYTES="2000000000": must be between`},
		{map[string]string{"RELAY_DEADLINE_MARGIN": "1000"}, `RELAY_DEADLINE_MARGIN="1000": not a Go duration`},
		{map[string]string{"RELAY_DEADLINE_MARGIN": "50ms"}, `RELAY_DEADLINE_MARGIN="50ms": must be between 200ms and 15m0s: the minimum is what purging`},
		{map[string]string{"RELAY_DLQ_URL": "events-dlq"}, `RELAY_DLQ_URL="events-dlq": not a queue URL`},
		{map[string]string{"RELAY_RETRY_BASE": "60"}, `RELAY_RETRY_BASE="60": not a Go duration`},
		{map[string]string{"RELAY_RETRY_BASE": "-1s"}, `RELAY_RETRY_BASE="-1s": must be between 0s and 11h40m0s`},
		{map[string]string{"RELAY_RETRY_MAX": "12h"}, `RELAY_RETRY_MAX="12h": must be between 1s and 11h40m0s`},
		{map[string]string{"RELAY_RETRY_BASE": "2h", "RELAY_RETRY_MAX": "1h"}, `RELAY_RETRY_BASE=2h0m0s is above RELAY_RETRY_MAX=1h0m0s`},
		{map[string]string{"RELAY_BROKERS_DOWN_GRACE": "soon"}, `RELAY_BROKERS_DOWN_GRACE="soon": not a Go duration`},
		{map[string]string{"RELAY_BROKERS_DOWN_GRACE": "-1s"}, `RELAY_BROKERS_DOWN_GRACE="-1s": must be between 1ms and 15m0s`},
		{map[string]string{"RELAY_KAFKA_PROPERTIES": "linger.ms"}, "RELAY_KAFKA_PROPERTIES: entry 1 is not key=value"},
		{map[string]string{"RELAY_KAFKA_PROPERTIES": "Linger=5"}, `RELAY_KAFKA_PROPERTIES: entry 1: "Linger" is not a librdkafka property name`},
		{map[string]string{"RELAY_KAFKA_PROPERTIES": "linger.ms=1,linger.ms=2"}, "linger.ms is set twice"},
		{map[string]string{"RELAY_LOG_LEVEL": "loud"}, `RELAY_LOG_LEVEL="loud": not one of debug, info, warn, error`},
	} {
		_, err := ConfigFromEnv(lookup(base(tc.env)))
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not contain %q", tc.env, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v: error %q echoes a secret", tc.env, err)
		}
	}
}

func TestConfigAuthModes(t *testing.T) {
	for _, tc := range []struct {
		env   map[string]string
		check func(Config) bool
	}{
		{map[string]string{"RELAY_AUTH": "<unset>", "AWS_REGION": "eu-west-1"}, func(c Config) bool { return c.Auth == AuthIAM && c.AWSRegion == "eu-west-1" }},
		{map[string]string{"RELAY_AUTH": "iam", "AWS_REGION": "eu-west-1", "RELAY_AWS_REGION": "us-east-2", "RELAY_IAM_ROLE_ARN": "arn:aws:iam::123456789012:role/msk-writer"},
			func(c Config) bool {
				return c.AWSRegion == "us-east-2" && c.IAMRoleARN == "arn:aws:iam::123456789012:role/msk-writer"
			}},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_USERNAME": "alice", "RELAY_SCRAM_PASSWORD": "pw", "RELAY_TLS_CA_FILE": "config_test.go"},
			func(c Config) bool {
				return c.SCRAMUsername == "alice" && c.SCRAMPassword == "pw" && c.TLSCAFile == "config_test.go"
			}},
		{map[string]string{"RELAY_AUTH": "scram-sha-512", "RELAY_SCRAM_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_x", "AWS_REGION": "eu-west-1"},
			func(c Config) bool { return c.SCRAMSecretARN != "" && c.SCRAMUsername == "" }},
		{map[string]string{"RELAY_AUTH": "mtls", "RELAY_TLS_CERT_FILE": "config_test.go", "RELAY_TLS_KEY_FILE": "config_test.go"},
			func(c Config) bool { return c.TLSCertFile == "config_test.go" && c.TLSKeyFile == "config_test.go" }},
	} {
		c, err := ConfigFromEnv(lookup(base(tc.env)))
		if err != nil || !tc.check(c) {
			t.Errorf("%v: %+v %v", tc.env, c, err)
		}
	}
}

func TestConfigReportsEveryError(t *testing.T) {
	_, err := ConfigFromEnv(lookup(map[string]string{"RELAY_AUTH": "none", "RELAY_DEADLINE_MARGIN": "x"}))
	for _, want := range []string{"RELAY_BROKERS", "RELAY_TOPIC", "RELAY_DEADLINE_MARGIN"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestProduceDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		remaining, margin, want time.Duration
	}{
		{60 * time.Second, time.Second, 59 * time.Second},
		{3 * time.Second, time.Second, 2 * time.Second},
		{1500 * time.Millisecond, time.Second, 750 * time.Millisecond}, // half each when short
		{0, time.Second, 0},
	} {
		got := produceDeadline(now, now.Add(tc.remaining), true, tc.margin).Sub(now)
		if got != tc.want {
			t.Errorf("remaining %v margin %v: window %v, want %v", tc.remaining, tc.margin, got, tc.want)
		}
	}
	if got := produceDeadline(now, time.Time{}, false, time.Second).Sub(now); got != maxProduceWindow {
		t.Errorf("no deadline: window %v, want %v", got, maxProduceWindow)
	}
}

// TestRetryDelay: the backoff quadruples from Base, jittered up by at most
// a quarter of its step, and the receive before the last waits Max, so
// that with the defaults and maxReceiveCount 5 a healthy record reaches
// the DLQ only after an outage of more than 12 hours.
// TestSettleBudget: the failure policy's SQS calls never take the time
// logging and answering need, which grows with the batch and shrinks with
// the function's share of a CPU.
func TestSettleBudget(t *testing.T) {
	full := &Handler{margin: time.Second, cpuShare: 1}
	small := &Handler{margin: time.Second, cpuShare: 128.0 / 1769}
	for _, tc := range []struct {
		name    string
		h       *Handler
		left    time.Duration
		records int
		want    time.Duration
	}{
		{"half of what is left", full, 4 * time.Second, 10, 2 * time.Second},
		{"the margin's other half kept", full, time.Second, 10, 500*time.Millisecond - 75*time.Microsecond},
		{"a big batch on a full CPU", full, 2 * time.Second, 10000, time.Second},
		{"a big batch at 128 MB", small, 2 * time.Second, 10000, 2*time.Second - 500*time.Millisecond - 1036523*time.Microsecond},
		{"nothing left at 128 MB", small, time.Second, 10000, 0},
		{"past the deadline", full, -time.Second, 10, 0},
	} {
		if got := tc.h.settleBudget(tc.left, tc.records); got.Round(time.Millisecond) != tc.want.Round(time.Millisecond) {
			t.Errorf("%s: %v with %v left for %d records, want %v", tc.name, got, tc.left, tc.records, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	r := Retry{Base: time.Minute, Max: MaxVisibility}
	tests := []struct {
		receives, maxReceives int
		jitter                float64
		want                  time.Duration
	}{
		{1, 5, 0, time.Minute},
		{1, 5, 0.999999999, 75 * time.Second},
		{2, 5, 0, 4 * time.Minute},
		{3, 5, 0.5, 18 * time.Minute},
		{4, 5, 0, MaxVisibility},
		{5, 5, 0, 0}, // the last receive: to the DLQ once visible
		{9, 5, 0.3, 0},
		{9, 0, 0, MaxVisibility}, // no redrive policy: capped at Max
		{0, 5, 0, 0},
	}
	for _, tt := range tests {
		if got := r.Delay(tt.receives, tt.maxReceives, tt.jitter); got.Round(time.Second) != tt.want.Round(time.Second) {
			t.Errorf("Delay(%d, %d, %v) = %v, want %v", tt.receives, tt.maxReceives, tt.jitter, got, tt.want)
		}
	}
	if got := (Retry{Max: MaxVisibility}).Delay(3, 5, 0); got != 0 {
		t.Errorf("backoff off (Base 0): Delay = %v, want 0", got)
	}
	// The DLQ takes a record when its 5th receive fails: the outage must
	// outlast the delays after receives 1 to 4.
	var total time.Duration
	for n := 1; n < 5; n++ {
		total += r.Delay(n, 5, 0) // the shortest the jitter allows
	}
	if total < 12*time.Hour {
		t.Errorf("a healthy record reaches the DLQ after %v of outage, want at least 12h", total)
	}
}

// TestPermanentReasons: the record's own faults are permanent, the
// deadline, the brokers and unknown Kafka errors transient.
func TestPermanentReasons(t *testing.T) {
	for _, r := range []string{ReasonInvalidRecord, ReasonOversized, ReasonTopicNotAllowed, "message_size_too_large"} {
		if !Permanent(r) {
			t.Errorf("%s is transient, want permanent", r)
		}
	}
	for _, r := range []string{ReasonDeadline, ReasonBrokersDown, ReasonAuthFailed, ReasonTLSFailed, ReasonNotEnoughReplicas,
		ReasonFatal, ReasonGroupBlocked, ReasonNotProduced, "unknown_topic_or_partition", "timed_out", "error"} {
		if Permanent(r) {
			t.Errorf("%s is permanent, want transient", r)
		}
	}
}

func TestGoMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		mb   int
		want int64
	}{{128, 24 << 20}, {256, 88 << 20}, {1769, 1769<<20/2 - 40<<20}, {64, 16 << 20}} {
		if got := GoMemoryLimit(tt.mb); got != tt.want {
			t.Errorf("GoMemoryLimit(%d) = %d MiB, want %d MiB", tt.mb, got>>20, tt.want>>20)
		}
	}
}
