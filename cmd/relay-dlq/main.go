// Command relay-dlq is the operators' tool for the relay's dead-letter
// queue: peek at its messages (with the query that finds why the relay
// failed each), redrive it to the source queue with SQS's message-move
// tasks, watch or cancel a redrive, or replay selected messages straight
// into Kafka through the relay's own mapping and producer.
//
//	relay-dlq -dlq URL peek [-n 10]
//	relay-dlq -dlq URL redrive [-rate 50] [-dest ARN]
//	relay-dlq -dlq URL status
//	relay-dlq -dlq URL cancel -task HANDLE
//	relay-dlq -dlq URL replay -source ARN -ids ID,ID   (RELAY_* configure the producer)
//
// AWS credentials and region come from the usual chain; AWS_ENDPOINT_URL_SQS
// points it at a local SQS.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/auth"
	"github.com/sqs-msk-relay/relay/relay/sqs"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relay-dlq:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	global := flag.NewFlagSet("relay-dlq", flag.ExitOnError)
	dlq := global.String("dlq", os.Getenv("RELAY_DLQ_URL"), "the dead-letter queue's URL (or RELAY_DLQ_URL)")
	global.Parse(args)
	if *dlq == "" || global.NArg() == 0 {
		return fmt.Errorf("usage: relay-dlq -dlq URL peek|redrive|status|cancel|replay [flags]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return err
	}
	c := awssqs.NewFromConfig(awsCfg)
	cmd, rest := global.Arg(0), global.Args()[1:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	n := fs.Int("n", 10, "peek: how many messages")
	rate := fs.Int("rate", 0, "redrive: messages per second (1-500; 0: SQS chooses)")
	dest := fs.String("dest", "", "redrive: destination queue ARN (default: where the messages came from)")
	task := fs.String("task", "", "cancel: the task handle")
	source := fs.String("source", "", "replay: the source queue's ARN, as the records' eventSourceARN")
	ids := fs.String("ids", "", "replay: comma-separated message ids")
	fs.Parse(rest)

	switch cmd {
	case "peek":
		msgs, err := sqs.Peek(ctx, c, *dlq, *n)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			body := m.Body
			if len(body) > 200 {
				body = body[:200] + "…"
			}
			fmt.Printf("%s  received %d times  sent %s", m.ID, m.ReceiveCount, m.SentAt.UTC().Format(time.RFC3339))
			if m.GroupID != "" {
				fmt.Printf("  group %s", m.GroupID)
			}
			id := m.ID
			if src := m.Attributes[sqs.AttrSourceID]; src != "" {
				id = src // moved by the relay itself: its reason is in the attributes too
			}
			fmt.Printf("\n  attributes: %v\n  body: %s\n  why it failed (CloudWatch Logs Insights, the function's log group):\n    %s\n", m.Attributes, body, sqs.FailureQuery(id))
		}
		fmt.Printf("%d messages shown (left in the queue)\n", len(msgs))
	case "redrive":
		arn, err := sqs.QueueARN(ctx, c, *dlq)
		if err != nil {
			return err
		}
		h, err := sqs.StartRedrive(ctx, c, arn, *dest, *rate)
		if err != nil {
			return err
		}
		fmt.Printf("redrive started: task %s (watch it with `status`)\n", h)
	case "status":
		arn, err := sqs.QueueARN(ctx, c, *dlq)
		if err != nil {
			return err
		}
		tasks, err := sqs.Redrives(ctx, c, arn)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			fmt.Printf("%s  %s  moved %d of %d  %s\n", t.Handle, t.Status, t.Moved, t.ToMove, t.Failure)
		}
	case "cancel":
		moved, err := sqs.CancelRedrive(ctx, c, *task)
		if err != nil {
			return err
		}
		fmt.Printf("cancelled after moving %d messages\n", moved)
	case "replay":
		return replay(ctx, c, *dlq, *source, strings.Split(*ids, ","), awsCfg.Region)
	default:
		return fmt.Errorf("unknown command %q", cmd)
	}
	return nil
}

func replay(ctx context.Context, c *awssqs.Client, dlq, source string, ids []string, region string) error {
	if source == "" || len(ids) == 0 || ids[0] == "" {
		return fmt.Errorf("replay needs -source ARN and -ids")
	}
	cfg, err := relay.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	p, a, err := auth.NewProducer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := sqs.Replay(ctx, c, dlq, source, region, ids, relay.NewHandler(a.Config, p, log), sqs.ReplayOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("replayed into Kafka and deleted from the DLQ: %v\nstill in the DLQ (failed again, see the logs above): %v\nnot found in the DLQ: %v\n", res.Replayed, res.Failed, res.Missing)
	if len(res.Expired) > 0 {
		fmt.Printf("still in the DLQ, not replayed (their visibility ran out while the DLQ was read; run again): %v\n", res.Expired)
	}
	return nil
}
