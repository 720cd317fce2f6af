package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/sqs-msk-relay/relay/relay"
)

// Queue is the function's own use of SQS after a batch: it implements
// relay.Queue on the AWS SDK, so that records are dead-lettered and backed
// off by the relay's failure policy.
type Queue struct {
	client *awssqs.Client
	dlqURL string

	mu   sync.Mutex
	urls map[string]string // source queue URL by ARN
}

// NewQueue returns the relay's SQS for the dead-letter queue at dlqURL
// ("" when the relay does not dead-letter itself).
func NewQueue(c *awssqs.Client, dlqURL string) *Queue {
	return &Queue{client: c, dlqURL: dlqURL, urls: map[string]string{}}
}

// The attributes the relay adds to a dead-lettered message, while the
// message has room for them (SQS allows 10).
const (
	AttrFailureReason = "relay.failure.reason"   // the reason code, e.g. "oversized"
	AttrFailureError  = "relay.failure.error"    // the error as the relay logged it
	AttrSourceID      = "relay.source.messageId" // the messageId in the source queue, as logged
	maxAttributes     = 10
	maxErrorText      = 1024
)

// sendBatchBytes bounds one SendMessageBatch: SQS refuses a batch whose
// messages total more than its message size limit (256 KiB on queues not
// raised to 1 MiB).
const sendBatchBytes = 256 << 10

// DeadLetter sends each record to the DLQ with its body and message
// attributes, and the failure and the source messageId as three more
// attributes while there is room (a record with 10 has none: its failure
// is in the "record dead-lettered" log line only);
// on a FIFO DLQ with the record's group and its messageId as the
// deduplication id, so that a retried send is not a second message.
func (q *Queue) DeadLetter(ctx context.Context, letters []relay.DeadLetter) []error {
	errs := make([]error, len(letters))
	if q.dlqURL == "" {
		for i := range errs {
			errs[i] = errors.New("no dead-letter queue configured (RELAY_DLQ_URL)")
		}
		return errs
	}
	fifo := strings.HasSuffix(q.dlqURL, ".fifo")
	var batch []types.SendMessageBatchRequestEntry
	var which []int
	size := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		out, err := q.client.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: &q.dlqURL, Entries: batch})
		settleEntries(errs, which, out, err, func(o *awssqs.SendMessageBatchOutput) ([]string, []types.BatchResultErrorEntry) {
			ok := make([]string, len(o.Successful))
			for i, s := range o.Successful {
				ok[i] = aws.ToString(s.Id)
			}
			return ok, o.Failed
		})
		batch, which, size = batch[:0], which[:0], 0
	}
	for i, l := range letters {
		e, n := entry(strconv.Itoa(i), l, fifo)
		if len(batch) == 10 || len(batch) > 0 && size+n > sendBatchBytes {
			flush()
		}
		batch, which, size = append(batch, e), append(which, i), size+n
	}
	flush()
	return errs
}

// entry is the DLQ message for l, and its size as SQS counts it.
func entry(id string, l relay.DeadLetter, fifo bool) (types.SendMessageBatchRequestEntry, int) {
	r := l.Record
	e := types.SendMessageBatchRequestEntry{Id: aws.String(id), MessageBody: aws.String(string(r.Body)),
		MessageAttributes: map[string]types.MessageAttributeValue{}}
	size := len(r.Body)
	for _, a := range r.Attributes {
		v := types.MessageAttributeValue{DataType: aws.String(a.DataType)}
		if strings.HasPrefix(a.DataType, "Binary") {
			v.BinaryValue = a.Value
		} else {
			v.StringValue = aws.String(string(a.Value))
		}
		e.MessageAttributes[a.Name] = v
		size += len(a.Name) + len(a.DataType) + len(a.Value)
	}
	text := l.Err
	if len(text) > maxErrorText {
		text = text[:maxErrorText] + "…"
	}
	for _, add := range []struct{ name, value string }{{AttrFailureReason, l.Reason}, {AttrFailureError, text}, {AttrSourceID, r.MessageID}} {
		if _, taken := e.MessageAttributes[add.name]; len(e.MessageAttributes) < maxAttributes && !taken {
			e.MessageAttributes[add.name] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(add.value)}
			size += len(add.name) + len("String") + len(add.value)
		}
	}
	if fifo {
		group := r.MessageGroupID
		if group == "" {
			group = "relay-dead-letters"
		}
		e.MessageGroupId, e.MessageDeduplicationId = aws.String(group), aws.String(dedupID(r.MessageID))
	}
	return e, size
}

// dedupID is a FIFO deduplication id made of a messageId: at most 128 of
// the characters SQS allows.
func dedupID(messageID string) string {
	var b strings.Builder
	for _, c := range messageID {
		if c < 0x21 || c > 0x7e {
			c = '_'
		}
		b.WriteRune(c)
		if b.Len() >= 128 {
			break
		}
	}
	return b.String()
}

// SetVisibility changes the visibility of the messages of the queue
// sourceARN, ten to a call.
func (q *Queue) SetVisibility(ctx context.Context, sourceARN string, changes []relay.VisibilityChange) []error {
	errs := make([]error, len(changes))
	url, err := q.urlOf(ctx, sourceARN)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// Calls run a few at a time: 10,000 failed records are 1,000 calls.
	const inFlight = 8
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	for start := 0; start < len(changes); start += 10 {
		end := min(start+10, len(changes))
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, 0, end-start)
		which := make([]int, 0, end-start)
		for i := start; i < end; i++ {
			c := changes[i]
			entries = append(entries, types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)),
				ReceiptHandle: aws.String(c.ReceiptHandle), VisibilityTimeout: int32(c.Visibility.Seconds())})
			which = append(which, i)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for _, i := range which {
				errs[i] = ctx.Err()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			out, err := q.client.ChangeMessageVisibilityBatch(ctx, &awssqs.ChangeMessageVisibilityBatchInput{QueueUrl: &url, Entries: entries})
			settleEntries(errs, which, out, err, func(o *awssqs.ChangeMessageVisibilityBatchOutput) ([]string, []types.BatchResultErrorEntry) {
				ok := make([]string, len(o.Successful))
				for i, s := range o.Successful {
					ok[i] = aws.ToString(s.Id)
				}
				return ok, o.Failed
			})
		}()
	}
	wg.Wait()
	return errs
}

// settleEntries sets errs for the entries of one batch call, whose ids
// are the indexes in which: nil for those SQS reports successful, an error
// for the others, the call's when it failed.
func settleEntries[O any](errs []error, which []int, out *O, err error, read func(*O) ([]string, []types.BatchResultErrorEntry)) {
	if err == nil && out == nil {
		err = errors.New("no answer")
	}
	for _, i := range which {
		errs[i] = err
		if err == nil {
			errs[i] = errors.New("not in SQS's answer")
		}
	}
	if err != nil {
		return
	}
	ok, failed := read(out)
	for _, id := range ok {
		if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < len(errs) {
			errs[i] = nil
		}
	}
	for _, f := range failed {
		if i, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && i >= 0 && i < len(errs) {
			errs[i] = fmt.Errorf("%w: %s: %s", relay.ErrSQSRefused, aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
}

// MaxReceiveCount reads the maxReceiveCount of sourceARN's redrive policy.
func (q *Queue) MaxReceiveCount(ctx context.Context, sourceARN string) (int, error) {
	url, err := q.urlOf(ctx, sourceARN)
	if err != nil {
		return 0, err
	}
	out, err := q.client.GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: &url,
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy}})
	if err != nil {
		return 0, fmt.Errorf("read the redrive policy of %s: %w", sourceARN, err)
	}
	policy := out.Attributes[string(types.QueueAttributeNameRedrivePolicy)]
	if policy == "" {
		return 0, nil
	}
	var p struct {
		MaxReceiveCount json.Number `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		return 0, fmt.Errorf("redrive policy of %s: %w", sourceARN, err)
	}
	n, err := strconv.Atoi(p.MaxReceiveCount.String())
	if err != nil {
		return 0, fmt.Errorf("redrive policy of %s: maxReceiveCount %q: %w", sourceARN, p.MaxReceiveCount, err)
	}
	return n, nil
}

// urlOf is the URL of the queue arn, asked of SQS once.
func (q *Queue) urlOf(ctx context.Context, arn string) (string, error) {
	q.mu.Lock()
	url, ok := q.urls[arn]
	q.mu.Unlock()
	if ok {
		return url, nil
	}
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", fmt.Errorf("%q is not an SQS queue ARN", arn)
	}
	out, err := q.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(parts[5]), QueueOwnerAWSAccountId: aws.String(parts[4])})
	if err != nil {
		return "", fmt.Errorf("find the URL of %s: %w", arn, err)
	}
	q.mu.Lock()
	q.urls[arn] = aws.ToString(out.QueueUrl)
	q.mu.Unlock()
	return aws.ToString(out.QueueUrl), nil
}

// Ping checks that the SQS API answers from here, with a request for a
// queue that does not exist: any answer from SQS, an error included,
// proves the path; a timeout or a refused connection means none (a
// function in a VPC reaches SQS only through a NAT or an sqs endpoint).
func (q *Queue) Ping(ctx context.Context) (string, error) {
	_, err := q.client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String("relay-doctor-probe-" + strconv.Itoa(os.Getpid()))})
	var apiErr smithy.APIError
	if err == nil || errors.As(err, &apiErr) {
		detail := "the SQS API answered"
		if apiErr != nil {
			detail += " (" + apiErr.ErrorCode() + ", as expected for the probe)"
		}
		return detail, nil
	}
	return "", fmt.Errorf("no answer from the SQS API: %w", err)
}
