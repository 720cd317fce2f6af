// Package kafka produces relay messages with librdkafka through
// confluent-kafka-go: an idempotent producer with acks=all, delivery
// reports tracked per batch, and a purge at the batch's deadline.
package kafka

import (
	"strings"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// Producer settings the relay relies on. Each differs from librdkafka's
// default for a reason that matters in a Lambda (see FACTS.md).
const (
	// messageTimeoutMs is librdkafka's own give-up time. The relay purges
	// at its deadline first, so this is a backstop that must never fire
	// before the function times out: Lambda's longest timeout, 15 min.
	messageTimeoutMs = 900000
	// idleMs closes idle connections from the client before MSK's broker
	// side (connections.max.idle.ms, 10 min) or a NAT (350 s) drops them.
	idleMs = 300000
	// setupTimeoutMs bounds TCP+TLS+SASL setup (default 30 s).
	setupTimeoutMs = 10000
	// reconnectMaxMs caps reconnect backoff so a reset connection comes
	// back within a batch (default 10 s).
	reconnectMaxMs = 1000
	// propagationMs is how long a topic missing from metadata is waited
	// for before its messages fail as unknown (default 30 s). MSK does not
	// create topics, so waiting longer only hides the error.
	propagationMs = 2000
	// headroomBytes is what message.max.bytes allows beyond the largest
	// body, for the key and headers (SQS attributes may take 256 KiB).
	headroomBytes = 262144
	// librdkafka's bounds for message.max.bytes.
	minMessageMaxBytes = 1000000
	maxMessageMaxBytes = 1000000000
)

// ConfigMap is the librdkafka configuration for c: the relay's settings,
// then c.KafkaProperties over them.
func ConfigMap(c relay.Config) kafka.ConfigMap {
	maxBytes := c.MaxMessageBytes + headroomBytes
	maxBytes = max(minMessageMaxBytes, min(maxBytes, maxMessageMaxBytes))
	m := kafka.ConfigMap{
		"bootstrap.servers":                  strings.Join(c.Brokers, ","),
		"client.id":                          c.ClientID,
		"enable.idempotence":                 true,
		"acks":                               "all",
		"partitioner":                        "murmur2_random", // where Java clients put a key
		"linger.ms":                          0,                // a batch is handed over at once: no need to wait for more
		"batch.num.messages":                 10000,            // an SQS batch at most
		"batch.size":                         1000000,
		"message.timeout.ms":                 messageTimeoutMs,
		"message.max.bytes":                  maxBytes,
		"socket.keepalive.enable":            true,
		"connections.max.idle.ms":            idleMs,
		"socket.connection.setup.timeout.ms": setupTimeoutMs,
		"reconnect.backoff.max.ms":           reconnectMaxMs,
		"topic.metadata.propagation.max.ms":  propagationMs,
		"enable.metrics.push":                false, // no KIP-714 telemetry requests to the brokers

		// The Go client's own settings: no key or value copied back into
		// delivery reports, small channels instead of 1,000,000 slots
		// each, librdkafka's logs through slog.
		"go.delivery.report.fields": "none",
		"go.events.channel.size":    1000,
		"go.produce.channel.size":   1,
		"go.logs.channel.enable":    true,
	}
	for k, v := range authProperties(c) {
		m[k] = v
	}
	for k, v := range c.KafkaProperties {
		m[k] = v
	}
	return m
}

// authProperties are the security settings of c.Auth. TLS verifies the
// broker's certificate and host name, against RELAY_TLS_CA_FILE or the
// system's CA bundle ("probe" finds Amazon Linux's).
func authProperties(c relay.Config) kafka.ConfigMap {
	if c.Auth == relay.AuthNone {
		return kafka.ConfigMap{"security.protocol": "plaintext"}
	}
	m := kafka.ConfigMap{
		"ssl.ca.location":                       "probe",
		"ssl.endpoint.identification.algorithm": "https",
	}
	if c.TLSCAFile != "" {
		m["ssl.ca.location"] = c.TLSCAFile
	}
	switch c.Auth {
	case relay.AuthIAM:
		m["security.protocol"] = "sasl_ssl"
		m["sasl.mechanisms"] = "OAUTHBEARER" // tokens come from the TokenSource
	case relay.AuthSCRAM:
		m["security.protocol"] = "sasl_ssl"
		m["sasl.mechanisms"] = "SCRAM-SHA-512"
		m["sasl.username"] = c.SCRAMUsername
		m["sasl.password"] = c.SCRAMPassword
	case relay.AuthMTLS:
		m["security.protocol"] = "ssl"
		m["ssl.certificate.location"] = c.TLSCertFile
		m["ssl.key.location"] = c.TLSKeyFile
	}
	return m
}

// mechanism and principal name the identity in logs; never a secret.
func mechanism(c relay.Config) string {
	switch c.Auth {
	case relay.AuthIAM:
		return "OAUTHBEARER (MSK IAM)"
	case relay.AuthSCRAM:
		return "SCRAM-SHA-512"
	case relay.AuthMTLS:
		return "mutual TLS"
	}
	return "none"
}
