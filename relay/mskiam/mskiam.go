// Package mskiam makes MSK IAM authentication tokens for SASL/OAUTHBEARER
// with aws-msk-iam-sasl-signer-go, from the Lambda's credentials or from a
// role assumed for a cross-account cluster.
package mskiam

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/aws/aws-msk-iam-sasl-signer-go/signer"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Provider makes tokens. It is safe for concurrent use.
type Provider struct {
	region    string
	creds     aws.CredentialsProvider
	principal string

	// MaxLifetime, when positive, shortens the lifetime librdkafka is told
	// a token has, so it refreshes sooner. Tests use it; the signer's
	// tokens last 15 min.
	MaxLifetime time.Duration

	made atomic.Int64
}

// New returns a provider for region. Credentials come from the default
// chain (in Lambda, the function's role); with roleARN set, from that role,
// assumed through STS and cached until shortly before they expire, so
// tokens do not cost an STS call each. opts add to the SDK's configuration
// (its logger, in the function).
func New(ctx context.Context, region, roleARN string, opts ...func(*config.LoadOptions) error) (*Provider, error) {
	cfg, err := config.LoadDefaultConfig(ctx, append(opts, config.WithRegion(region))...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	creds, principal := cfg.Credentials, "lambda-role"
	if roleARN != "" {
		creds = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), roleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "sqs-msk-relay"
		}))
		principal = roleARN
	}
	return NewWithCredentials(region, creds, principal), nil
}

// NewWithCredentials returns a provider signing with creds. principal
// names the identity in logs and in librdkafka; it is never a secret.
func NewWithCredentials(region string, creds aws.CredentialsProvider, principal string) *Provider {
	return &Provider{region: region, creds: creds, principal: principal}
}

// Principal names the identity tokens are made for.
func (p *Provider) Principal() string { return p.principal }

// Made counts the tokens made so far.
func (p *Provider) Made() int64 { return p.made.Load() }

// Token makes a fresh token and returns it with its expiry.
func (p *Provider) Token(ctx context.Context) (token string, expiry time.Time, err error) {
	tok, expMs, err := signer.GenerateAuthTokenFromCredentialsProvider(ctx, p.region, p.creds)
	if err != nil {
		// The signer's errors name the credential source, never a secret.
		return "", time.Time{}, fmt.Errorf("sign MSK IAM token (region %s, principal %s): %w", p.region, p.principal, err)
	}
	expiry = time.UnixMilli(expMs)
	if p.MaxLifetime > 0 {
		if limit := time.Now().Add(p.MaxLifetime); limit.Before(expiry) {
			expiry = limit
		}
	}
	p.made.Add(1)
	return tok, expiry, nil
}
