package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/mskiam"
)

// Test credentials: made up, for the local broker only.
const (
	testRegion    = "eu-west-1"
	testAccessKey = "AKIAIOSFODNN7EXAMPLE"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRole      = "arn:aws:iam::123456789012:role/relay-test"
	scramUser     = "alice"
	scramPassword = "alice-scram-password-7c1f"
)

// recordingTokens remembers every token it hands out, so a test can check
// none reached a log line.
type recordingTokens struct {
	*mskiam.Provider
	mu     sync.Mutex
	tokens []string
}

func (r *recordingTokens) Token(ctx context.Context) (string, time.Time, error) {
	tok, exp, err := r.Provider.Token(ctx)
	r.mu.Lock()
	r.tokens = append(r.tokens, tok)
	r.mu.Unlock()
	return tok, exp, err
}

func (r *recordingTokens) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.tokens...)
}

type authRelay struct {
	h      *relay.Handler
	logs   *logBuffer
	tokens *recordingTokens
}

// newAuthRelay builds the handler and producer in-process from env, with
// every log line captured.
func newAuthRelay(t *testing.T, env map[string]string, signWith string, lifetime time.Duration) *authRelay {
	t.Helper()
	full := map[string]string{"RELAY_TOPIC": "events", "RELAY_LOG_LEVEL": "debug", "RELAY_BROKERS_DOWN_GRACE": "1s"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := &authRelay{logs: logs}
	var opts []kafka.Option
	if cfg.Auth == relay.AuthIAM {
		p := mskiam.NewWithCredentials(cfg.AWSRegion, credentials.NewStaticCredentialsProvider(testAccessKey, signWith, ""), testRole)
		p.MaxLifetime = lifetime
		a.tokens = &recordingTokens{Provider: p}
		opts = append(opts, kafka.WithTokenSource(a.tokens))
	}
	p, err := kafka.New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		a.checkNoSecrets(t)
		if t.Failed() {
			t.Logf("relay logs:\n%s", logs.String())
		}
	})
	a.h = relay.NewHandler(cfg, p, log)
	return a
}

// checkNoSecrets fails the test if any secret or token reached the logs.
func (a *authRelay) checkNoSecrets(t *testing.T) {
	t.Helper()
	secrets := []string{testSecretKey, "wrong-" + testSecretKey, scramPassword, "not-" + scramPassword, "BEGIN PRIVATE KEY"}
	if a.tokens != nil {
		secrets = append(secrets, a.tokens.all()...)
	}
	logs := a.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("a secret or token reached the logs: %.12s…", s)
		}
	}
}

// relayBatch sends n records and returns how many failed and how long it took.
func (a *authRelay) relayBatch(t *testing.T, n int) (failed int, took time.Duration) {
	t.Helper()
	var ev events.SQSEvent
	for i := range n {
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprintf("m-%d", i), Body: "x",
			EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:events", Attributes: map[string]string{"SentTimestamp": "1700000000000"}})
	}
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{AwsRequestID: "auth"})
	start := time.Now()
	out, err := a.h.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return len(resp.BatchItemFailures), time.Since(start)
}

func newPKI(t *testing.T) *broker.PKI {
	t.Helper()
	pki, err := broker.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return pki
}

func startCluster(t *testing.T, opts ...kfake.Opt) *broker.Cluster {
	t.Helper()
	c, err := broker.Start(3, []string{"events"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func iamBroker(t *testing.T, pki *broker.PKI, skew time.Duration) (*broker.Cluster, *broker.IAM) {
	t.Helper()
	v := &broker.IAM{Region: testRegion, Keys: map[string]string{testAccessKey: testSecretKey}, Skew: skew}
	c := startCluster(t, append(v.Opts(), kfake.TLS(pki.ServerTLS(false)))...)
	v.Install(c.Cluster)
	return c, v
}

func iamEnv(c *broker.Cluster, pki *broker.PKI) map[string]string {
	return map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_AUTH": "iam", "RELAY_AWS_REGION": testRegion, "RELAY_TLS_CA_FILE": pki.CAFile}
}

func TestIAMTokenAccepted(t *testing.T) {
	pki := newPKI(t)
	c, v := iamBroker(t, pki, 0)
	a := newAuthRelay(t, iamEnv(c, pki), testSecretKey, 0)
	if failed, _ := a.relayBatch(t, 50); failed != 0 {
		t.Fatalf("%d failed; broker rejected: %v", failed, v.Rejected())
	}
	if c.Count("events") != 50 || v.Accepted() == 0 {
		t.Errorf("%d records, %d tokens accepted", c.Count("events"), v.Accepted())
	}
}

func TestAuthFailuresAreFastAndNamed(t *testing.T) {
	pki := newPKI(t)
	for _, tc := range []struct {
		name     string
		env      func(c *broker.Cluster) map[string]string
		secret   string
		skew     time.Duration
		mtls     bool
		wantLogs []string
	}{
		{name: "wrong secret key", secret: "wrong-" + testSecretKey,
			wantLogs: []string{`"reason":"auth_failed"`, "principal " + testRole, "token signature does not match"}},
		{name: "expired token", skew: time.Hour,
			wantLogs: []string{`"reason":"auth_failed"`, "token expired at"}},
		{name: "wrong region", env: func(c *broker.Cluster) map[string]string {
			e := iamEnv(c, pki)
			e["RELAY_AWS_REGION"] = "us-east-1"
			return e
		}, wantLogs: []string{`"reason":"auth_failed"`, "token is for kafka.us-east-1.amazonaws.com, this cluster is in region eu-west-1"}},
		{name: "wrong CA", env: func(c *broker.Cluster) map[string]string {
			e := iamEnv(c, pki)
			e["RELAY_TLS_CA_FILE"] = pki.OtherCAFile
			return e
		}, wantLogs: []string{`"reason":"tls_failed"`, "certificate verify failed", "hint: the broker's certificate is not signed by a trusted CA"}},
		{name: "plaintext client on the TLS port", env: func(c *broker.Cluster) map[string]string {
			return map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_AUTH": "none"}
		}, wantLogs: []string{`"reason":"brokers_down"`, "hint: the broker closed the connection before answering: wrong port or security protocol"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := iamBroker(t, pki, tc.skew)
			env := iamEnv(c, pki)
			if tc.env != nil {
				env = tc.env(c)
			}
			secret := testSecretKey
			if tc.secret != "" {
				secret = tc.secret
			}
			a := newAuthRelay(t, env, secret, 0)
			failed, took := a.relayBatch(t, 20)
			if failed != 20 {
				t.Fatalf("%d of 20 failed, want all", failed)
			}
			if took > 10*time.Second {
				t.Errorf("took %v: the cause was found at the deadline, not within seconds", took)
			}
			logs := a.logs.String()
			if !strings.Contains(logs, `"msg":"batch failed: `) {
				t.Errorf("no batch-level log line")
			}
			for _, want := range tc.wantLogs {
				if !strings.Contains(logs, want) {
					t.Errorf("logs do not say %q", want)
				}
			}
			if c.Count("events") != 0 {
				t.Errorf("%d records landed through a failed authentication", c.Count("events"))
			}
		})
	}
}

func TestIAMTokenRefreshes(t *testing.T) {
	pki := newPKI(t)
	c, v := iamBroker(t, pki, 0)
	// Tokens said to live 2 s: librdkafka asks for a new one at 80%.
	a := newAuthRelay(t, iamEnv(c, pki), testSecretKey, 2*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	batches := 0
	for a.tokens.Made() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens made in 30 s", a.tokens.Made())
		}
		if failed, _ := a.relayBatch(t, 10); failed != 0 {
			t.Fatalf("batch %d: %d failed across a token refresh; rejected: %v", batches, failed, v.Rejected())
		}
		batches++
	}
	if got := c.Count("events"); got != int64(batches*10) {
		t.Errorf("%d records, want %d", got, batches*10)
	}
	if len(v.Rejected()) != 0 {
		t.Errorf("broker rejected tokens: %v", v.Rejected())
	}
}

func TestSCRAM(t *testing.T) {
	pki := newPKI(t)
	c := startCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", scramUser, scramPassword), kfake.TLS(pki.ServerTLS(false)))
	env := func(pw string) map[string]string {
		return map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_AUTH": "scram-sha-512", "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_SCRAM_USERNAME": scramUser, "RELAY_SCRAM_PASSWORD": pw}
	}
	t.Run("good password", func(t *testing.T) {
		a := newAuthRelay(t, env(scramPassword), "", 0)
		if failed, _ := a.relayBatch(t, 20); failed != 0 {
			t.Fatalf("%d failed", failed)
		}
	})
	t.Run("bad password", func(t *testing.T) {
		a := newAuthRelay(t, env("not-"+scramPassword), "", 0)
		failed, took := a.relayBatch(t, 20)
		if failed != 20 || took > 10*time.Second {
			t.Fatalf("%d failed in %v, want all within seconds", failed, took)
		}
		for _, want := range []string{`"reason":"auth_failed"`, "mechanism SCRAM-SHA-512, principal alice"} {
			if !strings.Contains(a.logs.String(), want) {
				t.Errorf("logs do not say %q", want)
			}
		}
	})
	if c.Count("events") != 20 {
		t.Errorf("%d records, want the good run's 20", c.Count("events"))
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newPKI(t)
	c := startCluster(t, kfake.TLS(pki.ServerTLS(true)))
	env := func(cert, key string) map[string]string {
		return map[string]string{"RELAY_BROKERS": c.Addrs(), "RELAY_AUTH": "mtls", "RELAY_TLS_CA_FILE": pki.CAFile,
			"RELAY_TLS_CERT_FILE": cert, "RELAY_TLS_KEY_FILE": key}
	}
	t.Run("known certificate", func(t *testing.T) {
		a := newAuthRelay(t, env(pki.ClientCertFile, pki.ClientKeyFile), "", 0)
		if failed, _ := a.relayBatch(t, 20); failed != 0 {
			t.Fatalf("%d failed", failed)
		}
	})
	t.Run("unknown certificate", func(t *testing.T) {
		a := newAuthRelay(t, env(pki.UnknownCertFile, pki.UnknownKeyFile), "", 0)
		failed, took := a.relayBatch(t, 20)
		if failed != 20 || took > 10*time.Second {
			t.Fatalf("%d failed in %v, want all within seconds", failed, took)
		}
		if !strings.Contains(a.logs.String(), `"msg":"batch failed: `) {
			t.Errorf("no batch-level log line")
		}
	})
	if c.Count("events") != 20 {
		t.Errorf("%d records, want the good run's 20", c.Count("events"))
	}
}

// TestBinaryRefreshesTokenAfterFreeze freezes the real function (SIGSTOP,
// as Lambda freezes a sandbox between invocations) for longer than its
// token's lifetime, then thaws it: the next batch must get a fresh token
// and succeed in the same process, without a cold start.
func TestBinaryRefreshesTokenAfterFreeze(t *testing.T) {
	pki := newPKI(t)
	c, v := iamBroker(t, pki, 0)
	api, logs, _ := startFunction(t,
		"RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=iam", "RELAY_TLS_CA_FILE="+pki.CAFile,
		"RELAY_IAM_TOKEN_LIFETIME=2s", "RELAY_LOG_LEVEL=debug", "AWS_REGION="+testRegion,
		"AWS_ACCESS_KEY_ID="+testAccessKey, "AWS_SECRET_ACCESS_KEY="+testSecretKey)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	invoke := func() {
		t.Helper()
		res, err := api.Invoke(ctx, sqsEvent("a", "b", "c"), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if res.Error || string(res.Payload) != `{"batchItemFailures":[]}` {
			t.Fatalf("answer %s (error %v); broker rejected %v", res.Payload, res.Error, v.Rejected())
		}
	}
	invoke()
	proc := functionProcess(t)
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	refreshesBefore := strings.Count(logs.String(), "MSK IAM token refreshed")
	// The freeze itself: nothing runs in the function meanwhile, so there
	// is no condition to poll.
	time.Sleep(3 * time.Second)
	if err := proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	invoke()
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), `"requestId":"req-2"`) })
	out := logs.String()
	if strings.Count(out, "MSK IAM token refreshed") <= refreshesBefore {
		t.Errorf("no token refreshed after the thaw")
	}
	if n := strings.Count(out, `"msg":"relay ready"`); n != 1 {
		t.Errorf("%d cold starts, want 1", n)
	}
	if c.Count("events") != 6 || len(v.Rejected()) != 0 {
		t.Errorf("%d records (want 6); rejected tokens %v", c.Count("events"), v.Rejected())
	}
	for _, secret := range []string{testSecretKey, "X-Amz-Signature"} {
		if strings.Contains(out, secret) {
			t.Errorf("function output contains %q", secret)
		}
	}
}
