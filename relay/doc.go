// Package relay moves one SQS batch into Kafka and says which records did
// not make it.
//
// It holds the domain: Message (a Kafka message), the mapping from an SQS
// record to it, the handler, the per-batch outcome and the configuration.
// relay/sqsevent decodes the SQS event into Records and imports nothing of
// relay; the other subpackages wrap one dependency each: relay/kafka
// librdkafka through confluent-kafka-go, relay/mskiam the MSK IAM signer,
// relay/scramsecret Secrets Manager, relay/auth builds the producer's
// authentication from them. relay/doctor and relay/sqs serve the tools.
//
// The promise, from DESIGN.md: every record of a batch is either
// acknowledged by Kafka with acks=all, or listed in batchItemFailures by its
// messageId; the handler answers before the Lambda deadline.
package relay
