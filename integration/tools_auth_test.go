package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestToolsReadSCRAMSecret: relay-doctor and relay-dlq read the function's
// auth settings through the same constructor; with RELAY_SCRAM_SECRET_ARN
// the doctor authenticates with the secret's credentials against a SCRAM
// broker (it reported a false failure before), and never prints them.
func TestToolsReadSCRAMSecret(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_relay-AbCdEf"
	pki := newPKI(t)
	c := startCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", scramUser, scramPassword), kfake.TLS(pki.ServerTLS(false)))
	sm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in struct{ SecretId string }
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || in.SecretId != arn {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"no such secret"}`))
			return
		}
		out, _ := json.Marshal(map[string]any{"ARN": arn, "SecretString": `{"username":"` + scramUser + `","password":"` + scramPassword + `"}`})
		w.Write(out)
	}))
	t.Cleanup(sm.Close)
	bin := filepath.Join(t.TempDir(), "relay-doctor")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/relay-doctor").CombinedOutput(); err != nil {
		t.Fatalf("build relay-doctor: %v\n%s", err, out)
	}
	run := func(secretARN string) (string, error) {
		cmd := exec.Command(bin, "-timeout", "5s")
		cmd.Env = append(os.Environ(), "RELAY_BROKERS="+c.Addrs(), "RELAY_TOPIC=events", "RELAY_AUTH=scram-sha-512",
			"RELAY_TLS_CA_FILE="+pki.CAFile, "RELAY_SCRAM_SECRET_ARN="+secretARN, "RELAY_AWS_REGION=eu-west-1",
			"AWS_ENDPOINT_URL_SECRETS_MANAGER="+sm.URL, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=test-secret",
			"AWS_CONFIG_FILE="+os.DevNull, "AWS_SHARED_CREDENTIALS_FILE="+os.DevNull)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(arn)
	if err != nil || !strings.Contains(out, "all checks passed") {
		t.Errorf("relay-doctor with the SCRAM secret: %v\n%s", err, out)
	}
	if strings.Contains(out, scramPassword) {
		t.Errorf("relay-doctor printed the SCRAM password")
	}
	out, err = run(arn + "-missing")
	if err == nil || !strings.Contains(out, "no such secret") {
		t.Errorf("relay-doctor with a missing secret: %v\n%s", err, out)
	}
}
