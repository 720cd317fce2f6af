// Package doctor checks, step by step, what stands between the relay and
// its topic: DNS, TCP, TLS, credentials, authentication and metadata, the
// topic and its replicas, and optionally a test produce. Each step says
// pass or fail, how long it took, and for a known failure what to check.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
)

// Step is one check's result.
type Step struct {
	Name    string  `json:"step"`
	OK      bool    `json:"ok"`
	Skipped bool    `json:"skipped,omitempty"`
	Warning bool    `json:"warning,omitempty"` // passed, with a risk named in Hint
	TookMs  float64 `json:"tookMs"`
	Detail  string  `json:"detail,omitempty"`
	Hint    string  `json:"hint,omitempty"`
}

// Report is every step in order; OK when none failed.
type Report struct {
	OK    bool   `json:"ok"`
	Steps []Step `json:"steps"`
}

// Options adjust a run.
type Options struct {
	// Tokens signs MSK IAM tokens (RELAY_AUTH=iam).
	Tokens kafka.TokenSource
	// ProduceTopic, if set, gets one test message with acks=all.
	ProduceTopic string
	// StepTimeout bounds each network step; default 5 s.
	StepTimeout time.Duration
	// Resolver looks up broker names; default net.DefaultResolver.
	Resolver *net.Resolver
	// SQS, if set, checks that the SQS API answers, for the failure
	// policy's calls after a batch; it runs whatever the Kafka steps found.
	SQS func(ctx context.Context) (detail string, err error)
}

type run struct {
	cfg    relay.Config
	opts   Options
	report Report
	failed bool
}

// Run checks cfg's path to Kafka.
func Run(ctx context.Context, cfg relay.Config, opts Options) Report {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 5 * time.Second
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	r := &run{cfg: cfg, opts: opts, report: Report{OK: true}}
	for _, b := range cfg.Brokers {
		host, port, _ := net.SplitHostPort(b)
		r.step(ctx, "dns "+host, func(ctx context.Context) (string, string, error) { return checkDNS(ctx, opts.Resolver, host) })
		r.step(ctx, "tcp "+b, func(ctx context.Context) (string, string, error) { return checkTCP(ctx, b, cfg.Auth, port) })
		if cfg.Auth != relay.AuthNone {
			r.step(ctx, "tls "+b, func(ctx context.Context) (string, string, error) { return checkTLS(ctx, cfg, b) })
		}
	}
	if cfg.Auth == relay.AuthIAM {
		r.step(ctx, "iam token", func(ctx context.Context) (string, string, error) { return checkToken(ctx, cfg, opts.Tokens) })
	}
	r.kafkaSteps(ctx)
	if opts.SQS != nil {
		failed := r.failed
		r.failed = false
		r.step(ctx, "sqs api", func(ctx context.Context) (string, string, error) {
			detail, err := opts.SQS(ctx)
			if err != nil {
				return "", "the relay cannot back off or dead-letter failed records (they come back after the queue's visibility timeout): " +
					"a function in a VPC needs a NAT gateway or an sqs interface endpoint (the template's sqsVpcEndpoint param)", err
			}
			return detail, "", nil
		})
		r.failed = r.failed || failed
	}
	return r.report
}

// step runs check unless an earlier step failed.
func (r *run) step(ctx context.Context, name string, check func(ctx context.Context) (detail, hint string, err error)) {
	if r.failed {
		r.report.Steps = append(r.report.Steps, Step{Name: name, Skipped: true, Detail: "skipped: an earlier step failed"})
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.StepTimeout)
	defer cancel()
	start := time.Now()
	detail, hint, err := check(ctx)
	s := Step{Name: name, OK: err == nil, TookMs: float64(time.Since(start).Microseconds()) / 1000, Detail: detail, Hint: hint, Warning: err == nil && hint != ""}
	if err != nil {
		s.Detail = err.Error()
		r.failed, r.report.OK = true, false
	}
	r.report.Steps = append(r.report.Steps, s)
}

func checkDNS(ctx context.Context, res *net.Resolver, host string) (string, string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return "an IP address", "", nil
	}
	addrs, err := res.LookupHost(ctx, host)
	if err != nil {
		return "", "the broker's name does not resolve: check RELAY_BROKERS (copy the bootstrap string from the MSK console) and that the VPC has DNS resolution and DNS hostnames on", err
	}
	return strings.Join(addrs, ", "), "", nil
}

func checkTCP(ctx context.Context, addr, auth, port string) (string, string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		hint := "no TCP connection: the brokers' security group must admit the function's security group on port " + port + ", and the subnets must route to each other"
		if errors.Is(err, syscall.ECONNREFUSED) {
			hint = "nothing listens there: check the port for RELAY_AUTH=" + auth + " (MSK: 9098 IAM, 9096 SCRAM, 9094 TLS, 9092 plaintext; 91xx for public access)"
		}
		return "", hint, err
	}
	defer c.Close()
	return "connected from " + c.LocalAddr().String(), "", nil
}

func checkTLS(ctx context.Context, cfg relay.Config, addr string) (string, string, error) {
	host, _, _ := net.SplitHostPort(addr)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return "", "RELAY_TLS_CA_FILE cannot be read", err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return "", "RELAY_TLS_CA_FILE holds no PEM certificate", errors.New("no certificate in " + cfg.TLSCAFile)
		}
	}
	if cfg.Auth == relay.AuthMTLS {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return "", "RELAY_TLS_CERT_FILE and RELAY_TLS_KEY_FILE must be a PEM certificate and its key", errors.New("cannot load the client certificate")
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	d := tls.Dialer{Config: tc}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var unknown x509.UnknownAuthorityError
		var badHost x509.HostnameError
		var expired x509.CertificateInvalidError
		var notTLS tls.RecordHeaderError
		switch {
		case errors.As(err, &unknown):
			return "", "the broker's certificate is not signed by a trusted CA: set RELAY_TLS_CA_FILE to the CA that signed it (MSK's public certificates need none)", err
		case errors.As(err, &badHost):
			return "", "the certificate is for another name: use the broker's name from the MSK bootstrap string, not an IP or an alias", err
		case errors.As(err, &expired):
			return "", "the broker's certificate is expired or not yet valid", err
		case errors.As(err, &notTLS):
			return "", "the port does not speak TLS: 9092 is a plaintext port; use 9098 (IAM), 9096 (SCRAM) or 9094 (TLS)", err
		case errors.Is(err, context.DeadlineExceeded):
			return "", "the broker did not answer the TLS handshake: a plaintext port (9092)? use 9098 (IAM), 9096 (SCRAM) or 9094 (TLS)", err
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			return "", "the broker closed the connection during the TLS handshake: a client certificate required (mTLS on 9094) or the wrong port", err
		}
		return "", "", err
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	leaf := st.PeerCertificates[0]
	days := int(time.Until(leaf.NotAfter).Hours() / 24)
	detail := fmt.Sprintf("%s, certificate %s issued by %s, expires %s (in %d days)", tls.VersionName(st.Version), leaf.Subject.CommonName,
		leaf.Issuer.CommonName, leaf.NotAfter.Format(time.DateOnly), days)
	hint := ""
	if days < 30 {
		hint = "the broker's certificate expires within 30 days"
	}
	return detail, hint, nil
}

func checkToken(ctx context.Context, cfg relay.Config, tokens kafka.TokenSource) (string, string, error) {
	if tokens == nil {
		return "", "", errors.New("no token source")
	}
	_, exp, err := tokens.Token(ctx)
	if err != nil {
		return "", "no token could be signed: check the function's credentials (its execution role), RELAY_IAM_ROLE_ARN and the trust policy, and that STS is reachable (a NAT gateway or an sts VPC endpoint) when a role is assumed", err
	}
	return fmt.Sprintf("signed for region %s as %s, expires %s", cfg.AWSRegion, tokens.Principal(), exp.UTC().Format(time.RFC3339)), "", nil
}

// kafkaSteps authenticate, read metadata, check the topics, and produce.
func (r *run) kafkaSteps(ctx context.Context) {
	var p *kafka.Producer
	r.step(ctx, "authenticate and read metadata", func(ctx context.Context) (string, string, error) {
		var opts []kafka.Option
		if r.opts.Tokens != nil {
			opts = append(opts, kafka.WithTokenSource(r.opts.Tokens))
		}
		var err error
		if p, err = kafka.New(r.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...); err != nil {
			return "", "librdkafka refused the configuration", err
		}
		md, err := p.Metadata(ctx, "")
		if err != nil {
			hint := kafka.Hint(err.Error())
			if hint == "" && strings.Contains(err.Error(), "authentication failed") {
				hint = "the brokers refused the credentials: for IAM, the role needs kafka-cluster:Connect on the cluster and the right RELAY_AWS_REGION; for SCRAM, check the user and password"
			}
			return "", hint, err
		}
		ids := make([]string, 0, len(md.Brokers))
		for _, b := range md.Brokers {
			ids = append(ids, fmt.Sprintf("%d=%s:%d", b.ID, b.Host, b.Port))
		}
		controller := "unknown"
		if id, err := p.Controller(ctx); err == nil {
			controller = fmt.Sprint(id)
		}
		return fmt.Sprintf("%d brokers (%s), controller %s, %d topics visible", len(md.Brokers), strings.Join(ids, " "), controller, len(md.Topics)), "", nil
	})
	if p != nil {
		defer p.Close()
	}
	topics := append([]string{r.cfg.Topic}, r.cfg.AllowedTopics...)
	for _, t := range topics {
		r.step(ctx, "topic "+t, func(ctx context.Context) (string, string, error) { return checkTopic(ctx, p, t) })
	}
	if r.opts.ProduceTopic != "" {
		r.step(ctx, "produce to "+r.opts.ProduceTopic, func(ctx context.Context) (string, string, error) {
			b := p.Start(ctx, 1)
			if err := b.Add(&relay.Message{Topic: r.opts.ProduceTopic, Value: []byte("relay doctor test message"),
				Headers: []relay.Header{{Key: relay.HeaderPrefix + "doctor", Value: []byte("1")}}}); err != nil {
				return "", "", err
			}
			errs, cause := b.Wait()
			if cause != nil {
				return "", "", cause
			}
			if len(errs) != 1 || errs[0] != nil {
				err := errors.New("no acknowledgement")
				if len(errs) == 1 {
					err = errs[0]
				}
				hint := ""
				if strings.Contains(err.Error(), "authoriz") {
					hint = "the role lacks kafka-cluster:WriteData on the topic, or kafka-cluster:WriteDataIdempotently on the cluster"
				}
				return "", hint, err
			}
			return "acknowledged by all in-sync replicas (acks=all)", "", nil
		})
	}
}

func checkTopic(ctx context.Context, p *kafka.Producer, topic string) (string, string, error) {
	md, err := p.Metadata(ctx, topic)
	if err != nil {
		return "", "", err
	}
	tm, ok := md.Topics[topic]
	if !ok || tm.Error.Code() != 0 {
		err := fmt.Errorf("topic %s: %v", topic, tm.Error)
		return "", "the topic does not exist (MSK does not create topics: auto.create.topics.enable is off): create it, or fix RELAY_TOPIC / RELAY_ALLOWED_TOPICS; with IAM, kafka-cluster:DescribeTopic is needed to see it", err
	}
	conf, err := p.TopicConfig(ctx, topic)
	if err != nil {
		conf = map[string]string{}
	}
	minISR, err := strconv.Atoi(conf["min.insync.replicas"])
	if err != nil {
		minISR = 1 // Kafka's default
	}
	belowMin, underReplicated := 0, 0
	for _, pm := range tm.Partitions {
		if pm.Leader < 0 {
			return "", "a partition has no leader: the brokers are restarting, or the cluster is unhealthy", fmt.Errorf("partition %d has no leader", pm.ID)
		}
		switch {
		case len(pm.Isrs) < minISR:
			belowMin++
		case len(pm.Isrs) < len(pm.Replicas):
			underReplicated++
		}
	}
	detail := fmt.Sprintf("%d partitions, all with leaders, min.insync.replicas %d", len(tm.Partitions), minISR)
	if belowMin > 0 {
		return "", "acks=all produce fails with NOT_ENOUGH_REPLICAS while a partition has fewer in-sync replicas than min.insync.replicas",
			fmt.Errorf("%d partitions have fewer in-sync replicas than min.insync.replicas %d", belowMin, minISR)
	}
	var warnings []string
	if underReplicated > 0 {
		warnings = append(warnings, fmt.Sprintf("%d partitions are under-replicated (fewer in-sync replicas than replicas): one more broker lost and acks=all fails", underReplicated))
	}
	if conf["unclean.leader.election.enable"] == "true" {
		warnings = append(warnings, "unclean.leader.election.enable is true: a replica out of sync can become leader and acknowledged records can be lost (MSK standard brokers default to true; set it to false on the topic or the cluster)")
	}
	if n, err := strconv.Atoi(conf["max.message.bytes"]); err == nil && n < p.BatchSize() {
		warnings = append(warnings, fmt.Sprintf("max.message.bytes %d is below the producer's batch.size: the broker refuses a batch over it whole; set batch.size below it in RELAY_KAFKA_PROPERTIES", n))
	}
	return detail, strings.Join(warnings, "; "), nil
}

// Write prints the report as a table.
func (rep Report) Write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range rep.Steps {
		verdict := "PASS"
		switch {
		case s.Skipped:
			verdict = "SKIP"
		case !s.OK:
			verdict = "FAIL"
		case s.Warning:
			verdict = "WARN"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f ms\t%s\n", verdict, s.Name, s.TookMs, s.Detail)
		if s.Hint != "" {
			fmt.Fprintf(tw, "\t\t\thint: %s\n", s.Hint)
		}
	}
	tw.Flush()
	if rep.OK {
		fmt.Fprintln(w, "all checks passed")
	} else {
		fmt.Fprintln(w, "a check failed: see its hint")
	}
}
