package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// session is one librdkafka producer and the goroutines that serve its
// events and logs for its whole life: an Events channel nobody reads stalls
// delivery reports and token refreshes alike.
type session struct {
	kp     *kafka.Producer
	grace  time.Duration
	log    *slog.Logger
	tokens TokenSource // nil unless OAUTHBEARER
	ident  identity
	done   chan struct{} // closed when serveEvents returns

	tokenMu     sync.Mutex // one refresh at a time
	tokenExpiry time.Time  // of the token librdkafka holds; guarded by tokenMu
	tokenSetAt  time.Time  // guarded by tokenMu

	// refs and retired are guarded by the Producer's mutex.
	refs    int
	retired bool

	// fatal and trouble are read on every Add and delivery report:
	// atomics, not the mutex.
	fatal   atomic.Pointer[kafka.Error]
	trouble atomic.Pointer[trouble] // a batch-level cause seen since the last acknowledgement

	mu      sync.Mutex
	batches map[*run]struct{}
	lastErr string // the last client error, to say why every broker is down
}

// trouble is a batch-level cause: every broker down, or authentication
// refused. An acknowledgement clears it.
type trouble struct {
	reason string
	err    error
}

func (s *session) fatalErr() error {
	if e := s.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *session) currentTrouble() *trouble { return s.trouble.Load() }

// acknowledged clears any trouble: a broker took a message.
func (s *session) acknowledged() {
	if s.trouble.Load() != nil {
		s.trouble.Store(nil)
	}
}

func (s *session) register(b *run) {
	s.mu.Lock()
	s.batches[b] = struct{}{}
	s.mu.Unlock()
}

func (s *session) unregister(b *run) {
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
		case kafka.OAuthBearerTokenRefresh:
			// Off the event loop: signing may call STS, and delivery
			// reports must keep flowing meanwhile.
			go s.refreshToken(context.Background())
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
		s.fatal.Store(&e)
		s.log.Error("Kafka producer fatal error: failing the running batches; a new producer serves the next batch", "code", e.Code().String(), "error", e.Error())
		s.wakeLocked()
	case e.Code() == kafka.ErrAuthentication || strings.Contains(e.Error(), "SASL authentication error"):
		// A broker that drops the connection on a bad password, rather
		// than answering SASL_AUTHENTICATION_FAILED, shows as a transport
		// error that librdkafka still labels as an authentication error.
		s.authFailed(e)
		s.log.Error("Kafka authentication failed", "mechanism", s.ident.mechanism, "principal", s.ident.principal, "error", e.Error())
		s.wakeLocked()
	case e.Code() == kafka.ErrSsl:
		s.trouble.Store(&trouble{reason: relay.ReasonTLSFailed, err: fmt.Errorf("TLS failed%s: %w", hintSuffix(e.Error()), e)})
		s.log.Error("Kafka TLS failed", "mechanism", s.ident.mechanism, "error", e.Error())
		s.wakeLocked()
	case e.Code() == kafka.ErrAllBrokersDown:
		// A failed authentication or TLS handshake also leaves every broker
		// down: keep the more precise cause.
		if t := s.trouble.Load(); t == nil || t.reason == relay.ReasonBrokersDown {
			err := fmt.Errorf("no broker reachable: %w", e)
			if s.lastErr != "" {
				err = fmt.Errorf("no broker reachable (last error: %s%s): %w", s.lastErr, hintSuffix(s.lastErr), e)
			}
			s.trouble.Store(&trouble{reason: relay.ReasonBrokersDown, err: err})
		}
		s.log.Warn("all Kafka brokers are down", "error", e.Error())
		s.wakeLocked()
	default:
		s.lastErr = e.Error()
		s.log.Warn("Kafka client error", "code", e.Code().String(), "error", e.Error())
	}
}

// authFailed records a refused or impossible authentication as the
// batch-level cause, naming the mechanism and principal, never a secret.
func (s *session) authFailed(err error) {
	s.trouble.Store(&trouble{reason: relay.ReasonAuthFailed,
		err: fmt.Errorf("authentication failed (mechanism %s, principal %s): %w", s.ident.mechanism, s.ident.principal, err)})
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
			// Usually also an error event, logged there; but some
			// disconnects come only as this line, and say why.
			level = slog.LevelDebug
			s.mu.Lock()
			s.lastErr = le.Message
			s.mu.Unlock()
		}
		s.log.Log(context.Background(), level, "librdkafka", "tag", le.Tag, "message", le.Message)
	}
}

// tokenRefreshAhead is how long before its expiry a token is replaced
// before a batch (or a tenth of its lifetime, if shorter): after a sandbox
// freeze librdkafka's own refresh timer may not have run yet.
const tokenRefreshAhead = time.Minute

// ensureToken refreshes the OAUTHBEARER token before a batch if the one
// librdkafka holds is expired or about to be.
func (s *session) ensureToken(ctx context.Context) {
	if s.tokens == nil {
		return
	}
	s.tokenMu.Lock()
	ahead := min(tokenRefreshAhead, s.tokenExpiry.Sub(s.tokenSetAt)/10)
	stale := time.Until(s.tokenExpiry) < ahead
	s.tokenMu.Unlock()
	if stale {
		s.refreshToken(ctx)
	}
}

// refreshToken signs a new token and hands it to librdkafka, or tells
// librdkafka why it cannot (it retries in 10 s).
func (s *session) refreshToken(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	if time.Since(s.tokenSetAt) < s.tokenExpiry.Sub(s.tokenSetAt)/10 {
		return // a concurrent refresh just did it
	}
	tok, exp, err := s.tokens.Token(ctx)
	if err != nil {
		reason := fmt.Sprintf("cannot make an MSK IAM token: %v", err)
		_ = s.kp.SetOAuthBearerTokenFailure(reason)
		s.mu.Lock()
		s.authFailed(err)
		s.wakeLocked()
		s.mu.Unlock()
		s.log.Error("cannot make an MSK IAM token", "principal", s.ident.principal, "error", err.Error())
		return
	}
	if err := s.kp.SetOAuthBearerToken(kafka.OAuthBearerToken{TokenValue: tok, Expiration: exp, Principal: s.ident.principal}); err != nil {
		s.log.Error("librdkafka refused the MSK IAM token", "principal", s.ident.principal, "error", err.Error())
		return
	}
	s.tokenExpiry = exp
	s.tokenSetAt = time.Now()
	s.log.Debug("MSK IAM token refreshed", "principal", s.ident.principal, "expires", exp)
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

func hintSuffix(msg string) string {
	if h := hint(msg); h != "" {
		return "; hint: " + h
	}
	return ""
}
