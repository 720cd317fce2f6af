// Package auth builds the producer's authentication from the relay's
// configuration, once, for the function and the operators' tools alike:
// the SCRAM credentials from Secrets Manager (RELAY_SCRAM_SECRET_ARN), and
// the MSK IAM token source (RELAY_AUTH=iam, RELAY_IAM_ROLE_ARN,
// RELAY_IAM_TOKEN_LIFETIME).
package auth

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/sqs-msk-relay/relay/relay"
	"github.com/sqs-msk-relay/relay/relay/kafka"
	"github.com/sqs-msk-relay/relay/relay/mskiam"
	"github.com/sqs-msk-relay/relay/relay/scramsecret"
)

// Auth is what the producer authenticates with.
type Auth struct {
	// Config is the configuration with its credentials resolved: the
	// SCRAM username and password read from the secret, if one is named.
	Config relay.Config
	// Tokens signs MSK IAM tokens; nil unless RELAY_AUTH=iam.
	Tokens *mskiam.Provider
}

// Setup resolves cfg's credentials. ctx bounds the AWS calls it makes
// (Secrets Manager; STS is called later, when a token is signed); opts add
// to the SDK's configuration.
func Setup(ctx context.Context, cfg relay.Config, opts ...func(*config.LoadOptions) error) (Auth, error) {
	a := Auth{Config: cfg}
	switch {
	case cfg.Auth == relay.AuthIAM:
		tokens, err := mskiam.New(ctx, cfg.AWSRegion, cfg.IAMRoleARN, opts...)
		if err != nil {
			return Auth{}, fmt.Errorf("MSK IAM credentials: %w", err)
		}
		tokens.MaxLifetime = cfg.IAMTokenLifetime
		a.Tokens = tokens
	case cfg.Auth == relay.AuthSCRAM && cfg.SCRAMSecretARN != "":
		awsCfg, err := config.LoadDefaultConfig(ctx, append(opts, config.WithRegion(cfg.AWSRegion))...)
		if err != nil {
			return Auth{}, fmt.Errorf("load AWS configuration for RELAY_SCRAM_SECRET_ARN: %w", err)
		}
		a.Config.SCRAMUsername, a.Config.SCRAMPassword, err = scramsecret.Fetch(ctx, secretsmanager.NewFromConfig(awsCfg), cfg.SCRAMSecretARN)
		if err != nil {
			return Auth{}, err
		}
	}
	return a, nil
}

// TokenSource is Tokens as a kafka.TokenSource, nil when there is none.
func (a Auth) TokenSource() kafka.TokenSource {
	if a.Tokens == nil {
		return nil
	}
	return a.Tokens
}

// Options are the kafka.New options for a.
func (a Auth) Options() []kafka.Option {
	if a.Tokens == nil {
		return nil
	}
	return []kafka.Option{kafka.WithTokenSource(a.Tokens)}
}

// NewProducer resolves cfg's credentials and builds the producer with
// them: what the function and both tools call.
func NewProducer(ctx context.Context, cfg relay.Config, log *slog.Logger) (*kafka.Producer, Auth, error) {
	a, err := Setup(ctx, cfg)
	if err != nil {
		return nil, Auth{}, err
	}
	p, err := kafka.New(a.Config, log, a.Options()...)
	if err != nil {
		return nil, Auth{}, err
	}
	return p, a, nil
}
