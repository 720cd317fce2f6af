package mskiam

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAssumedRoleTokens signs tokens with a role assumed through STS (a
// local endpoint speaking STS's query protocol, reached by the SDK's own
// client through AWS_ENDPOINT_URL_STS): the token carries the role's
// temporary credentials, and the credentials are cached across tokens.
func TestAssumedRoleTokens(t *testing.T) {
	const role = "arn:aws:iam::210987654321:role/msk-writer"
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q, _ := url.ParseQuery(string(body))
		if q.Get("Action") != "AssumeRole" || q.Get("RoleArn") != role || q.Get("RoleSessionName") != "sqs-msk-relay" ||
			!strings.Contains(r.Header.Get("Authorization"), "Credential=AKIDLAMBDAROLE/") {
			http.Error(w, "unexpected request: "+string(body), http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMEDROLE</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>
<SessionToken>assumed-session-token</SessionToken><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::210987654321:assumed-role/msk-writer/sqs-msk-relay</Arn><AssumedRoleId>AROAX:sqs-msk-relay</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></AssumeRoleResponse>`,
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDLAMBDAROLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "lambda-role-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_CA_BUNDLE", "")

	ctx := context.Background()
	p, err := New(ctx, "eu-west-1", role)
	if err != nil {
		t.Fatal(err)
	}
	if p.Principal() != role {
		t.Errorf("principal %q, want the role", p.Principal())
	}
	for range 3 {
		tok, exp, err := p.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if until := time.Until(exp); until < 14*time.Minute || until > 16*time.Minute {
			t.Errorf("token expires in %v, want about 15 min", until)
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Host != "kafka.eu-west-1.amazonaws.com" || q.Get("Action") != "kafka-cluster:Connect" ||
			!strings.HasPrefix(q.Get("X-Amz-Credential"), "ASIAASSUMEDROLE/") || q.Get("X-Amz-Security-Token") != "assumed-session-token" {
			t.Errorf("token is not signed with the assumed role: %s", u.Query().Get("X-Amz-Credential"))
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d AssumeRole calls for 3 tokens, want 1 (credentials cached)", n)
	}
}
