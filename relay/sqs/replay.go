package sqs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
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
	// Expired were found, but their visibility ran out before they could
	// be relayed: not replayed, still in the DLQ; run the replay again.
	Expired []string
}

// ReplayOptions tune how Replay reads the DLQ; the zero value is the
// default.
type ReplayOptions struct {
	// Wait is each receive's long-poll wait; default 2 s.
	Wait time.Duration
	// Visibility hides received messages while the replay runs; default
	// 2 min.
	Visibility time.Duration
}

// Replay sends the DLQ messages with the given ids straight into Kafka
// through the relay (relay is the handler with its producer), as if Lambda
// delivered them from sourceARN, and deletes from the DLQ those Kafka
// acknowledged. Messages not selected are made visible again. The DLQ is
// read with long polls until every id is found, a poll comes back empty,
// or the queue has been read through.
func Replay(ctx context.Context, c *awssqs.Client, dlqURL, sourceARN, region string, ids []string, relay Invoker, opts ReplayOptions) (ReplayResult, error) {
	var res ReplayResult
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	all, err := receive(ctx, c, dlqURL, receiveOptions{max: 10000, wait: opts.Wait, visibility: opts.Visibility,
		enough: func(id string) bool { return want[id] }, wanted: len(want)})
	if err != nil {
		return res, err
	}
	var picked []types.Message
	var held, others []Message
	found := map[string]bool{}
	for _, m := range all {
		if want[m.ID] && !found[m.ID] {
			picked = append(picked, m.raw)
			held = append(held, m)
			found[m.ID] = true
		} else {
			others = append(others, m)
		}
	}
	// The picked ones stay hidden while they are relayed, so that their
	// receipt handles still delete them afterwards. One whose visibility
	// already ran out is left alone: its handle would not delete it.
	expired, err := hold(ctx, c, dlqURL, held, defaultVisibility)
	if err != nil {
		return res, fmt.Errorf("hide the messages to replay: %w", err)
	}
	if len(expired) > 0 {
		res.Expired = expired
		gone := map[string]bool{}
		for _, id := range expired {
			gone[id] = true
		}
		picked = slices.DeleteFunc(picked, func(m types.Message) bool { return gone[aws.ToString(m.MessageId)] })
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
