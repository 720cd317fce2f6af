// Package scramsecret reads SCRAM credentials from an AWS Secrets Manager
// secret, where MSK keeps them as {"username": …, "password": …}.
package scramsecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Fetch returns the username and password in the secret arn. Errors name
// the secret and what is wrong with it, never its value.
func Fetch(ctx context.Context, client *secretsmanager.Client, arn string) (username, password string, err error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", "", fmt.Errorf("read SCRAM secret %s: %w", arn, err)
	}
	if out.SecretString == nil {
		return "", "", fmt.Errorf("SCRAM secret %s has no SecretString", arn)
	}
	var v struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal([]byte(*out.SecretString), &v); err != nil {
		// json's error may quote the value: do not pass it on.
		return "", "", fmt.Errorf("SCRAM secret %s is not JSON with username and password", arn)
	}
	if v.Username == "" || v.Password == "" {
		return "", "", errors.New("SCRAM secret " + arn + ` lacks "username" or "password"`)
	}
	return v.Username, v.Password, nil
}
