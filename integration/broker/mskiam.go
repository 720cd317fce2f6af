package broker

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// IAM checks MSK IAM tokens the way MSK's authenticator does, in front of
// kfake, which knows only PLAIN and SCRAM: the SASL handshake for
// OAUTHBEARER is rewritten to PLAIN, and a token that passes is swapped for
// an internal PLAIN user; one that fails gets SASL_AUTHENTICATION_FAILED.
type IAM struct {
	Region string
	Keys   map[string]string // access key id → secret access key
	Skew   time.Duration     // added to the broker's clock
	// MaxPerSecond, if set, is how many authentications the cluster
	// accepts in any second; more are refused as MSK refuses new IAM
	// connections over a broker's quota: "Too many connects".
	MaxPerSecond int

	mu        sync.Mutex
	accepted  int
	rejected  []string
	recent    []time.Time // authentications within the last second
	throttled int
}

const iamUser, iamPass = "msk-iam-internal", "kfake-internal-password"

// ReaderOpts let a franz-go reader into the cluster as the internal PLAIN
// user, over TLS verified with ca.
func (v *IAM) ReaderOpts(ca *x509.CertPool) []kgo.Opt {
	return []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: ca, MinVersion: tls.VersionTLS12}),
		kgo.SASL(plain.Auth{User: iamUser, Pass: iamPass}.AsMechanism()),
	}
}

// Opts are the cluster options IAM needs.
func (v *IAM) Opts() []kfake.Opt {
	return []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("PLAIN", iamUser, iamPass)}
}

// Install intercepts the SASL requests of c.
func (v *IAM) Install(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.SASLHandshake), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if r := req.(*kmsg.SASLHandshakeRequest); r.Mechanism == "OAUTHBEARER" {
			r.Mechanism = "PLAIN"
		}
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.SASLAuthenticateRequest)
		tok, ok := bearerToken(r.SASLAuthBytes)
		if !ok {
			return nil, nil, false
		}
		if v.overRate() {
			c.KeepControl()
			resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Too many connects"
			resp.ErrorMessage = &msg
			return resp, nil, true
		}
		if err := v.Verify(tok); err != nil {
			v.mu.Lock()
			v.rejected = append(v.rejected, err.Error())
			v.mu.Unlock()
			c.KeepControl()
			resp := r.ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := "Access denied: " + err.Error()
			resp.ErrorMessage = &msg
			return resp, nil, true
		}
		v.mu.Lock()
		v.accepted++
		v.mu.Unlock()
		r.SASLAuthBytes = []byte("\x00" + iamUser + "\x00" + iamPass)
		return nil, nil, false
	})
}

// overRate notes an authentication and reports whether it is over
// MaxPerSecond.
func (v *IAM) overRate() bool {
	if v.MaxPerSecond <= 0 {
		return false
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	now := time.Now()
	keep := v.recent[:0]
	for _, at := range v.recent {
		if now.Sub(at) < time.Second {
			keep = append(keep, at)
		}
	}
	v.recent = keep
	if len(v.recent) >= v.MaxPerSecond {
		v.throttled++
		return true
	}
	v.recent = append(v.recent, now)
	return false
}

// Throttled counts the authentications refused as over the rate.
func (v *IAM) Throttled() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.throttled
}

// SetKeys replaces the known keys: a revoked key makes authentication
// start failing mid-session.
func (v *IAM) SetKeys(keys map[string]string) {
	v.mu.Lock()
	v.Keys = keys
	v.mu.Unlock()
}

// Accepted counts the tokens accepted.
func (v *IAM) Accepted() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.accepted
}

// Rejected lists why tokens were refused.
func (v *IAM) Rejected() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.rejected...)
}

// bearerToken reads an OAUTHBEARER client-first message (RFC 7628):
// "n,,\x01auth=Bearer <token>\x01...\x01".
func bearerToken(b []byte) (string, bool) {
	s := string(b)
	if !strings.HasPrefix(s, "n,") {
		return "", false
	}
	for _, kv := range strings.Split(s, "\x01") {
		if tok, ok := strings.CutPrefix(kv, "auth=Bearer "); ok {
			return tok, true
		}
	}
	return "", false
}

// Verify checks a token: a base64url presigned GET of
// https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect, not
// expired on the broker's clock, signed with a known key for this region.
// Errors never carry a secret.
func (v *IAM) Verify(token string) error {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return errors.New("token is not base64url")
	}
	u, err := url.Parse(string(raw))
	if err != nil || u.Scheme != "https" {
		return errors.New("token is not a presigned https URL")
	}
	if want := "kafka." + v.Region + ".amazonaws.com"; u.Host != want {
		return fmt.Errorf("token is for %s, this cluster is in region %s", u.Host, v.Region)
	}
	q := u.Query()
	if q.Get("Action") != "kafka-cluster:Connect" {
		return fmt.Errorf("token action %q is not kafka-cluster:Connect", q.Get("Action"))
	}
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return errors.New("token is not signed with AWS4-HMAC-SHA256")
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[3] != "kafka-cluster" || cred[4] != "aws4_request" {
		return errors.New("token credential scope is not .../kafka-cluster/aws4_request")
	}
	if cred[2] != v.Region {
		return fmt.Errorf("token is signed for region %s, this cluster is in region %s", cred[2], v.Region)
	}
	v.mu.Lock()
	secret, ok := v.Keys[cred[0]]
	v.mu.Unlock()
	if !ok {
		return fmt.Errorf("unknown access key %s", cred[0])
	}
	signedAt, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return errors.New("token has no valid X-Amz-Date")
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires <= 0 {
		return errors.New("token has no valid X-Amz-Expires")
	}
	now := time.Now().Add(v.Skew)
	if exp := signedAt.Add(time.Duration(expires) * time.Second); now.After(exp) {
		return fmt.Errorf("token expired at %s", exp.Format(time.RFC3339))
	}
	if signedAt.After(now.Add(5 * time.Minute)) {
		return errors.New("token is signed in the future")
	}
	unsigned := url.Values{"Action": {"kafka-cluster:Connect"}, "X-Amz-Expires": {q.Get("X-Amz-Expires")}}
	req, err := http.NewRequest(http.MethodGet, "https://"+u.Host+"/?"+unsigned.Encode(), nil)
	if err != nil {
		return err
	}
	empty := sha256.Sum256(nil)
	creds := aws.Credentials{AccessKeyID: cred[0], SecretAccessKey: secret, SessionToken: q.Get("X-Amz-Security-Token")}
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, hex.EncodeToString(empty[:]), "kafka-cluster", v.Region, signedAt)
	if err != nil {
		return fmt.Errorf("recompute signature: %w", err)
	}
	su, err := url.Parse(signed)
	if err != nil || su.Query().Get("X-Amz-Signature") != q.Get("X-Amz-Signature") {
		return errors.New("token signature does not match: wrong secret key")
	}
	return nil
}
