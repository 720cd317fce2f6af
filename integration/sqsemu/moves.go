package sqsemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// moves serves StartMessageMoveTask, ListMessageMoveTasks and
// CancelMessageMoveTask as SQS does (AWS JSON 1.0): receive from the DLQ,
// send to DestinationArn or to the queue whose redrive policy names the
// DLQ, delete, at most MaxNumberOfMessagesPerSecond; one task per queue.
type moves struct {
	sqs   *sqs.Client
	mu    sync.Mutex
	seq   int
	tasks map[string]*move // by handle
}

type move struct {
	Handle, Source, Dest string
	Rate                 int
	Started              time.Time
	status               string // RUNNING, COMPLETED, CANCELLED, FAILED
	moved, toMove        int64
	failure              string
	cancel               context.CancelFunc
	done                 chan struct{}
}

func newMoves(c *sqs.Client) *moves { return &moves{sqs: c, tasks: map[string]*move{}} }

// serve answers the three message-move actions; false for anything else.
func (m *moves) serve(w http.ResponseWriter, r *http.Request) bool {
	action, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	if !ok || (action != "StartMessageMoveTask" && action != "ListMessageMoveTasks" && action != "CancelMessageMoveTask") {
		return false
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		SourceArn, DestinationArn, TaskHandle string
		MaxNumberOfMessagesPerSecond          int
		MaxResults                            int
	}
	if err := json.Unmarshal(body, &in); err != nil {
		reply(w, http.StatusBadRequest, map[string]any{"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": err.Error()})
		return true
	}
	switch action {
	case "StartMessageMoveTask":
		h, err := m.start(in.SourceArn, in.DestinationArn, in.MaxNumberOfMessagesPerSecond)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]any{"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": err.Error()})
			return true
		}
		reply(w, http.StatusOK, map[string]any{"TaskHandle": h})
	case "ListMessageMoveTasks":
		reply(w, http.StatusOK, map[string]any{"Results": m.list(in.SourceArn, in.MaxResults)})
	case "CancelMessageMoveTask":
		n, err := m.cancelTask(in.TaskHandle)
		if err != nil {
			reply(w, http.StatusBadRequest, map[string]any{"__type": "com.amazonaws.sqs#ResourceNotFoundException", "message": err.Error()})
			return true
		}
		reply(w, http.StatusOK, map[string]any{"ApproximateNumberOfMessagesMoved": n})
	}
	return true
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (m *moves) start(source, dest string, rate int) (string, error) {
	if source == "" {
		return "", errors.New("SourceArn is required")
	}
	if rate == 0 {
		rate = 500
	}
	if rate < 1 || rate > 500 {
		return "", errors.New("MaxNumberOfMessagesPerSecond must be 1-500")
	}
	m.mu.Lock()
	for _, t := range m.tasks {
		if t.Source == source && t.status == "RUNNING" {
			m.mu.Unlock()
			return "", fmt.Errorf("a message move task is already running on %s", source)
		}
	}
	m.seq++
	ctx, cancel := context.WithCancel(context.Background())
	t := &move{Handle: "move-" + strconv.Itoa(m.seq), Source: source, Dest: dest, Rate: rate, Started: time.Now(),
		status: "RUNNING", cancel: cancel, done: make(chan struct{})}
	m.tasks[t.Handle] = t
	m.mu.Unlock()
	go m.run(ctx, t)
	return t.Handle, nil
}

func (m *moves) run(ctx context.Context, t *move) {
	defer close(t.done)
	status, failure := "COMPLETED", ""
	if err := m.moveAll(ctx, t); err != nil {
		status, failure = "FAILED", err.Error()
		if ctx.Err() != nil {
			status, failure = "CANCELLED", ""
		}
	}
	m.mu.Lock()
	t.status, t.failure = status, failure
	m.mu.Unlock()
}

func (m *moves) moveAll(ctx context.Context, t *move) error {
	src, err := m.urlOf(ctx, t.Source)
	if err != nil {
		return err
	}
	dest := t.Dest
	if dest == "" {
		if dest, err = m.redriveSource(ctx, t.Source); err != nil {
			return err
		}
	}
	dst, err := m.urlOf(ctx, dest)
	if err != nil {
		return err
	}
	attrs, err := m.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &src, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil {
		return err
	}
	n, _ := strconv.ParseInt(attrs.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessages)], 10, 64)
	m.mu.Lock()
	t.toMove = n
	m.mu.Unlock()
	tick := time.NewTicker(time.Second / time.Duration(t.Rate))
	defer tick.Stop()
	for {
		out, err := m.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: &src, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 30,
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			return err
		}
		if len(out.Messages) == 0 {
			return nil
		}
		for _, msg := range out.Messages {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
			in := &sqs.SendMessageInput{QueueUrl: &dst, MessageBody: msg.Body, MessageAttributes: msg.MessageAttributes}
			if g := msg.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; g != "" {
				in.MessageGroupId = aws.String(g)
				in.MessageDeduplicationId = msg.MessageId
			}
			if _, err := m.sqs.SendMessage(ctx, in); err != nil {
				return err
			}
			if _, err := m.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: &src, ReceiptHandle: msg.ReceiptHandle}); err != nil {
				return err
			}
			m.mu.Lock()
			t.moved++
			m.mu.Unlock()
		}
	}
}

// urlOf resolves a queue ARN (arn:aws:sqs:region:account:name).
func (m *moves) urlOf(ctx context.Context, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[2] != "sqs" {
		return "", fmt.Errorf("%q is not an SQS queue ARN", arn)
	}
	out, err := m.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(parts[5])})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", arn, err)
	}
	return *out.QueueUrl, nil
}

// redriveSource finds the queue whose redrive policy sends to dlq.
func (m *moves) redriveSource(ctx context.Context, dlq string) (string, error) {
	qs, err := m.sqs.ListQueues(ctx, &sqs.ListQueuesInput{})
	if err != nil {
		return "", err
	}
	for _, u := range qs.QueueUrls {
		a, err := m.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(u),
			AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameRedrivePolicy, types.QueueAttributeNameQueueArn}})
		if err != nil {
			return "", err
		}
		var rp struct {
			DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		}
		if json.Unmarshal([]byte(a.Attributes[string(types.QueueAttributeNameRedrivePolicy)]), &rp) == nil && rp.DeadLetterTargetArn == dlq {
			return a.Attributes[string(types.QueueAttributeNameQueueArn)], nil
		}
	}
	return "", fmt.Errorf("no queue has %s as its dead-letter queue; give DestinationArn", dlq)
}

func (m *moves) list(source string, max int) []map[string]any {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []map[string]any
	for i := m.seq; i > 0; i-- {
		t := m.tasks["move-"+strconv.Itoa(i)]
		if t == nil || (source != "" && t.Source != source) {
			continue
		}
		r := map[string]any{"TaskHandle": t.Handle, "Status": t.status, "SourceArn": t.Source,
			"ApproximateNumberOfMessagesMoved": t.moved, "ApproximateNumberOfMessagesToMove": t.toMove,
			"MaxNumberOfMessagesPerSecond": t.Rate, "StartedTimestamp": t.Started.UnixMilli()}
		if t.Dest != "" {
			r["DestinationArn"] = t.Dest
		}
		if t.failure != "" {
			r["FailureReason"] = t.failure
		}
		out = append(out, r)
		if max > 0 && len(out) == max {
			break
		}
	}
	return out
}

func (m *moves) cancelTask(handle string) (int64, error) {
	m.mu.Lock()
	t, ok := m.tasks[handle]
	m.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("no message move task %q", handle)
	}
	t.cancel()
	<-t.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return t.moved, nil
}

func (m *moves) stopAll() {
	m.mu.Lock()
	tasks := make([]*move, 0, len(m.tasks))
	for _, t := range m.tasks {
		tasks = append(tasks, t)
	}
	m.mu.Unlock()
	for _, t := range tasks {
		t.cancel()
		<-t.done
	}
}
