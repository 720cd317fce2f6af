package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sqs-msk-relay/relay/relay"
)

// drainTimeout bounds the wait for delivery reports after a purge: purged
// messages are reported within milliseconds; the rest of the deadline
// margin is for logging and answering.
const drainTimeout = 100 * time.Millisecond

// Producer is a relay.Producer on librdkafka. It keeps one librdkafka
// producer for the life of the sandbox and replaces it, before the next
// batch, after a fatal error.
type Producer struct {
	conf   kafka.ConfigMap
	grace  time.Duration
	log    *slog.Logger
	tokens TokenSource
	ident  identity
	// bootstrap is how many bootstrap brokers are configured, for logs.
	bootstrap int

	mu     sync.Mutex
	cur    *instance
	closed bool
}

var _ relay.Producer = (*Producer)(nil)

// TokenSource supplies SASL/OAUTHBEARER tokens: relay/mskiam's Provider.
type TokenSource interface {
	Token(ctx context.Context) (token string, expiry time.Time, err error)
	Principal() string
}

// Option adjusts a Producer.
type Option func(*Producer)

// WithTokenSource answers librdkafka's OAUTHBEARER token requests from ts.
// RELAY_AUTH=iam needs it.
func WithTokenSource(ts TokenSource) Option {
	return func(p *Producer) { p.tokens = ts }
}

// identity names who the producer authenticates as, for logs.
type identity struct{ mechanism, principal string }

// New creates the producer. It does not wait for a broker: librdkafka
// connects in the background, so the Lambda init phase is not spent on
// the network. An error means a property of RELAY_KAFKA_PROPERTIES is not
// allowed, or librdkafka rejected the configuration.
func New(c relay.Config, log *slog.Logger, opts ...Option) (*Producer, error) {
	if err := CheckProperties(c.KafkaProperties); err != nil {
		return nil, err
	}
	p := &Producer{conf: ConfigMap(c), grace: c.BrokersDownGrace, log: log, bootstrap: len(c.Brokers)}
	for _, o := range opts {
		o(p)
	}
	p.ident = identity{mechanism: mechanism(c)}
	switch c.Auth {
	case relay.AuthIAM:
		if p.tokens == nil {
			return nil, errors.New("RELAY_AUTH=iam needs a token source")
		}
		p.ident.principal = p.tokens.Principal()
	case relay.AuthSCRAM:
		p.ident.principal = c.SCRAMUsername
	case relay.AuthMTLS:
		p.ident.principal = "the certificate in " + c.TLSCertFile
	}
	s, err := p.newInstance()
	if err != nil {
		return nil, err
	}
	p.cur = s
	return p, nil
}

// Start implements relay.Producer. It first replaces a producer that
// suffered a fatal error, and refreshes an OAUTHBEARER token that is about
// to expire (a sandbox thawed after a long freeze).
func (p *Producer) Start(ctx context.Context, sizeHint int) relay.Batch {
	s, err := p.acquire()
	if err != nil {
		return failedBatch{&relay.ProduceError{Reason: relay.ReasonFatal, Err: err}}
	}
	if err := s.ensureToken(ctx); err != nil {
		p.release(s)
		return failedBatch{err}
	}
	return s.start(ctx, sizeHint, func() { p.release(s) })
}

// Ready waits until the producer holds its producer id and knows topic's
// partitions and max.message.bytes (topic "" skips that), at most until
// ctx is done. The function's init calls it, so that the first batch
// finds the connections made and the answers known, as a warm batch does.
// The error says what the brokers have not answered; the producer goes on
// trying in the background either way.
func (p *Producer) Ready(ctx context.Context, topic string) error {
	p.mu.Lock()
	s := p.cur
	p.mu.Unlock()
	if s == nil {
		return errors.New("producer is closed")
	}
	select {
	case <-s.ready:
	case <-ctx.Done():
		return fmt.Errorf("no producer id from the brokers: %w", s.notReady())
	}
	if topic == "" {
		return nil
	}
	return s.warm(ctx, topic)
}

// Close purges what is still queued and closes the librdkafka producer.
// It does not flush: a batch still running fails its unacknowledged records.
func (p *Producer) Close() {
	p.mu.Lock()
	s := p.cur
	p.cur, p.closed = nil, true
	p.mu.Unlock()
	if s != nil {
		p.retire(s)
	}
}

// acquire returns the current instance, first replacing one that suffered
// a fatal error.
func (p *Producer) acquire() (*instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("producer is closed")
	}
	if p.cur != nil {
		if ferr := p.cur.fatalErr(); ferr != nil {
			p.log.Warn("replacing the Kafka producer after a fatal error", "error", ferr.Error())
			if old := p.cur; retireLocked(old) {
				go old.close()
			}
			p.cur = nil
		}
	}
	if p.cur == nil {
		s, err := p.newInstance()
		if err != nil {
			return nil, err
		}
		p.cur = s
	}
	p.cur.refs++
	return p.cur, nil
}

func (p *Producer) release(s *instance) {
	p.mu.Lock()
	s.refs--
	closeNow := s.retired && s.refs == 0
	p.mu.Unlock()
	if closeNow {
		s.close()
	}
}

func (p *Producer) retire(s *instance) {
	p.mu.Lock()
	closeNow := retireLocked(s)
	p.mu.Unlock()
	if closeNow {
		s.close()
	}
}

// retireLocked marks s to be closed by its last user and reports whether
// it has none left, so the caller closes it now. p.mu is held.
func retireLocked(s *instance) bool {
	s.retired = true
	return s.refs == 0
}

func (p *Producer) newInstance() (*instance, error) {
	kp, err := kafka.NewProducer(&p.conf)
	if err != nil {
		return nil, fmt.Errorf("create Kafka producer: %w", err)
	}
	s := &instance{
		kp:        kp,
		grace:     p.grace,
		log:       p.log,
		tokens:    p.tokens,
		ident:     p.ident,
		batches:   map[*batch]struct{}{},
		done:      make(chan struct{}),
		ready:     make(chan struct{}),
		tokenMu:   make(chan struct{}, 1),
		bootstrap: p.bootstrap,
		batchSize: batchSizeOf(p.conf),
	}
	s.hold = func() (func(), bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if s.retired {
			return nil, false
		}
		s.refs++
		return func() { p.release(s) }, true
	}
	go s.serveEvents()
	go s.serveLogs()
	return s, nil
}

// Metadata asks the cluster for its brokers and, if topic is not empty,
// that topic (all topics otherwise), waiting at most until ctx's deadline.
// It connects and authenticates as produce would.
func (p *Producer) Metadata(ctx context.Context, topic string) (*kafka.Metadata, error) {
	s, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer p.release(s)
	if err := s.ensureToken(ctx); err != nil {
		return nil, err
	}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	var t *string
	if topic != "" {
		t = &topic
	}
	md, err := s.kp.GetMetadata(t, topic == "", int(timeout.Milliseconds()))
	if err != nil {
		if tr := s.currentTrouble(); tr != nil {
			return nil, fmt.Errorf("%w (%s)", tr.err, err)
		}
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		if last != "" {
			return nil, fmt.Errorf("%w (last error: %s%s)", err, last, hintSuffix(last))
		}
		return nil, err
	}
	return md, nil
}

// withAdmin runs fn with an admin client on the current producer's
// connections.
func (p *Producer) withAdmin(fn func(ac *kafka.AdminClient) error) error {
	s, err := p.acquire()
	if err != nil {
		return err
	}
	defer p.release(s)
	ac, err := kafka.NewAdminClientFromProducer(s.kp)
	if err != nil {
		return err
	}
	defer ac.Close()
	return fn(ac)
}

// TopicConfig is topic's configuration, name to value.
func (p *Producer) TopicConfig(ctx context.Context, topic string) (map[string]string, error) {
	s, err := p.acquire()
	if err != nil {
		return nil, err
	}
	defer p.release(s)
	return s.topicConfigs(ctx, topic)
}

// Hint returns advice for a librdkafka error message, or "".
func Hint(msg string) string { return hint(msg) }

// Controller is the id of the cluster's controller broker, -1 if unknown.
func (p *Producer) Controller(ctx context.Context) (int, error) {
	id := -1
	err := p.withAdmin(func(ac *kafka.AdminClient) error {
		res, err := ac.DescribeCluster(ctx)
		if err == nil && res.Controller != nil {
			id = res.Controller.ID
		}
		return err
	})
	return id, err
}

// batchSizeOf is conf's batch.size in bytes.
func batchSizeOf(conf kafka.ConfigMap) int {
	switch v := conf["batch.size"].(type) {
	case int:
		return v
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

// BatchSize is the producer's batch.size in bytes.
func (p *Producer) BatchSize() int { return batchSizeOf(p.conf) }
