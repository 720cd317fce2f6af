package scramsecret

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// secretsEndpoint answers GetSecretValue in Secrets Manager's protocol
// (AWS JSON 1.1) from secrets, as the real SDK client calls it.
func secretsEndpoint(t *testing.T, secrets map[string]string) *secretsmanager.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			http.Error(w, `{"__type":"InvalidRequestException","message":"unexpected request"}`, http.StatusBadRequest)
			return
		}
		var in struct{ SecretId string }
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		v, ok := secrets[in.SecretId]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`))
			return
		}
		out, _ := json.Marshal(map[string]any{"ARN": in.SecretId, "Name": "AmazonMSK_relay", "SecretString": v})
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return secretsmanager.New(secretsmanager.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:   srv.Client(),
	})
}

func TestFetch(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_relay-AbCdEf"
	const password = "pa55-word-do-not-log"
	client := secretsEndpoint(t, map[string]string{
		arn:          `{"username":"alice","password":"` + password + `"}`,
		arn + "-bad": `password=` + password,
		arn + "-nou": `{"password":"` + password + `"}`,
	})
	ctx := context.Background()
	user, pw, err := Fetch(ctx, client, arn)
	if err != nil || user != "alice" || pw != password {
		t.Fatalf("Fetch = %q, %v", user, err)
	}
	for _, tc := range []struct{ arn, want string }{
		{arn + "-missing", "ResourceNotFoundException"},
		{arn + "-bad", "is not JSON with username and password"},
		{arn + "-nou", `lacks "username" or "password"`},
	} {
		_, _, err := Fetch(ctx, client, tc.arn)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.arn) {
			t.Errorf("%s: error %v, want one naming the secret and %q", tc.arn, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%s: error leaks the password", tc.arn)
		}
	}
}
