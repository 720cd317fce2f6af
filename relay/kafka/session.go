package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// session is one librdkafka producer and the goroutines that serve its
// events and logs for its whole life: an Events channel nobody reads stalls
// delivery reports and token refreshes alike.
type session struct {
	kp    *kafka.Producer
	grace time.Duration
	log   *slog.Logger
	done  chan struct{} // closed when serveEvents returns

	// refs and retired are guarded by the Producer's mutex.
	refs    int
	retired bool

	mu      sync.Mutex
	batches map[*batch]struct{}
	fatal   error
	trouble *trouble // a batch-level cause seen since the last acknowledgement
	lastErr string   // the last client error, to say why every broker is down
}

// trouble is a batch-level cause: every broker down, or authentication
// refused. An acknowledgement clears it.
type trouble struct {
	reason string
	err    error
}

func (s *session) fatalErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fatal
}

func (s *session) currentTrouble() *trouble {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trouble
}

// acknowledged clears any trouble: a broker took a message.
func (s *session) acknowledged() {
	s.mu.Lock()
	s.trouble = nil
	s.mu.Unlock()
}

func (s *session) register(b *batch) {
	s.mu.Lock()
	s.batches[b] = struct{}{}
	s.mu.Unlock()
}

func (s *session) unregister(b *batch) {
	s.mu.Lock()
	delete(s.batches, b)
	s.mu.Unlock()
}

// wakeLocked tells every running batch to look at the session's state.
func (s *session) wakeLocked() {
	for b := range s.batches {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (s *session) serveEvents() {
	defer close(s.done)
	for ev := range s.kp.Events() {
		switch e := ev.(type) {
		case kafka.Error:
			s.onError(e)
		case *kafka.Message:
			// Every message is produced with a delivery channel; a report
			// here would be a bug, but must still be drained.
			s.log.Warn("delivery report without a batch", "topic", topicOf(e))
		default:
			s.log.Debug("librdkafka event", "event", ev.String())
		}
	}
}

func (s *session) onError(e kafka.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e.IsFatal():
		s.fatal = e
		s.log.Error("Kafka producer fatal error: failing the running batches; a new producer serves the next batch", "code", e.Code().String(), "error", e.Error())
		s.wakeLocked()
	case e.Code() == kafka.ErrAuthentication:
		s.trouble = &trouble{reason: relay.ReasonAuthFailed, err: fmt.Errorf("authentication failed: %w", e)}
		s.log.Error("Kafka authentication failed", "error", e.Error())
		s.wakeLocked()
	case e.Code() == kafka.ErrAllBrokersDown:
		if s.trouble == nil || s.trouble.reason != relay.ReasonAuthFailed {
			err := fmt.Errorf("no broker reachable: %w", e)
			if s.lastErr != "" {
				err = fmt.Errorf("no broker reachable (last error: %s): %w", s.lastErr, e)
			}
			s.trouble = &trouble{reason: relay.ReasonBrokersDown, err: err}
		}
		s.log.Warn("all Kafka brokers are down", "error", e.Error())
		s.wakeLocked()
	default:
		s.lastErr = e.Error()
		s.log.Warn("Kafka client error", "code", e.Code().String(), "error", e.Error())
	}
}

func (s *session) serveLogs() {
	for le := range s.kp.Logs() {
		level := slog.LevelDebug
		switch {
		case le.Level <= 3:
			level = slog.LevelError
		case le.Level == 4:
			level = slog.LevelWarn
		case le.Level <= 6:
			level = slog.LevelInfo
		}
		if le.Tag == "FAIL" {
			level = slog.LevelDebug // also an error event, logged once there
		}
		s.log.Log(context.Background(), level, "librdkafka", "tag", le.Tag, "message", le.Message)
	}
}

// close purges whatever is left, so no report is waited for, and destroys
// the librdkafka producer.
func (s *session) close() {
	_ = s.kp.Purge(kafka.PurgeQueue | kafka.PurgeInFlight | kafka.PurgeNonBlocking)
	s.kp.Close()
	<-s.done
}

// reasonFor turns a Kafka error into a reason code: "Broker: Message size
// too large" becomes "message_size_too_large".
func reasonFor(err kafka.Error) string {
	switch err.Code() {
	case kafka.ErrPurgeQueue, kafka.ErrPurgeInflight:
		return "purged"
	case kafka.ErrMsgTimedOut:
		return "timed_out"
	}
	text := err.Code().String()
	if _, rest, ok := strings.Cut(text, ": "); ok {
		text = rest
	}
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

func produceError(err error) *relay.ProduceError {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return &relay.ProduceError{Reason: reasonFor(ke), Err: fmt.Errorf("kafka: %w", err)}
	}
	return &relay.ProduceError{Reason: "kafka_error", Err: fmt.Errorf("kafka: %w", err)}
}

func topicOf(m *kafka.Message) string {
	if m.TopicPartition.Topic == nil {
		return ""
	}
	return *m.TopicPartition.Topic
}
