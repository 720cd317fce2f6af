// Package kafka produces relay messages with librdkafka through
// confluent-kafka-go: an idempotent producer with acks=all, delivery
// reports tracked per batch, and a purge at the batch's deadline.
package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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

// tunable are the librdkafka properties RELAY_KAFKA_PROPERTIES may set,
// each with why it is safe: none of them changes what is acknowledged,
// how it is authenticated or where a key lands. Every other property is
// refused at init, naming it (see CheckProperties).
var tunable = map[string]string{
	// Batching and compression: how messages are grouped on the wire.
	"linger.ms":                    "batching delay",
	"queue.buffering.max.ms":       "batching delay (alias of linger.ms)",
	"batch.num.messages":           "messages per batch",
	"batch.size":                   "bytes per batch",
	"queue.buffering.max.messages": "the local queue's size; a full queue waits, it loses nothing",
	"queue.buffering.max.kbytes":   "the local queue's size; a full queue waits, it loses nothing",
	"compression.type":             "compression",
	"compression.codec":            "compression (alias of compression.type)",
	"compression.level":            "compression",
	// Sockets and connections.
	"socket.keepalive.enable":            "TCP keepalive",
	"socket.nagle.disable":               "Nagle's algorithm",
	"socket.send.buffer.bytes":           "socket buffer",
	"socket.receive.buffer.bytes":        "socket buffer",
	"socket.timeout.ms":                  "network request timeout; the relay's deadline still bounds the batch",
	"socket.connection.setup.timeout.ms": "TCP+TLS+SASL setup timeout",
	"connections.max.idle.ms":            "idle connection close",
	"broker.address.family":              "IPv4 or IPv6",
	"request.timeout.ms":                 "produce request timeout; the relay's deadline still bounds the batch",
	// Reconnects and backoff.
	"reconnect.backoff.ms":     "reconnect backoff",
	"reconnect.backoff.max.ms": "reconnect backoff",
	"retry.backoff.ms":         "retry backoff",
	"retry.backoff.max.ms":     "retry backoff",
	// Metadata.
	"topic.metadata.refresh.interval.ms": "metadata refresh",
	"metadata.max.age.ms":                "metadata refresh",
	"topic.metadata.propagation.max.ms":  "how long a missing topic is waited for",
	// Diagnosis.
	"debug":                "librdkafka's debug contexts, logged as JSON",
	"log.connection.close": "logging of closed connections",
}

// refused explains the properties most likely to be tried, with what
// each would break; any other property off the tunable list is refused
// too, with a general reason.
var refused = map[string]string{
	"bootstrap.servers":                     "RELAY_BROKERS sets it",
	"metadata.broker.list":                  "RELAY_BROKERS sets it",
	"security.protocol":                     "RELAY_AUTH sets it",
	"enable.idempotence":                    "the relay's delivery guarantee (always true)",
	"acks":                                  "the relay's delivery guarantee (always all)",
	"request.required.acks":                 "the relay's delivery guarantee (always all)",
	"transactional.id":                      "the relay's delivery guarantee (not transactional)",
	"delivery.report.only.error":            "every record would be reported failed: the relay counts a record done only on its success report",
	"enable.ssl.certificate.verification":   "TLS always verifies the broker's certificate",
	"ssl.endpoint.identification.algorithm": "TLS always verifies the broker's host name",
	"enable.sasl.oauthbearer.unsecure.jwt":  "IAM tokens come from the relay's signer only",
	"partitioner":                           "keys land where Java clients put them (murmur2_random)",
	"message.timeout.ms":                    "librdkafka must never give up before the function's deadline; the relay purges at its own",
	"delivery.timeout.ms":                   "librdkafka must never give up before the function's deadline; the relay purges at its own",
	"message.max.bytes":                     "RELAY_MAX_MESSAGE_BYTES sets it",
	"client.id":                             "the function's name sets it",
}

// CheckProperties refuses every RELAY_KAFKA_PROPERTIES entry that is not a
// tuning property the relay allows; errors name the property, never its
// value.
func CheckProperties(props map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(props)) {
		if _, ok := tunable[k]; ok {
			continue
		}
		why, ok := refused[k]
		switch {
		case ok:
		case strings.HasPrefix(k, "sasl.") || strings.HasPrefix(k, "ssl."):
			why = "authentication is configured by RELAY_AUTH and its variables"
		case strings.HasPrefix(k, "go."):
			why = "the relay's delivery tracking depends on the Go client's settings"
		default:
			why = "only tuning properties may be set (batching, compression, sockets, reconnects and backoff, metadata, debug; see the README)"
		}
		errs = append(errs, fmt.Errorf("RELAY_KAFKA_PROPERTIES: %s cannot be set: %s", k, why))
	}
	return errors.Join(errs...)
}

// lingerMs is linger.ms: how long librdkafka gathers messages before it
// sends a partition's request, in milliseconds (a decimal string). A
// broker serves one request per connection at a time, and with acks=all
// each waits for the followers, so a small batch split over two requests
// per broker pays for two rounds of replication. On the real RF-3
// cluster, 0.5 made 10-record batches 1.8-3.0 times as fast as 0, and
// 100-record ones about 3 times (two runs of BenchmarkRealClusterLinger,
// docs/performance.md). Where the broker answers at once (kfake) it costs
// a 10-record batch about 1 ms (0.33 to 1.35 ms).
const lingerMs = "0.5"

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
		"linger.ms":                          lingerMs,
		"batch.num.messages":                 10000, // an SQS batch at most
		"batch.size":                         1000000,
		"message.timeout.ms":                 messageTimeoutMs,
		"message.max.bytes":                  maxBytes,
		"socket.keepalive.enable":            true,
		"connections.max.idle.ms":            idleMs,
		"socket.connection.setup.timeout.ms": setupTimeoutMs,
		"reconnect.backoff.max.ms":           reconnectMaxMs,
		"topic.metadata.propagation.max.ms":  propagationMs,
		"enable.metrics.push":                false, // no KIP-714 telemetry requests to the brokers
		// Connect to every broker as soon as metadata names it, during
		// init, not to each leader at the first batch that needs it. A
		// hidden librdkafka property (its own tests use it), checked by
		// TestReady (librdkafka refuses an unknown property).
		"enable.sparse.connections": false,

		// The Go client's own settings: no key or value copied back into
		// delivery reports, small channels instead of 1,000,000 slots
		// each, librdkafka's logs through slog.
		"go.delivery.report.fields": "none",
		"go.events.channel.size":    1000,
		"go.produce.channel.size":   1,
		"go.logs.channel.enable":    true,
	}
	if kb := queueKBytes(c.FunctionMemoryMB, maxBytes); kb > 0 {
		m["queue.buffering.max.kbytes"] = kb
	}
	for k, v := range authProperties(c) {
		m[k] = v
	}
	for k, v := range c.KafkaProperties {
		m[k] = v
	}
	// The idempotent producer's state changes (debug context eos, a few
	// lines a sandbox) tell Ready when the producer id is assigned.
	m["debug"] = withDebugContext(m["debug"], "eos")
	return m
}

// smallFunctionMB is the memory size below which librdkafka's queue is
// bounded: there, its copy of a whole 6 MB batch is a large share.
const smallFunctionMB = 512

// queueKBytes is queue.buffering.max.kbytes for a function of memoryMB
// whose largest message is maxBytes: room for that message and no more
// below smallFunctionMB (the produce loop waits on a full queue and loses
// nothing), librdkafka's default (0 here) above it and outside Lambda. At
// 128 MB it keeps the peak RSS over 20 back-to-back 6 MB events at
// 54.6-59.2 MB instead of 60.6-68.4 MB (docs/performance.md).
func queueKBytes(memoryMB, maxBytes int) int {
	if memoryMB <= 0 || memoryMB >= smallFunctionMB {
		return 0
	}
	return (maxBytes + 1023) / 1024
}

// withDebugContext adds ctx to librdkafka's comma-separated debug
// contexts, set, unless it is there already or "all" is.
func withDebugContext(set kafka.ConfigValue, ctx string) string {
	s, _ := set.(string)
	if s == "" {
		return ctx
	}
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c == ctx || c == "all" {
			return s
		}
	}
	return s + "," + ctx
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
