// Package relay moves one SQS batch into Kafka and says which records did
// not make it.
//
// It holds the domain: Record (an SQS record as the relay sees it), Message
// (a Kafka message), the mapping from one to the other, the per-batch
// outcome and the configuration. Subpackages wrap one dependency each:
// relay/kafka wraps librdkafka through confluent-kafka-go.
//
// The promise, from DESIGN.md: every record of a batch is either
// acknowledged by Kafka with acks=all, or listed in batchItemFailures by its
// messageId; the handler answers before the Lambda deadline.
package relay
