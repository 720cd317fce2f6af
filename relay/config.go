package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	// Auth is how the producer authenticates: AuthNone for now.
	// RELAY_AUTH, default "iam".
	Auth string

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

	// KafkaProperties are extra librdkafka properties, applied over the
	// relay's own. RELAY_KAFKA_PROPERTIES, "key=value,key=value".
	KafkaProperties map[string]string
	// ClientID is the Kafka client.id: the function's name.
	// AWS_LAMBDA_FUNCTION_NAME, default "sqs-msk-relay".
	ClientID string
	// LogLevel is the lowest level logged. RELAY_LOG_LEVEL: debug, info,
	// warn or error; default info.
	LogLevel slog.Level
}

// Authentication modes for RELAY_AUTH.
const (
	AuthNone = "none" // plaintext, no authentication: local use only
	AuthIAM  = "iam"  // SASL/OAUTHBEARER with MSK IAM tokens over TLS
)

// Defaults for the optional settings.
const (
	DefaultMaxMessageBytes  = 1000000
	DefaultDeadlineMargin   = time.Second
	DefaultBrokersDownGrace = 3 * time.Second
	DefaultClientID         = "sqs-msk-relay"

	minDeadlineMargin = 200 * time.Millisecond
	// maxMessageBytes is librdkafka's ceiling for message.max.bytes.
	maxMessageBytes = 1000000000
)

// protectedProperties may not be set through RELAY_KAFKA_PROPERTIES: they
// carry the relay's guarantees or have a RELAY_* variable of their own.
var protectedProperties = map[string]string{
	"bootstrap.servers":     "RELAY_BROKERS",
	"metadata.broker.list":  "RELAY_BROKERS",
	"enable.idempotence":    "the relay's delivery guarantee (always true)",
	"acks":                  "the relay's delivery guarantee (always all)",
	"request.required.acks": "the relay's delivery guarantee (always all)",
	"transactional.id":      "the relay's delivery guarantee (not transactional)",
	"security.protocol":     "RELAY_AUTH",
}

var (
	topicName    = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	propertyName = regexp.MustCompile(`^[a-z0-9_.]+$`)
	attrName     = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)
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
		LogLevel:         slog.LevelInfo,
	}
	var errs []error
	bad := func(name, value, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s=%s: %s", name, quote(value), fmt.Sprintf(format, args...)))
	}
	get := func(name string) (string, bool) {
		v, ok := lookup(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}

	if v, ok := get("RELAY_BROKERS"); !ok {
		errs = append(errs, errors.New("RELAY_BROKERS is required: comma-separated host:port of the bootstrap brokers"))
	} else {
		for _, b := range splitList(v) {
			host, port, err := net.SplitHostPort(b)
			if err != nil || host == "" {
				bad("RELAY_BROKERS", v, "broker %s is not host:port", quote(b))
				continue
			}
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				bad("RELAY_BROKERS", v, "broker %s has no valid port (1-65535)", quote(b))
				continue
			}
			c.Brokers = append(c.Brokers, b)
		}
		if len(c.Brokers) == 0 && len(errs) == 0 {
			bad("RELAY_BROKERS", v, "no broker listed")
		}
	}

	if v, ok := get("RELAY_TOPIC"); !ok {
		errs = append(errs, errors.New("RELAY_TOPIC is required: the Kafka topic records go to"))
	} else if err := checkTopic(v); err != nil {
		bad("RELAY_TOPIC", v, "%v", err)
	} else {
		c.Topic = v
	}

	if v, ok := get("RELAY_AUTH"); ok {
		switch v {
		case AuthNone, AuthIAM:
			c.Auth = v
		default:
			bad("RELAY_AUTH", v, "not one of %q, %q", AuthIAM, AuthNone)
		}
	}
	if c.Auth == AuthIAM {
		// Kept as the documented default, but this build cannot sign IAM
		// tokens yet: say so at start-up rather than fail every batch.
		errs = append(errs, errors.New(`RELAY_AUTH="iam" (the default when unset): MSK IAM authentication is not available in this build yet; set RELAY_AUTH=none for a plaintext listener`))
	}

	if v, ok := get("RELAY_TOPIC_ATTRIBUTE"); ok {
		if !attrName.MatchString(v) {
			bad("RELAY_TOPIC_ATTRIBUTE", v, "not a valid SQS message attribute name")
		} else {
			c.TopicAttribute = v
		}
	}
	if v, ok := get("RELAY_ALLOWED_TOPICS"); ok {
		for _, t := range splitList(v) {
			if err := checkTopic(t); err != nil {
				bad("RELAY_ALLOWED_TOPICS", v, "%v", err)
				continue
			}
			c.AllowedTopics = append(c.AllowedTopics, t)
		}
	}
	if _, ok := get("RELAY_TOPIC_ATTRIBUTE"); ok && len(c.AllowedTopics) == 0 {
		errs = append(errs, errors.New("RELAY_TOPIC_ATTRIBUTE is set but RELAY_ALLOWED_TOPICS is empty: every routed record would fail"))
	}
	if v, ok := get("RELAY_ALLOWED_TOPICS"); ok && c.TopicAttribute == "" {
		if _, set := get("RELAY_TOPIC_ATTRIBUTE"); !set {
			bad("RELAY_ALLOWED_TOPICS", v, "set without RELAY_TOPIC_ATTRIBUTE, so no record can be routed")
		}
	}

	if v, ok := get("RELAY_KEY_ATTRIBUTE"); ok {
		if !attrName.MatchString(v) {
			bad("RELAY_KEY_ATTRIBUTE", v, "not a valid SQS message attribute name")
		} else {
			c.KeyAttribute = v
		}
	}

	if v, ok := get("RELAY_MAX_MESSAGE_BYTES"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			bad("RELAY_MAX_MESSAGE_BYTES", v, "not a whole number of bytes")
		case n < 1 || n > maxMessageBytes:
			bad("RELAY_MAX_MESSAGE_BYTES", v, "must be between 1 and %d bytes", maxMessageBytes)
		default:
			c.MaxMessageBytes = n
		}
	}

	if v, ok := get("RELAY_DEADLINE_MARGIN"); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad("RELAY_DEADLINE_MARGIN", v, "not a Go duration such as 1s or 500ms")
		case d < minDeadlineMargin:
			bad("RELAY_DEADLINE_MARGIN", v, "below the minimum %v needed to purge, log and answer", minDeadlineMargin)
		default:
			c.DeadlineMargin = d
		}
	}

	if v, ok := get("RELAY_BROKERS_DOWN_GRACE"); ok {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad("RELAY_BROKERS_DOWN_GRACE", v, "not a Go duration such as 3s")
		case d <= 0:
			bad("RELAY_BROKERS_DOWN_GRACE", v, "must be positive")
		default:
			c.BrokersDownGrace = d
		}
	}

	if v, ok := get("RELAY_KAFKA_PROPERTIES"); ok {
		props, err := parseProperties(v)
		if err != nil {
			// The value may hold something sensitive: name the entry, not the value.
			errs = append(errs, fmt.Errorf("RELAY_KAFKA_PROPERTIES: %w", err))
		} else {
			c.KafkaProperties = props
		}
	}

	if v, ok := get("AWS_LAMBDA_FUNCTION_NAME"); ok {
		c.ClientID = v
	}

	if v, ok := get("RELAY_LOG_LEVEL"); ok {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad("RELAY_LOG_LEVEL", v, "not one of debug, info, warn, error")
		}
	}

	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid configuration: %w", errors.Join(errs...))
	}
	return c, nil
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
// position, never the value.
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
		if why, ok := protectedProperties[key]; ok {
			return nil, fmt.Errorf("%s cannot be set here: it is %s", key, why)
		}
		if strings.HasPrefix(key, "sasl.") || strings.HasPrefix(key, "ssl.") {
			return nil, fmt.Errorf("%s cannot be set here: authentication is configured by RELAY_AUTH", key)
		}
		if strings.HasPrefix(key, "go.") {
			return nil, fmt.Errorf("%s cannot be set here: the relay's delivery tracking depends on the Go client's settings", key)
		}
		if _, dup := props[key]; dup {
			return nil, fmt.Errorf("%s is set twice", key)
		}
		props[key] = strings.TrimSpace(val)
	}
	return props, nil
}
