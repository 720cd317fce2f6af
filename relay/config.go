package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the relay's configuration, read from RELAY_* environment
// variables by ConfigFromEnv. The README's configuration table mirrors it.
type Config struct {
	// Brokers are the bootstrap brokers, host:port. RELAY_BROKERS, required.
	Brokers []string
	// Topic receives every record not routed elsewhere. RELAY_TOPIC, required.
	Topic string
	// Auth is how the producer authenticates: AuthIAM, AuthSCRAM, AuthMTLS
	// or AuthNone. RELAY_AUTH, default "iam".
	Auth string
	// TLSCAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates. RELAY_TLS_CA_FILE, default unset: the system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate and its key
	// (PEM) for mTLS. RELAY_TLS_CERT_FILE, RELAY_TLS_KEY_FILE.
	TLSCertFile, TLSKeyFile string
	// SCRAMUsername and SCRAMPassword are the SCRAM-SHA-512 credentials.
	// RELAY_SCRAM_USERNAME, RELAY_SCRAM_PASSWORD.
	SCRAMUsername, SCRAMPassword string
	// SCRAMSecretARN names a Secrets Manager secret holding
	// {"username":…,"password":…}, as MSK keeps them. RELAY_SCRAM_SECRET_ARN.
	SCRAMSecretARN string
	// IAMRoleARN is a role to assume for IAM tokens (cross-account
	// clusters). RELAY_IAM_ROLE_ARN, default unset: the function's role.
	IAMRoleARN string
	// AWSRegion is the cluster's region, for IAM tokens and AWS calls.
	// RELAY_AWS_REGION, default AWS_REGION.
	AWSRegion string
	// IAMTokenLifetime caps the lifetime librdkafka is told an IAM token
	// has, so it refreshes sooner. RELAY_IAM_TOKEN_LIFETIME, Go duration,
	// default 0: the token's own 15 min.
	IAMTokenLifetime time.Duration

	// BodyFormat is what an SQS body holds: BodyRaw (the Kafka value as
	// is), BodySNS (an SNS notification, unwrapped) or BodyEventBridge (an
	// EventBridge event, its fields headed). RELAY_BODY_FORMAT, default raw.
	BodyFormat BodyFormat
	// TopicAttribute names a message attribute whose value routes a record
	// to another topic, which must be on AllowedTopics.
	// RELAY_TOPIC_ATTRIBUTE, default unset (no routing).
	TopicAttribute string
	// AllowedTopics are the topics TopicAttribute may name.
	// RELAY_ALLOWED_TOPICS, comma-separated, default empty.
	AllowedTopics []string
	// KeyAttribute names a message attribute whose value becomes the Kafka
	// key; without it the FIFO MessageGroupId is the key, else none.
	// RELAY_KEY_ATTRIBUTE, default unset.
	KeyAttribute string
	// MaxMessageBytes is the largest body the relay produces; a larger one
	// fails its record. RELAY_MAX_MESSAGE_BYTES, bytes, default 1000000.
	MaxMessageBytes int

	// DeadlineMargin is kept free before the Lambda deadline to purge,
	// collect the last delivery reports, log and answer.
	// RELAY_DEADLINE_MARGIN, Go duration, default 1s, at least 200ms.
	DeadlineMargin time.Duration
	// BrokersDownGrace is how long a batch waits, once librdkafka reports
	// every broker down, for an acknowledgement before it fails the batch.
	// RELAY_BROKERS_DOWN_GRACE, Go duration, default 3s.
	BrokersDownGrace time.Duration

	// DLQURL is the dead-letter queue the relay sends permanently failed
	// records to itself, on their first receive (policy.go); the source
	// queue's redrive policy should name the same queue. RELAY_DLQ_URL,
	// default unset: they reach the DLQ after maxReceiveCount receives.
	DLQURL string
	// RetryBase is the visibility given a record failed transiently on its
	// first receive; it quadruples with each receive. RELAY_RETRY_BASE, Go
	// duration, default 1m; 0 turns the backoff off.
	RetryBase time.Duration
	// RetryMax caps the backoff, and is the visibility given on the last
	// receive before the DLQ. RELAY_RETRY_MAX, Go duration, default and
	// most 11h40m (SQS allows 12 h from the receive).
	RetryMax time.Duration

	// KafkaProperties are extra librdkafka properties, applied over the
	// relay's own; kafka.CheckProperties says which are allowed.
	// RELAY_KAFKA_PROPERTIES, "key=value,key=value".
	KafkaProperties map[string]string
	// ClientID is the Kafka client.id: the function's name.
	// AWS_LAMBDA_FUNCTION_NAME, default "sqs-msk-relay".
	ClientID string
	// FunctionMemoryMB is the function's memory size, which sets its share
	// of a CPU (one vCPU at 1,769 MB) and so how long the work after the
	// produce deadline takes. AWS_LAMBDA_FUNCTION_MEMORY_SIZE, set by
	// Lambda, MB; default 0: a full CPU.
	FunctionMemoryMB int
	// LogLevel is the lowest level logged. RELAY_LOG_LEVEL: debug, info,
	// warn or error; default info.
	LogLevel slog.Level
}

// GoMemoryLimit is the Go runtime's soft memory limit for a function of
// memoryMB: half of it, less 40 MiB for what Go does not count (the
// binary's text, librdkafka's C heap with a batch's copy in its queue).
// At 128 MB that is 24 MiB: the peak RSS over back-to-back 6 MB events is
// 61-68 MB instead of 83-94 MB, for more GC work; 20 MiB keeps it under
// 57 MB but then misses the deadline at 7.2% of a CPU
// (docs/performance.md). GOMEMLIMIT, when set, wins.
func GoMemoryLimit(memoryMB int) int64 {
	return max(16<<20, int64(memoryMB)<<20/2-40<<20)
}

// Authentication modes for RELAY_AUTH.
const (
	AuthIAM   = "iam"           // SASL/OAUTHBEARER with MSK IAM tokens over TLS (port 9098)
	AuthSCRAM = "scram-sha-512" // SASL/SCRAM-SHA-512 over TLS (port 9096)
	AuthMTLS  = "mtls"          // TLS with a client certificate (port 9094)
	AuthNone  = "none"          // plaintext, no authentication: local use only (port 9092)
)

// Defaults for the optional settings.
const (
	DefaultMaxMessageBytes  = 1000000
	DefaultDeadlineMargin   = time.Second
	DefaultBrokersDownGrace = 3 * time.Second
	DefaultClientID         = "sqs-msk-relay"
	DefaultRetryBase        = time.Minute
	DefaultRetryMax         = MaxVisibility

	minDeadlineMargin = 200 * time.Millisecond
	// maxMessageBytes is librdkafka's ceiling for message.max.bytes.
	maxMessageBytes = 1000000000
)

var (
	topicName    = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	propertyName = regexp.MustCompile(`^[a-z0-9_.]+$`)
	attrName     = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)
	awsRegion    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	roleARN      = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`)
)

// ConfigFromEnv reads the configuration. lookup is os.LookupEnv in the
// function. Every missing or invalid value is reported, each naming its
// variable and the bad value; nothing invalid is replaced by a default.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	c := Config{
		Auth:             AuthIAM,
		MaxMessageBytes:  DefaultMaxMessageBytes,
		DeadlineMargin:   DefaultDeadlineMargin,
		BrokersDownGrace: DefaultBrokersDownGrace,
		ClientID:         DefaultClientID,
		BodyFormat:       BodyRaw,
		LogLevel:         slog.LevelInfo,
		RetryBase:        DefaultRetryBase,
		RetryMax:         DefaultRetryMax,
	}
	e := &envReader{lookup: lookup}
	c.kafkaFromEnv(e)
	c.routingFromEnv(e)
	c.timingFromEnv(e)
	c.policyFromEnv(e)
	c.functionFromEnv(e)
	if len(e.errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(e.errs...))
	}
	return c, nil
}

// envReader reads RELAY_* variables and collects what is wrong with them.
type envReader struct {
	lookup func(string) (string, bool)
	errs   []error
}

// get is name's value, trimmed; ok is false when it is unset or empty.
func (e *envReader) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// bad notes that name's value is invalid, and why.
func (e *envReader) bad(name, value, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s=%s: %s", name, quote(value), fmt.Sprintf(format, args...)))
}

// duration reads name, if set, as a Go duration (example shows one) into
// dst, refusing one outside [lo, hi]; why explains the bounds.
func (e *envReader) duration(name, example string, lo, hi time.Duration, why string, dst *time.Duration) {
	v, ok := e.get(name)
	if !ok {
		return
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		e.bad(name, v, "not a Go duration such as %s", example)
	case d < lo || d > hi:
		e.bad(name, v, "must be between %v and %v%s", lo, hi, why)
	default:
		*dst = d
	}
}

// kafkaFromEnv reads the brokers, the topic, authentication and
// librdkafka's extra properties.
func (c *Config) kafkaFromEnv(e *envReader) {
	if v, ok := e.get("RELAY_BROKERS"); !ok {
		e.errs = append(e.errs, errors.New("RELAY_BROKERS is required: comma-separated host:port of the bootstrap brokers"))
	} else {
		for _, b := range splitList(v) {
			host, port, err := net.SplitHostPort(b)
			if err != nil || host == "" {
				e.bad("RELAY_BROKERS", v, "broker %s is not host:port", quote(b))
				continue
			}
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				e.bad("RELAY_BROKERS", v, "broker %s has no valid port (1-65535)", quote(b))
				continue
			}
			c.Brokers = append(c.Brokers, b)
		}
		if len(c.Brokers) == 0 && len(e.errs) == 0 {
			e.bad("RELAY_BROKERS", v, "no broker listed")
		}
	}

	if v, ok := e.get("RELAY_TOPIC"); !ok {
		e.errs = append(e.errs, errors.New("RELAY_TOPIC is required: the Kafka topic records go to"))
	} else if err := checkTopic(v); err != nil {
		e.bad("RELAY_TOPIC", v, "%v", err)
	} else {
		c.Topic = v
	}

	authOK := true
	if v, ok := e.get("RELAY_AUTH"); ok {
		switch v {
		case AuthIAM, AuthSCRAM, AuthMTLS, AuthNone:
			c.Auth = v
		default:
			authOK = false
			e.bad("RELAY_AUTH", v, "not one of %q, %q, %q, %q", AuthIAM, AuthSCRAM, AuthMTLS, AuthNone)
		}
	}
	if authOK {
		e.errs = append(e.errs, c.authFromEnv(e.get)...)
	}

	if v, ok := e.get("RELAY_KAFKA_PROPERTIES"); ok {
		props, err := parseProperties(v)
		if err != nil {
			// The value may hold something sensitive: name the entry, not the value.
			e.errs = append(e.errs, fmt.Errorf("RELAY_KAFKA_PROPERTIES: %w", err))
		} else {
			c.KafkaProperties = props
		}
	}
}

// routingFromEnv reads the body format, the topic and key attributes and
// the size limit.
func (c *Config) routingFromEnv(e *envReader) {
	if v, ok := e.get("RELAY_BODY_FORMAT"); ok {
		switch f := BodyFormat(v); f {
		case BodyRaw, BodySNS, BodyEventBridge:
			c.BodyFormat = f
		default:
			e.bad("RELAY_BODY_FORMAT", v, "want raw, sns or eventbridge")
		}
	}
	topicAttr, routed := e.get("RELAY_TOPIC_ATTRIBUTE")
	if routed {
		if !attrName.MatchString(topicAttr) {
			e.bad("RELAY_TOPIC_ATTRIBUTE", topicAttr, "not a valid SQS message attribute name")
		} else {
			c.TopicAttribute = topicAttr
		}
	}
	if v, ok := e.get("RELAY_ALLOWED_TOPICS"); ok {
		for _, t := range splitList(v) {
			if err := checkTopic(t); err != nil {
				e.bad("RELAY_ALLOWED_TOPICS", v, "%v", err)
				continue
			}
			c.AllowedTopics = append(c.AllowedTopics, t)
		}
		if !routed {
			e.bad("RELAY_ALLOWED_TOPICS", v, "set without RELAY_TOPIC_ATTRIBUTE, so no record can be routed")
		}
	}
	if routed && len(c.AllowedTopics) == 0 {
		e.errs = append(e.errs, errors.New("RELAY_TOPIC_ATTRIBUTE is set but RELAY_ALLOWED_TOPICS is empty: every routed record would fail"))
	}

	if v, ok := e.get("RELAY_KEY_ATTRIBUTE"); ok {
		if !attrName.MatchString(v) {
			e.bad("RELAY_KEY_ATTRIBUTE", v, "not a valid SQS message attribute name")
		} else {
			c.KeyAttribute = v
		}
	}

	if v, ok := e.get("RELAY_MAX_MESSAGE_BYTES"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			e.bad("RELAY_MAX_MESSAGE_BYTES", v, "not a whole number of bytes")
		case n < 1 || n > maxMessageBytes:
			e.bad("RELAY_MAX_MESSAGE_BYTES", v, "must be between 1 and %d bytes", maxMessageBytes)
		default:
			c.MaxMessageBytes = n
		}
	}
}

// timingFromEnv reads the deadline margin and the brokers-down grace.
func (c *Config) timingFromEnv(e *envReader) {
	e.duration("RELAY_DEADLINE_MARGIN", "1s or 500ms", minDeadlineMargin, maxProduceWindow,
		": the minimum is what purging, logging and answering need", &c.DeadlineMargin)
	e.duration("RELAY_BROKERS_DOWN_GRACE", "3s", time.Millisecond, maxProduceWindow, "", &c.BrokersDownGrace)
}

// policyFromEnv reads the failure policy's settings (policy.go).
func (c *Config) policyFromEnv(e *envReader) {
	if v, ok := e.get("RELAY_DLQ_URL"); ok {
		if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
			e.bad("RELAY_DLQ_URL", v, "not a queue URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/events-dlq")
		} else {
			c.DLQURL = v
		}
	}
	e.duration("RELAY_RETRY_BASE", "1m, or 0 for no backoff", 0, MaxVisibility, "", &c.RetryBase)
	e.duration("RELAY_RETRY_MAX", "11h40m", time.Second, MaxVisibility, ": SQS allows a visibility of 12 h from the receive", &c.RetryMax)
	if c.RetryBase > c.RetryMax {
		e.errs = append(e.errs, fmt.Errorf("RELAY_RETRY_BASE=%v is above RELAY_RETRY_MAX=%v", c.RetryBase, c.RetryMax))
	}
}

// functionFromEnv reads what Lambda sets, and the log level.
func (c *Config) functionFromEnv(e *envReader) {
	if v, ok := e.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"); ok {
		if n, err := strconv.Atoi(v); err != nil || n < 128 || n > 10240 {
			e.bad("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", v, "not a Lambda memory size in MB (128-10240)")
		} else {
			c.FunctionMemoryMB = n
		}
	}
	if v, ok := e.get("AWS_LAMBDA_FUNCTION_NAME"); ok {
		c.ClientID = v
	}
	if v, ok := e.get("RELAY_LOG_LEVEL"); ok {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			e.bad("RELAY_LOG_LEVEL", v, "not one of debug, info, warn, error")
		}
	}
}

func checkTopic(t string) error {
	if !topicName.MatchString(t) || t == "." || t == ".." {
		return fmt.Errorf("%s is not a valid Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)", quote(t))
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseProperties reads "key=value,key=value". Errors name the key or the
// position, never the value. Which properties may be set is relay/kafka's
// to say (kafka.CheckProperties), beside the producer's own settings.
func parseProperties(v string) (map[string]string, error) {
	props := map[string]string{}
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		key, val, ok := strings.Cut(entry, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("entry %d is not key=value", i+1)
		}
		if !propertyName.MatchString(key) {
			return nil, fmt.Errorf("entry %d: %s is not a librdkafka property name", i+1, quote(key))
		}
		if _, dup := props[key]; dup {
			return nil, fmt.Errorf("%s is set twice", key)
		}
		props[key] = strings.TrimSpace(val)
	}
	return props, nil
}

// authFromEnv reads the variables of c.Auth's mode, and refuses those of
// other modes: a variable set but unused is a misconfiguration. Secret
// values are never quoted in an error.
func (c *Config) authFromEnv(get func(string) (string, bool)) []error {
	var errs []error
	file := func(name string, dst *string) {
		v, ok := get(name)
		if !ok {
			return
		}
		if _, err := os.Stat(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: cannot read the file: %w", name, quote(v), errors.Unwrap(err)))
			return
		}
		*dst = v
	}
	uses := map[string]bool{}
	switch c.Auth {
	case AuthIAM:
		uses["RELAY_TLS_CA_FILE"], uses["RELAY_IAM_ROLE_ARN"], uses["RELAY_AWS_REGION"], uses["RELAY_IAM_TOKEN_LIFETIME"] = true, true, true, true
	case AuthSCRAM:
		uses["RELAY_TLS_CA_FILE"], uses["RELAY_SCRAM_USERNAME"], uses["RELAY_SCRAM_PASSWORD"], uses["RELAY_SCRAM_SECRET_ARN"], uses["RELAY_AWS_REGION"] = true, true, true, true, true
	case AuthMTLS:
		uses["RELAY_TLS_CA_FILE"], uses["RELAY_TLS_CERT_FILE"], uses["RELAY_TLS_KEY_FILE"] = true, true, true
	}
	for _, name := range []string{"RELAY_TLS_CA_FILE", "RELAY_TLS_CERT_FILE", "RELAY_TLS_KEY_FILE", "RELAY_SCRAM_USERNAME",
		"RELAY_SCRAM_PASSWORD", "RELAY_SCRAM_SECRET_ARN", "RELAY_IAM_ROLE_ARN", "RELAY_IAM_TOKEN_LIFETIME"} {
		if _, ok := get(name); ok && !uses[name] {
			errs = append(errs, fmt.Errorf("%s is set but RELAY_AUTH=%s does not use it", name, c.Auth))
		}
	}
	if !uses["RELAY_TLS_CA_FILE"] {
		return errs
	}
	file("RELAY_TLS_CA_FILE", &c.TLSCAFile)
	c.AWSRegion, _ = get("AWS_REGION")
	if v, ok := get("RELAY_AWS_REGION"); ok {
		c.AWSRegion = v
	}
	if c.AWSRegion != "" && !awsRegion.MatchString(c.AWSRegion) {
		errs = append(errs, fmt.Errorf("RELAY_AWS_REGION=%s: not an AWS region such as eu-west-1", quote(c.AWSRegion)))
	}
	switch c.Auth {
	case AuthIAM:
		if c.AWSRegion == "" {
			errs = append(errs, errors.New("RELAY_AUTH=iam needs the cluster's region: set RELAY_AWS_REGION (Lambda sets AWS_REGION)"))
		}
		if v, ok := get("RELAY_IAM_TOKEN_LIFETIME"); ok {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > 15*time.Minute {
				errs = append(errs, fmt.Errorf("RELAY_IAM_TOKEN_LIFETIME=%s: not a Go duration between 1s and 15m", quote(v)))
			}
			c.IAMTokenLifetime = d
		}
		if v, ok := get("RELAY_IAM_ROLE_ARN"); ok {
			if !roleARN.MatchString(v) {
				errs = append(errs, fmt.Errorf("RELAY_IAM_ROLE_ARN=%s: not an IAM role ARN (arn:aws:iam::123456789012:role/name)", quote(v)))
			}
			c.IAMRoleARN = v
		}
	case AuthSCRAM:
		c.SCRAMUsername, _ = get("RELAY_SCRAM_USERNAME")
		c.SCRAMPassword, _ = get("RELAY_SCRAM_PASSWORD")
		c.SCRAMSecretARN, _ = get("RELAY_SCRAM_SECRET_ARN")
		direct := c.SCRAMUsername != "" || c.SCRAMPassword != ""
		switch {
		case direct && c.SCRAMSecretARN != "":
			errs = append(errs, errors.New("RELAY_SCRAM_SECRET_ARN and RELAY_SCRAM_USERNAME/RELAY_SCRAM_PASSWORD are both set: use one"))
		case c.SCRAMSecretARN != "":
			if !strings.HasPrefix(c.SCRAMSecretARN, "arn:") || !strings.Contains(c.SCRAMSecretARN, ":secretsmanager:") {
				errs = append(errs, fmt.Errorf("RELAY_SCRAM_SECRET_ARN=%s: not a Secrets Manager secret ARN", quote(c.SCRAMSecretARN)))
			}
			if c.AWSRegion == "" {
				errs = append(errs, errors.New("RELAY_SCRAM_SECRET_ARN needs a region: set RELAY_AWS_REGION (Lambda sets AWS_REGION)"))
			}
		case c.SCRAMUsername == "":
			errs = append(errs, errors.New("RELAY_AUTH=scram-sha-512 needs RELAY_SCRAM_USERNAME and RELAY_SCRAM_PASSWORD, or RELAY_SCRAM_SECRET_ARN"))
		case c.SCRAMPassword == "":
			errs = append(errs, errors.New("RELAY_SCRAM_PASSWORD is required with RELAY_SCRAM_USERNAME"))
		}
	case AuthMTLS:
		file("RELAY_TLS_CERT_FILE", &c.TLSCertFile)
		file("RELAY_TLS_KEY_FILE", &c.TLSKeyFile)
		for _, name := range []string{"RELAY_TLS_CERT_FILE", "RELAY_TLS_KEY_FILE"} {
			if _, ok := get(name); !ok {
				errs = append(errs, fmt.Errorf("RELAY_AUTH=mtls needs %s", name))
			}
		}
	}
	return errs
}
