package sqs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Invoker runs the relay on an event payload, as relay.Handler.Invoke does.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// ReplayResult says what became of the selected messages.
type ReplayResult struct {
	Replayed []string // acknowledged by Kafka and deleted from the DLQ
	Failed   []string // still in the DLQ
	Missing  []string // selected, but not found in the DLQ
}

// Replay sends the DLQ messages with the given ids straight into Kafka
// through the relay (relay is the handler with its producer), as if Lambda
// delivered them from sourceARN, and deletes from the DLQ those Kafka
// acknowledged. Messages not selected are made visible again.
func Replay(ctx context.Context, c *awssqs.Client, dlqURL, sourceARN, region string, ids []string, relay Invoker) (ReplayResult, error) {
	var res ReplayResult
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	all, err := receive(ctx, c, dlqURL, 10000)
	if err != nil {
		return res, err
	}
	var picked []types.Message
	var others []Message
	found := map[string]bool{}
	for _, m := range all {
		if want[m.ID] && !found[m.ID] {
			picked = append(picked, m.raw)
			found[m.ID] = true
		} else {
			others = append(others, m)
		}
	}
	if err := release(ctx, c, dlqURL, others); err != nil {
		return res, err
	}
	for _, id := range ids {
		if !found[id] {
			res.Missing = append(res.Missing, id)
		}
	}
	if len(picked) == 0 {
		return res, nil
	}
	payload, err := json.Marshal(Event(picked, sourceARN, region))
	if err != nil {
		return res, err
	}
	out, err := relay.Invoke(ctx, payload)
	if err != nil {
		return res, fmt.Errorf("relay: %w", err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return res, fmt.Errorf("relay response: %w", err)
	}
	failed := map[string]bool{}
	for _, f := range resp.BatchItemFailures {
		failed[f.ItemIdentifier] = true
	}
	var keep []Message
	for _, m := range picked {
		id := *m.MessageId
		if failed[id] {
			res.Failed = append(res.Failed, id)
			keep = append(keep, fromSQS(m))
			continue
		}
		if _, err := c.DeleteMessage(ctx, &awssqs.DeleteMessageInput{QueueUrl: &dlqURL, ReceiptHandle: m.ReceiptHandle}); err != nil {
			return res, fmt.Errorf("delete replayed %s: %w", id, err)
		}
		res.Replayed = append(res.Replayed, id)
	}
	return res, release(ctx, c, dlqURL, keep)
}
