package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// instance is one librdkafka producer and the goroutines that serve its
// events and logs for its whole life: an Events channel nobody reads stalls
// delivery reports and token refreshes alike.
type instance struct {
	kp     *kafka.Producer
	grace  time.Duration
	log    *slog.Logger
	tokens TokenSource // nil unless OAUTHBEARER
	ident  identity
	done   chan struct{} // closed when serveEvents returns
	// ready is closed when librdkafka reports the producer id assigned.
	ready chan struct{}

	// tokenMu allows one refresh at a time. It is a channel, not a mutex,
	// so that a batch waiting for a refresh stops at its deadline.
	tokenMu     chan struct{}
	tokenExpiry time.Time // of the token librdkafka holds; guarded by tokenMu
	tokenSetAt  time.Time // guarded by tokenMu

	// refs and retired are guarded by the Producer's mutex.
	refs    int
	retired bool

	// fatal and trouble are read on every Add and delivery report:
	// atomics, not the mutex.
	fatal   atomic.Pointer[kafka.Error]
	trouble atomic.Pointer[trouble] // a batch-level cause seen since the last acknowledgement

	mu      sync.Mutex
	batches map[*batch]struct{}
	lastErr string // the last client error, to say why every broker is down
	// down is set from librdkafka's first "all brokers down" until a
	// message is acknowledged: the state is logged when it changes, not
	// at every failed reconnect.
	down      bool
	downSince time.Time
	bootstrap int      // bootstrap brokers configured
	minISRs   sync.Map // topic → its min.insync.replicas, asked once
	limits    sync.Map // topic → its topicLimits, once known
	lookups   sync.Map // topic → a lookup of it is running
	batchSize int      // the producer's batch.size, bytes
	// hold keeps the instance open for work of its own (a background
	// lookup), as a batch does; false once it is being closed.
	hold func() (release func(), ok bool)
	// spare is the last finished batch's buffers, for the next (Recycle).
	spare atomic.Pointer[batchSlices]
}

// trouble is a batch-level cause: every broker down, or authentication
// refused. An acknowledgement clears it.
type trouble struct {
	reason string
	err    error
	// waits: a batch keeps waiting for acknowledgements through it until
	// its deadline, instead of failing after the grace (throttling).
	waits bool
	// unexplained: every broker is down, and no client error has said why
	// yet.
	unexplained bool
}

// brokersDown is the trouble of every broker down, lastErr (if any) the
// last client error, with a hint for it.
func brokersDown(lastErr string) *trouble {
	// librdkafka's own text counts brokers oddly ("0/1 brokers are
	// down"): keep its code, say what is meant.
	down := kafka.NewError(kafka.ErrAllBrokersDown, "every broker is unreachable", false)
	if lastErr == "" {
		return &trouble{reason: relay.ReasonBrokersDown, err: fmt.Errorf("no broker reachable: %w", down), unexplained: true}
	}
	return &trouble{reason: relay.ReasonBrokersDown, err: fmt.Errorf("no broker reachable (last error: %s%s): %w", lastErr, hintSuffix(lastErr), down)}
}

func (s *instance) fatalErr() error {
	if e := s.fatal.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *instance) currentTrouble() *trouble { return s.trouble.Load() }

// acknowledged clears any trouble: a broker took a message.
func (s *instance) acknowledged() {
	if s.trouble.Load() != nil {
		s.trouble.Store(nil)
		s.mu.Lock()
		if s.down {
			s.down = false
			s.logLocked().Info("Kafka brokers reachable again", "downForMs", time.Since(s.downSince).Milliseconds())
		}
		s.mu.Unlock()
	}
}

// logLocked is the log of a running batch, which carries its request id,
// or the instance's own between batches. s.mu is held.
func (s *instance) logLocked() *slog.Logger {
	for b := range s.batches {
		if b.log != nil {
			return b.log
		}
	}
	return s.log
}

func (s *instance) register(b *batch) {
	s.mu.Lock()
	s.batches[b] = struct{}{}
	s.mu.Unlock()
}

func (s *instance) unregister(b *batch) {
	s.mu.Lock()
	delete(s.batches, b)
	s.mu.Unlock()
}

// wakeLocked tells every running batch to look at the instance's state.
func (s *instance) wakeLocked() {
	for b := range s.batches {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (s *instance) serveEvents() {
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

func (s *instance) onError(e kafka.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e.IsFatal():
		s.fatal.Store(&e)
		s.log.Error("Kafka producer fatal error: failing the running batches; a new producer serves the next batch", "code", e.Code().String(), "error", e.Error())
		s.wakeLocked()
	case throttled(e.Error()):
		// Not an authentication failure: the broker refuses connections
		// over its rate. librdkafka reconnects with backoff; the batch
		// waits until its deadline and what fails there is backed off.
		if t := s.trouble.Load(); t == nil || t.reason != relay.ReasonThrottled {
			s.logLocked().Warn("Kafka brokers refuse new connections over their rate (\"Too many connects\"); reconnecting",
				"hint", throttleHint, "error", e.Error())
		}
		s.trouble.Store(&trouble{reason: relay.ReasonThrottled, waits: true,
			err: fmt.Errorf("the brokers refused new connections over their rate: %w; hint: %s", e, throttleHint)})
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
			s.trouble.Store(brokersDown(s.lastErr))
		}
		if !s.down {
			// Once per outage, not at every failed reconnect.
			s.down, s.downSince = true, time.Now()
			attrs := []any{"bootstrapBrokers", s.bootstrap}
			if s.lastErr != "" {
				attrs = append(attrs, "lastError", s.lastErr+hintSuffix(s.lastErr))
			}
			s.logLocked().Warn("every Kafka broker is unreachable", attrs...)
		}
		s.wakeLocked()
	default:
		s.lastErr = e.Error()
		level := slog.LevelWarn
		if s.down {
			level = slog.LevelDebug // the outage is logged once, above
		}
		// The error that says why may come after librdkafka's "all brokers
		// down": a batch's flush (sendNow) polls events beside the
		// producer's poller, so two can be handed over out of order.
		if t := s.trouble.Load(); t != nil && t.unexplained {
			s.trouble.Store(brokersDown(s.lastErr))
			level = slog.LevelWarn
		}
		attrs := []any{"code", e.Code().String(), "error", e.Error()}
		if h := hint(e.Error()); h != "" && level == slog.LevelWarn {
			attrs = append(attrs, "hint", h)
		}
		s.logLocked().Log(context.Background(), level, "Kafka client error", attrs...)
	}
}

// throttled reports whether a client error is MSK's answer to new
// connections over a broker's quota.
func throttled(text string) bool {
	return strings.Contains(strings.ToLower(text), "too many connects")
}

// throttleHint says where to look when MSK throttles connections.
const throttleHint = "MSK caps new IAM connections per broker (about 100/s on M5 and M7g brokers, 4/s on T3): " +
	"cap the event source mapping's maximumConcurrency (each sandbox opens a connection per broker), " +
	"or use larger brokers"

// authFailed records a refused or impossible authentication as the
// batch-level cause, naming the mechanism and principal, never a secret.
func (s *instance) authFailed(err error) {
	s.trouble.Store(&trouble{reason: relay.ReasonAuthFailed,
		err: fmt.Errorf("authentication failed (mechanism %s, principal %s): %w", s.ident.mechanism, s.ident.principal, err)})
}

func (s *instance) serveLogs() {
	assigned := false
	for le := range s.kp.Logs() {
		if !assigned && pidAssigned(le) {
			assigned = true
			close(s.ready)
		}
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

// pidAssigned reports whether le is librdkafka's line for the idempotent
// producer's state reaching Assigned: a producer id, so a broker is up.
func pidAssigned(le kafka.LogEvent) bool {
	return le.Tag == "IDEMPSTATE" && strings.HasSuffix(le.Message, "-> Assigned")
}

// notReady says why the producer has no producer id yet: the batch-level
// trouble seen (brokers down, authentication refused), or the last
// client error, or that the brokers have not answered.
func (s *instance) notReady() error {
	if t := s.currentTrouble(); t != nil {
		return t.err
	}
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	if last != "" {
		return fmt.Errorf("the last client error: %s", last)
	}
	return errors.New("no broker has answered yet")
}

// tokenRefreshAhead is how long before its expiry a token is replaced
// before a batch (or a tenth of its lifetime, if shorter): after a sandbox
// freeze librdkafka's own refresh timer may not have run yet.
const tokenRefreshAhead = time.Minute

// ensureToken refreshes the OAUTHBEARER token before a batch if the one
// librdkafka holds is expired or about to be. It waits at most until ctx's
// deadline (the batch's produce deadline), for a refresh already running
// too, and then says why no token came.
func (s *instance) ensureToken(ctx context.Context) error {
	if s.tokens == nil {
		return nil
	}
	if !s.lockToken(ctx) {
		return s.noToken(ctx, errors.New("a token refresh started earlier is still signing"))
	}
	ahead := min(tokenRefreshAhead, s.tokenExpiry.Sub(s.tokenSetAt)/10)
	stale := time.Until(s.tokenExpiry) < ahead
	s.unlockToken()
	if !stale {
		return nil
	}
	if err := s.refreshToken(ctx); err != nil {
		return s.noToken(ctx, err)
	}
	return nil
}

// noToken is the batch-level cause when no token could be had for a batch.
func (s *instance) noToken(ctx context.Context, err error) error {
	why := "cannot make an MSK IAM token"
	if ctx.Err() != nil {
		why = "no MSK IAM token by the produce deadline"
	}
	return &relay.ProduceError{Reason: relay.ReasonAuthFailed, Err: fmt.Errorf("%s (principal %s): %w; hint: %s", why, s.ident.principal, err, tokenHint)}
}

// tokenHint says where a token that does not come usually hangs.
const tokenHint = "signing waits on the AWS credentials: with RELAY_IAM_ROLE_ARN they come from STS, which a function in a VPC reaches only through a NAT gateway or an sts interface endpoint"

func (s *instance) lockToken(ctx context.Context) bool {
	select {
	case s.tokenMu <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *instance) unlockToken() { <-s.tokenMu }

// refreshTimeout bounds a refresh librdkafka asked for; it retries 10 s
// after a failure.
const refreshTimeout = 10 * time.Second

// refreshToken signs a new token and hands it to librdkafka, or tells
// librdkafka why it cannot. It gives up at ctx's deadline or after
// refreshTimeout, whichever comes first.
func (s *instance) refreshToken(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	if !s.lockToken(ctx) {
		return fmt.Errorf("waiting for a token refresh started earlier: %w", ctx.Err())
	}
	defer s.unlockToken()
	if time.Since(s.tokenSetAt) < s.tokenExpiry.Sub(s.tokenSetAt)/10 {
		return nil // a concurrent refresh just did it
	}
	tok, exp, err := s.tokens.Token(ctx)
	if err != nil {
		reason := fmt.Sprintf("cannot make an MSK IAM token: %v", err)
		_ = s.kp.SetOAuthBearerTokenFailure(reason)
		s.mu.Lock()
		s.authFailed(fmt.Errorf("%w; hint: %s", err, tokenHint))
		s.wakeLocked()
		s.mu.Unlock()
		s.log.Error("cannot make an MSK IAM token", "principal", s.ident.principal, "error", err.Error())
		return err
	}
	if err := s.kp.SetOAuthBearerToken(kafka.OAuthBearerToken{TokenValue: tok, Expiration: exp, Principal: s.ident.principal}); err != nil {
		s.log.Error("librdkafka refused the MSK IAM token", "principal", s.ident.principal, "error", err.Error())
		return fmt.Errorf("librdkafka refused the token: %w", err)
	}
	s.tokenExpiry = exp
	s.tokenSetAt = time.Now()
	s.log.Debug("MSK IAM token refreshed", "principal", s.ident.principal, "expires", exp)
	return nil
}

// close purges whatever is left, so no report is waited for, and destroys
// the librdkafka producer.
func (s *instance) close() {
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

// diagnoseTimeout bounds the cluster lookups made when a batch reaches its
// deadline with messages unacknowledged; it comes out of the deadline
// margin.
const diagnoseTimeout = 300 * time.Millisecond

// replicaShortfall says whether a partition of topics has fewer in-sync
// replicas than its min.insync.replicas, so that acks=all cannot be had
// (brokers down or lagging): librdkafka retries the NOT_ENOUGH_REPLICAS
// answers without a word until the deadline. nil when none has, or when
// the cluster cannot say within timeout.
func (s *instance) replicaShortfall(topics []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, topic := range topics {
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		md, err := s.kp.GetMetadata(&topic, false, int(left.Milliseconds()))
		if err != nil {
			return nil
		}
		tm, ok := md.Topics[topic]
		if !ok {
			continue
		}
		minISR, ok := s.minISR(topic, time.Until(deadline))
		if !ok {
			continue
		}
		for _, p := range tm.Partitions {
			if len(p.Isrs) < minISR {
				return fmt.Errorf("NOT_ENOUGH_REPLICAS: partition %s/%d has %d in-sync replicas %v, fewer than its min.insync.replicas %d, so acks=all cannot be had until a replica catches up (brokers down or lagging)",
					topic, p.ID, len(p.Isrs), p.Isrs, minISR)
			}
		}
	}
	return nil
}

// minISR is topic's min.insync.replicas, asked of the cluster once per
// instance.
func (s *instance) minISR(topic string, timeout time.Duration) (int, bool) {
	if v, ok := s.minISRs.Load(topic); ok {
		return v.(int), true
	}
	if timeout <= 0 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, ok := s.topicConfig(ctx, topic, "min.insync.replicas")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false
	}
	s.minISRs.Store(topic, n)
	return n, true
}

// topicLookupTimeout bounds the lookup of a topic's limits.
const topicLookupTimeout = 5 * time.Second

// topicLimits is what the relay checks a topic's messages against.
type topicLimits struct {
	// maxBytes is its max.message.bytes; 0 if unknown. The broker refuses
	// a record batch over it whole, with every message librdkafka batched
	// beside the large one: a message that alone would exceed it is failed
	// before it is produced, so that it fails alone.
	maxBytes int
	// retention is its retention.ms; 0 if unknown or unlimited. A message
	// stamped before now - retention is acknowledged, then deleted with its
	// log segment once nothing newer shares it: the relay warns.
	retention time.Duration
}

// flushMs is how long sendNow's flush lasts, in milliseconds.
// confluent-kafka-go's Flush(2) holds rd_kafka_flush for 1 ms (it truncates
// what remains to whole milliseconds, so Flush(1) does nothing): time
// enough for the broker threads to wake and send what they hold. A broker
// thread that runs later than that finds the linger over anyway. Longer
// would reach into the next batch, whose first messages would then go
// alone. A variable only so that a test can hold it longer than a loaded
// machine's scheduling delay.
var flushMs = 2

// flushOverrun is how long the instance stays open after
// confluent-kafka-go's Flush returned, so that librdkafka is not destroyed
// under an rd_kafka_flush still running: Flush runs it on a goroutine of
// its own (for at most 1 ms more) and does not wait for it. A second is
// far beyond that, even at 128 MB's CPU share, where the cgroup's quota
// may hold every thread for up to 93 ms of each 100; closing is all it
// delays.
const flushOverrun = time.Second

// sendNow has librdkafka send the messages it holds without waiting out
// linger.ms: a batch calls it once its last message is handed over, when
// nothing more will join them. On the RF-3 cluster it took relay ÷ raw
// from 0.99 to 1.07-1.20 at 10 records (docs/performance.md). It changes when
// messages are sent, not what is sent or acknowledged, and it does not
// wait: the flush runs on a goroutine for flushMs. Each batch starts its
// own, even while the last one's runs, which may end before this batch's
// messages are sent.
func (s *instance) sendNow() {
	release, ok := s.hold()
	if !ok {
		return
	}
	ms := flushMs
	go func() {
		s.kp.Flush(ms)
		time.AfterFunc(flushOverrun, release)
	}()
}

// topicLimitsOf is topic's limits, zero while they are not known. It never
// waits: the first call starts a lookup in the background (one at a time
// per topic, again on a later call if it failed), so a batch does not
// spend its deadline on it, and batches after it use the answer.
func (s *instance) topicLimitsOf(topic string) topicLimits {
	if v, ok := s.limits.Load(topic); ok {
		return v.(topicLimits)
	}
	if _, busy := s.lookups.LoadOrStore(topic, true); busy {
		return topicLimits{}
	}
	release, ok := s.hold()
	if !ok {
		s.lookups.Delete(topic)
		return topicLimits{}
	}
	go func() {
		defer release()
		defer s.lookups.Delete(topic)
		ctx, cancel := context.WithTimeout(context.Background(), topicLookupTimeout)
		defer cancel()
		s.lookupLimits(ctx, topic)
	}()
	return topicLimits{}
}

// lookupLimits asks the cluster for topic's limits and keeps them. Not
// knowing them (no permission to describe the topic, a timeout) is not an
// error: the broker still refuses an oversized batch.
func (s *instance) lookupLimits(ctx context.Context, topic string) {
	conf, err := s.topicConfigs(ctx, topic)
	if err != nil {
		return
	}
	var l topicLimits
	if n, err := strconv.Atoi(conf["max.message.bytes"]); err == nil {
		l.maxBytes = n
	}
	if ms, err := strconv.ParseInt(conf["retention.ms"], 10, 64); err == nil && ms > 0 {
		l.retention = time.Duration(ms) * time.Millisecond
	}
	s.limits.Store(topic, l)
	// The same answer spares the deadline's diagnosis (minISR) a request.
	if n, err := strconv.Atoi(conf["min.insync.replicas"]); err == nil {
		s.minISRs.Store(topic, n)
	}
	if l.maxBytes > 0 && l.maxBytes < s.batchSize {
		s.log.Warn("topic "+topic+"'s max.message.bytes is below the producer's batch.size: the broker refuses a whole batch over it, failing every message in it; set batch.size below it in RELAY_KAFKA_PROPERTIES",
			"topic", topic, "maxMessageBytes", l.maxBytes, "batchSize", s.batchSize)
	}
}

// warm learns what the first batch to topic would otherwise ask the
// cluster for: its partitions and leaders, and its limits.
func (s *instance) warm(ctx context.Context, topic string) error {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	md, err := s.kp.GetMetadata(&topic, false, max(1, int(timeout.Milliseconds())))
	if err != nil {
		return fmt.Errorf("topic %s's metadata: %w", topic, err)
	}
	if t, ok := md.Topics[topic]; ok && t.Error.Code() != kafka.ErrNoError {
		return fmt.Errorf("topic %s: %w", topic, t.Error)
	}
	if _, known := s.limits.Load(topic); !known {
		if _, busy := s.lookups.LoadOrStore(topic, true); !busy {
			s.lookupLimits(ctx, topic)
			s.lookups.Delete(topic)
		}
	}
	return nil
}

// topicConfig is one of topic's configuration values.
func (s *instance) topicConfig(ctx context.Context, topic, name string) (string, bool) {
	conf, err := s.topicConfigs(ctx, topic)
	v, ok := conf[name]
	return v, ok && err == nil
}

// topicConfigs is topic's whole configuration, name to value.
func (s *instance) topicConfigs(ctx context.Context, topic string) (map[string]string, error) {
	ac, err := kafka.NewAdminClientFromProducer(s.kp)
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	res, err := ac.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range res {
		if r.Error.Code() != kafka.ErrNoError {
			return nil, r.Error
		}
		for k, e := range r.Config {
			out[k] = e.Value
		}
	}
	return out, nil
}
