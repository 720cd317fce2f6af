package integration

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/doctor"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/mskiam"
)

func doctorConfig(t *testing.T, env map[string]string) relay.Config {
	t.Helper()
	full := map[string]string{"RELAY_TOPIC": "events", "RELAY_BROKERS_DOWN_GRACE": "1s"}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := relay.ConfigFromEnv(func(k string) (string, bool) { v, ok := full[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// failedStep returns the first failed step, or nil.
func failedStep(rep doctor.Report) *doctor.Step {
	for i := range rep.Steps {
		if !rep.Steps[i].OK && !rep.Steps[i].Skipped {
			return &rep.Steps[i]
		}
	}
	return nil
}

func TestDoctor(t *testing.T) {
	pki := newPKI(t)
	plain := startCluster(t)
	iamC, _ := iamBroker(t, pki, 0)
	closed, err := broker.ClosedAddr()
	if err != nil {
		t.Fatal(err)
	}
	iamTokens := func(secret string) kafka.TokenSource {
		return mskiam.NewWithCredentials(testRegion, credentials.NewStaticCredentialsProvider(testAccessKey, secret, ""), testRole)
	}
	iam := func(extra map[string]string) map[string]string {
		e := iamEnv(iamC, pki)
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	for _, tc := range []struct {
		name       string
		env        map[string]string
		tokens     kafka.TokenSource
		produce    string
		failStep   string // "" for a healthy setup
		wantDetail string
		wantHint   string
	}{
		{name: "healthy plaintext", env: map[string]string{"RELAY_BROKERS": plain.Addrs(), "RELAY_AUTH": "none"}, produce: "events"},
		{name: "healthy IAM", env: iam(nil), tokens: iamTokens(testSecretKey), produce: "events"},
		{name: "name does not resolve", env: map[string]string{"RELAY_BROKERS": "b-1.no-such-cluster.invalid:9098", "RELAY_AUTH": "none"},
			failStep: "dns b-1.no-such-cluster.invalid", wantHint: "does not resolve"},
		{name: "nothing listens", env: map[string]string{"RELAY_BROKERS": closed, "RELAY_AUTH": "none"},
			failStep: "tcp " + closed, wantHint: "nothing listens there"},
		{name: "wrong CA", env: iam(map[string]string{"RELAY_TLS_CA_FILE": pki.OtherCAFile}), tokens: iamTokens(testSecretKey),
			failStep: "tls " + iamC.Addrs(), wantHint: "not signed by a trusted CA"},
		{name: "TLS on a plaintext port", env: map[string]string{"RELAY_BROKERS": plain.Addrs(), "RELAY_AUTH": "iam", "RELAY_AWS_REGION": testRegion, "RELAY_TLS_CA_FILE": pki.CAFile},
			tokens: iamTokens(testSecretKey), failStep: "tls " + plain.Addrs(), wantHint: "plaintext port"},
		{name: "plaintext on the TLS port", env: map[string]string{"RELAY_BROKERS": iamC.Addrs(), "RELAY_AUTH": "none"},
			failStep: "authenticate and read metadata", wantHint: "wrong port or security protocol"},
		{name: "IAM refused", env: iam(nil), tokens: iamTokens("wrong-" + testSecretKey),
			failStep: "authenticate and read metadata", wantDetail: "authentication failed", wantHint: "refused the credentials"},
		{name: "topic missing", env: map[string]string{"RELAY_BROKERS": plain.Addrs(), "RELAY_AUTH": "none", "RELAY_TOPIC": "orders"},
			failStep: "topic orders", wantHint: "MSK does not create topics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Names resolve nowhere: the test sends no DNS query off this machine.
			noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
				return nil, errors.New("no DNS server in tests")
			}}
			rep := doctor.Run(ctx, doctorConfig(t, tc.env), doctor.Options{Tokens: tc.tokens, ProduceTopic: tc.produce, Resolver: noDNS})
			var out bytes.Buffer
			rep.Write(&out)
			t.Logf("\n%s", out.String())
			f := failedStep(rep)
			if tc.failStep == "" {
				if f != nil || !rep.OK {
					t.Fatalf("a healthy setup failed at %+v", f)
				}
				if tc.produce != "" && !strings.Contains(out.String(), "acknowledged by all in-sync replicas") {
					t.Errorf("no test produce in the report")
				}
				return
			}
			if rep.OK || f == nil {
				t.Fatalf("report OK, want a failure at %s", tc.failStep)
			}
			if f.Name != tc.failStep || !strings.Contains(f.Hint, tc.wantHint) || !strings.Contains(f.Detail, tc.wantDetail) {
				t.Errorf("failed at %q (detail %q, hint %q), want %q with hint %q", f.Name, f.Detail, f.Hint, tc.failStep, tc.wantHint)
			}
			if strings.Contains(out.String(), testSecretKey) {
				t.Errorf("the report shows the secret key")
			}
		})
	}
}
