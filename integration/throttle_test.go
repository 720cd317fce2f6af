package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
	"github.com/sqs-msk-relay/relay/integration/runtimeapi"
)

// TestConnectionThrottlingIsTransient: 30 function processes start at once
// against brokers that refuse IAM authentications over 15 a second with
// "Too many connects", as MSK does over a broker's quota. No record is
// failed as an authentication failure: each is acknowledged (librdkafka
// reconnects within the deadline) or failed as connection_throttled,
// which the failure policy backs off.
func TestConnectionThrottlingIsTransient(t *testing.T) {
	pki := newPKI(t)
	v := &broker.IAM{Region: testRegion, Keys: map[string]string{testAccessKey: testSecretKey}, MaxPerSecond: 15}
	c := startCluster(t, append(v.Opts(), kfake.TLS(pki.ServerTLS(false)))...)
	v.Install(c.Cluster)
	env := []string{"RELAY_BROKERS=" + c.Addrs(), "RELAY_AUTH=iam", "RELAY_AWS_REGION=" + testRegion, "RELAY_TLS_CA_FILE=" + pki.CAFile,
		"RELAY_TOPIC=events", "RELAY_RETRY_BASE=0", "AWS_REGION=" + testRegion, "AWS_ACCESS_KEY_ID=" + testAccessKey, "AWS_SECRET_ACCESS_KEY=" + testSecretKey}
	const functions, records = 30, 10
	type fn struct {
		api  *runtimeapi.Server
		logs *logBuffer
	}
	fns := make([]fn, functions)
	for i := range fns {
		api, logs, _ := startFunction(t, env...)
		fns[i] = fn{api, logs}
	}
	var wg sync.WaitGroup
	failed := make([]map[string]bool, functions)
	errs := make([]error, functions)
	for i, f := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, records)
			for k := range ids {
				ids[k] = fmt.Sprintf("f%02d-%d", i, k)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			res, err := f.api.Invoke(ctx, sqsEvent(ids...), 15*time.Second)
			if err != nil || res.Error {
				errs[i] = fmt.Errorf("invoke: %v %s", err, res.Payload)
				return
			}
			var resp events.SQSEventResponse
			if err := json.Unmarshal(res.Payload, &resp); err != nil {
				errs[i] = err
				return
			}
			failed[i] = map[string]bool{}
			for _, it := range resp.BatchItemFailures {
				failed[i][it.ItemIdentifier] = true
			}
		}()
	}
	wg.Wait()
	total := 0
	for i, f := range fns {
		if errs[i] != nil {
			t.Fatalf("function %d: %v", i, errs[i])
		}
		total += len(failed[i])
		logs := f.logs.String()
		if strings.Contains(logs, `"reason":"auth_failed"`) || strings.Contains(logs, "Kafka authentication failed") {
			t.Errorf("function %d called throttling an authentication failure:\n%s", i, tail(logs, 3000))
		}
		if len(failed[i]) > 0 && !strings.Contains(logs, `"reason":"connection_throttled"`) {
			t.Errorf("function %d failed %d records, not as connection_throttled:\n%s", i, len(failed[i]), tail(logs, 3000))
		}
	}
	t.Logf("%d authentications refused as over the rate, %d accepted; %d of %d records failed as throttled",
		v.Throttled(), v.Accepted(), total, functions*records)
	if v.Throttled() == 0 {
		t.Fatal("no authentication was refused over the rate: nothing was tested")
	}
	if got := int(c.Count("events")); got < functions*records-total {
		t.Errorf("%d records in Kafka, want at least the %d acknowledged", got, functions*records-total)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
