package auth

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/relay"
)

// TestSetupIAM: the token source carries RELAY_IAM_TOKEN_LIFETIME and the
// role, for the function and the tools alike.
func TestSetupIAM(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	cfg := relay.Config{Auth: relay.AuthIAM, AWSRegion: "eu-west-1", IAMTokenLifetime: 30 * time.Second}
	a, err := Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.Tokens == nil || a.Tokens.MaxLifetime != 30*time.Second || len(a.Options()) != 1 || a.TokenSource() == nil {
		t.Fatalf("auth %+v: no token source with the configured lifetime", a)
	}
	_, exp, err := a.Tokens.Token(context.Background())
	if err != nil || time.Until(exp) > 30*time.Second {
		t.Errorf("token expires in %v (%v), want at most the 30 s lifetime", time.Until(exp), err)
	}
	none, err := Setup(context.Background(), relay.Config{Auth: relay.AuthNone})
	if err != nil || none.TokenSource() != nil || none.Options() != nil {
		t.Errorf("RELAY_AUTH=none: %+v %v", none, err)
	}
}
