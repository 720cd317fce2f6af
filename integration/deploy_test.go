package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sqs-msk-relay/relay/relay"
)

// serverless runs the pinned Serverless Framework v3 (npm ci installs it)
// offline, with made-up credentials, in dir.
func serverless(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	root, _ := filepath.Abs("..")
	bin := filepath.Join(root, "node_modules", ".bin", "serverless")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the Serverless Framework is not installed at %s: run `npm ci` (make test does; it needs the npm registry): %v", bin, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY=not-a-real-secret",
		"SLS_TELEMETRY_DISABLED=1", "SLS_NOTIFICATIONS_MODE=off", "CI=true",
	}
	return cmd.CombinedOutput()
}

// template packages the service for stage and returns its CloudFormation.
func template(t *testing.T, stage string) map[string]any {
	t.Helper()
	root, _ := filepath.Abs("..")
	if _, err := os.Stat(filepath.Join(root, "build", "relay.zip")); err != nil {
		t.Fatalf("no build/relay.zip: run `make package` (make test does): %v", err)
	}
	out := t.TempDir()
	if b, err := serverless(t, root, "package", "--stage", stage, "--package", out); err != nil {
		t.Fatalf("serverless package --stage %s: %v\n%s", stage, err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, "cloudformation-template-update-stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// cfn evaluates the few intrinsic functions the template uses on literal
// values (Fn::If on conditions of Fn::Equals/Fn::Not), leaving the rest.
type cfn struct{ conditions map[string]any }

func (c cfn) cond(name string) bool {
	return c.eval(c.conditions[name]).(bool)
}

func (c cfn) eval(v any) any {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return v
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Fn::Equals":
			return fmt.Sprint(c.eval(args[0])) == fmt.Sprint(c.eval(args[1]))
		case "Fn::Not":
			return !c.eval(args[0]).(bool)
		case "Fn::If":
			if c.cond(args[0].(string)) {
				return c.eval(args[1])
			}
			return c.eval(args[2])
		case "Fn::Split":
			var out []any
			for _, s := range strings.Split(args[1].(string), args[0].(string)) {
				out = append(out, s)
			}
			return out
		}
	}
	return v
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func num(t *testing.T, v any) int {
	t.Helper()
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		n, err := strconv.Atoi(x)
		if err != nil {
			t.Fatalf("%q is not a number", x)
		}
		return n
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return []string{fmt.Sprint(v)}
}

func resourcesOfType(tmpl map[string]any, typ string) map[string]any {
	out := map[string]any{}
	for name, r := range tmpl["Resources"].(map[string]any) {
		if get(r, "Type") == typ {
			out[name] = r
		}
	}
	return out
}

func TestServerlessTemplate(t *testing.T) {
	const cluster = "arn:aws:kafka:eu-west-1:123456789012:cluster/relay/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-2"
	const topic = "arn:aws:kafka:eu-west-1:123456789012:topic/relay/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-2/events"
	for _, stage := range []string{"test", "test-fifo"} {
		t.Run(stage, func(t *testing.T) {
			tmpl := template(t, stage)
			c := cfn{conditions: tmpl["Conditions"].(map[string]any)}
			res := tmpl["Resources"].(map[string]any)
			fifo := stage == "test-fifo"

			fn := get(res, "RelayLambdaFunction", "Properties")
			if get(fn, "Runtime") != "provided.al2023" || fmt.Sprint(get(fn, "Architectures")) != "[arm64]" || get(fn, "Handler") != "bootstrap" {
				t.Errorf("function runtime %v, architectures %v, handler %v", get(fn, "Runtime"), get(fn, "Architectures"), get(fn, "Handler"))
			}
			timeout := num(t, get(fn, "Timeout"))
			env := get(fn, "Environment", "Variables").(map[string]any)
			for _, name := range []string{"RELAY_BROKERS", "RELAY_TOPIC", "RELAY_AUTH", "RELAY_BODY_FORMAT", "RELAY_TOPIC_ATTRIBUTE", "RELAY_ALLOWED_TOPICS",
				"RELAY_KEY_ATTRIBUTE", "RELAY_MAX_MESSAGE_BYTES", "RELAY_DEADLINE_MARGIN", "RELAY_BROKERS_DOWN_GRACE", "RELAY_KAFKA_PROPERTIES",
				"RELAY_TLS_CA_FILE", "RELAY_TLS_CERT_FILE", "RELAY_TLS_KEY_FILE", "RELAY_SCRAM_USERNAME", "RELAY_SCRAM_PASSWORD",
				"RELAY_SCRAM_SECRET_ARN", "RELAY_IAM_ROLE_ARN", "RELAY_IAM_TOKEN_LIFETIME", "RELAY_AWS_REGION", "RELAY_LOG_LEVEL",
				"RELAY_DLQ_URL", "RELAY_RETRY_BASE", "RELAY_RETRY_MAX"} {
				if _, ok := env[name]; !ok {
					t.Errorf("environment lacks %s", name)
				}
			}
			if fmt.Sprint(c.eval(env["RELAY_DLQ_URL"])) != "map[Ref:DeadLetterQueue]" {
				t.Errorf("RELAY_DLQ_URL %v, want the DLQ's URL", c.eval(env["RELAY_DLQ_URL"]))
			}
			if env["RELAY_AUTH"] != "iam" || env["RELAY_BROKERS"] == "" {
				t.Errorf("RELAY_AUTH %v, RELAY_BROKERS %v", env["RELAY_AUTH"], env["RELAY_BROKERS"])
			}
			if len(strs(c.eval(get(fn, "VpcConfig", "SubnetIds")))) == 0 || len(strs(c.eval(get(fn, "VpcConfig", "SecurityGroupIds")))) == 0 {
				t.Errorf("no VPC subnets or security groups")
			}

			esms := resourcesOfType(tmpl, "AWS::Lambda::EventSourceMapping")
			if len(esms) != 1 {
				t.Fatalf("%d event source mappings, want 1", len(esms))
			}
			var window, batch int
			for _, esm := range esms {
				p := get(esm, "Properties")
				if !slices.Contains(strs(get(p, "FunctionResponseTypes")), "ReportBatchItemFailures") {
					t.Errorf("event source mapping without ReportBatchItemFailures")
				}
				batch = num(t, get(p, "BatchSize"))
				if w := get(p, "MaximumBatchingWindowInSeconds"); w != nil {
					window = num(t, w)
				}
				if batch > 10 && window < 1 {
					t.Errorf("batch size %d needs a batching window of at least 1 s, has %d", batch, window)
				}
				if fifo && batch > 10 {
					t.Errorf("FIFO batch size %d over 10", batch)
				}
				if mc := num(t, get(p, "ScalingConfig", "MaximumConcurrency")); mc < 2 || mc > 1000 {
					t.Errorf("maximumConcurrency %d outside 2-1000", mc)
				}
				if fmt.Sprint(get(p, "EventSourceArn")) != "map[Fn::GetAtt:[SourceQueue Arn]]" {
					t.Errorf("event source %v is not the source queue", get(p, "EventSourceArn"))
				}
			}

			q := get(res, "SourceQueue", "Properties")
			if v := num(t, get(q, "VisibilityTimeout")); v < 6*timeout+window {
				t.Errorf("visibility timeout %d < 6 × timeout %d + window %d", v, timeout, window)
			}
			if fmt.Sprint(get(q, "RedrivePolicy", "deadLetterTargetArn")) != "map[Fn::GetAtt:[DeadLetterQueue Arn]]" {
				t.Errorf("redrive policy does not target the DLQ: %v", get(q, "RedrivePolicy"))
			}
			if n := num(t, get(q, "RedrivePolicy", "maxReceiveCount")); n < 5 {
				t.Errorf("maxReceiveCount %d < 5", n)
			}
			dlq := get(res, "DeadLetterQueue", "Properties")
			if num(t, get(dlq, "MessageRetentionPeriod")) != 1209600 {
				t.Errorf("DLQ retention %v, want 14 days", get(dlq, "MessageRetentionPeriod"))
			}
			// A record waits out up to about 12 h of backoff before its last
			// receive: the source keeps it longer, the DLQ longer still.
			if r := num(t, get(q, "MessageRetentionPeriod")); r < 2*12*3600 || r >= num(t, get(dlq, "MessageRetentionPeriod")) {
				t.Errorf("source retention %d s: want at least a day, and less than the DLQ's", r)
			}
			// The SQS interface endpoint: asked for in the test stage only.
			ep := get(res, "SqsVpcEndpoint")
			if ep == nil || get(ep, "Condition") != "CreateSqsEndpoint" || c.cond("CreateSqsEndpoint") == fifo {
				t.Errorf("SQS VPC endpoint %v, condition true %v, want it created in the test stage only", ep, c.cond("CreateSqsEndpoint"))
			} else if !fifo && (get(ep, "Properties", "ServiceName") != "com.amazonaws.eu-west-1.sqs" ||
				get(ep, "Properties", "VpcEndpointType") != "Interface" || get(ep, "Properties", "VpcId") != "vpc-0123456789abcdef0") {
				t.Errorf("SQS endpoint %v", get(ep, "Properties"))
			}
			name := fmt.Sprint(c.eval(get(q, "QueueName")))
			if isFifo := c.eval(get(q, "FifoQueue")) == true; isFifo != fifo || strings.HasSuffix(name, ".fifo") != fifo ||
				strings.HasSuffix(fmt.Sprint(c.eval(get(dlq, "QueueName"))), ".fifo") != fifo {
				t.Errorf("queue %s FifoQueue %v, want FIFO %v for both queues", name, c.eval(get(q, "FifoQueue")), fifo)
			}

			checkDashboard(t, c, res, !fifo)

			alarms := resourcesOfType(tmpl, "AWS::CloudWatch::Alarm")
			found := false
			for _, a := range alarms {
				p := get(a, "Properties")
				dims := fmt.Sprint(get(p, "Dimensions"))
				if get(p, "MetricName") == "ApproximateNumberOfMessagesVisible" && strings.Contains(dims, "DeadLetterQueue") {
					found = true
				}
			}
			if !found {
				t.Errorf("no alarm on the DLQ's depth")
			}

			// IAM: besides the framework's log statements, exactly these.
			want := map[string][]string{
				"kafka-cluster:Connect":               {cluster},
				"kafka-cluster:WriteDataIdempotently": {cluster},
				"kafka-cluster:DescribeTopic":         {topic},
				"kafka-cluster:WriteData":             {topic},
				"sqs:ReceiveMessage":                  {"map[Fn::GetAtt:[SourceQueue Arn]]"},
				"sqs:DeleteMessage":                   {"map[Fn::GetAtt:[SourceQueue Arn]]"},
				"sqs:GetQueueAttributes":              {"map[Fn::GetAtt:[SourceQueue Arn]]"},
				"sqs:ChangeMessageVisibility":         {"map[Fn::GetAtt:[SourceQueue Arn]]"},
				"sqs:GetQueueUrl":                     {"map[Fn::GetAtt:[SourceQueue Arn]]"},
				"sqs:SendMessage":                     {"map[Fn::GetAtt:[DeadLetterQueue Arn]]"},
			}
			got := map[string][]string{}
			for _, pol := range get(res, "IamRoleLambdaExecution", "Properties", "Policies").([]any) {
				for _, st := range get(pol, "PolicyDocument", "Statement").([]any) {
					if get(st, "Effect") != "Allow" {
						continue
					}
					resources := strs(c.eval(get(st, "Resource")))
					for _, action := range strs(get(st, "Action")) {
						if strings.HasPrefix(action, "logs:") {
							continue
						}
						for _, r := range resources {
							got[action] = append(got[action], r)
						}
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("IAM actions and resources:\n got %v\nwant %v", got, want)
			}
		})
	}
}

func TestServerlessRejectsMisspeltProperty(t *testing.T) {
	root, _ := filepath.Abs("..")
	b, err := os.ReadFile(filepath.Join(root, "serverless.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bad := strings.Replace(string(b), "  memorySize: ${param:memorySize}", "  memorySise: ${param:memorySize}", 1)
	if bad == string(b) {
		t.Fatal("serverless.yml has no provider memorySize line to misspell")
	}
	if err := os.WriteFile(filepath.Join(dir, "serverless.yml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := serverless(t, dir, "package", "--stage", "test")
	if err == nil || !strings.Contains(string(out), "memorySise") {
		t.Errorf("a misspelt property was not rejected (err %v):\n%s", err, out)
	}
}

// checkDashboard: the dashboard is there when want (the param's default),
// its body is JSON once CloudFormation substitutes it, and it charts each
// metric #21 names, of this function and these queues, every one of the
// relay's a metric the relay emits.
func checkDashboard(t *testing.T, c cfn, res map[string]any, want bool) {
	t.Helper()
	d := get(res, "RelayDashboard")
	if d == nil || get(d, "Condition") != "CreateDashboard" || c.cond("CreateDashboard") != want {
		t.Errorf("dashboard %v, condition %v, want created: %v", d != nil, c.cond("CreateDashboard"), want)
		return
	}
	if !want {
		return
	}
	sub := get(d, "Properties", "DashboardBody", "Fn::Sub").([]any)
	vars := sub[1].(map[string]any)
	for k, v := range map[string]string{"Fn": "map[Ref:RelayLambdaFunction]", "Source": "map[Fn::GetAtt:[SourceQueue QueueName]]",
		"Dlq": "map[Fn::GetAtt:[DeadLetterQueue QueueName]]"} {
		if fmt.Sprint(vars[k]) != v {
			t.Errorf("dashboard variable %s = %v, want %s", k, vars[k], v)
		}
	}
	body := strings.NewReplacer("${AWS::Region}", "eu-west-1", "${Fn}", "FN", "${Source}", "SRC", "${Dlq}", "DLQ").Replace(sub[0].(string))
	var dash struct {
		Widgets []struct {
			Properties struct {
				Title   string
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &dash); err != nil {
		t.Fatalf("dashboard body is not JSON: %v\n%s", err, body)
	}
	emitted := emittedMetrics(t)
	charted := map[string]bool{}
	for _, w := range dash.Widgets {
		for _, m := range w.Properties.Metrics {
			if e, ok := m[0].(map[string]any); ok {
				if expr, _ := e["expression"].(string); strings.Contains(expr, `MetricName="FailedRecords" FunctionName="FN"`) {
					charted["FailedRecords by Reason"] = true
				}
				continue
			}
			ns, name, dim, val := m[0], m[1].(string), m[2], m[3]
			switch {
			case ns == "SqsMskRelay" && dim == "FunctionName" && val == "FN":
				if !emitted[name] {
					t.Errorf("widget %q charts %s, which the relay does not emit", w.Properties.Title, name)
				}
				charted[name] = true
			case ns == "AWS/SQS" && dim == "QueueName":
				charted[name+" of "+val.(string)] = true
			default:
				t.Errorf("widget %q charts %v", w.Properties.Title, m)
			}
		}
	}
	for _, m := range []string{"Records", "Succeeded", "Failed", "FailedRecords by Reason", "ProduceLatencyP50", "ProduceLatencyP99",
		"TimeLeftAtReturn", "ApproximateNumberOfMessagesVisible of DLQ", "ApproximateAgeOfOldestMessage of SRC"} {
		if !charted[m] {
			t.Errorf("the dashboard does not chart %s", m)
		}
	}
}

// emittedMetrics are the names of the metrics relay.Metrics writes for a
// batch with a failure and produce latencies.
func emittedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var buf bytes.Buffer
	now := time.Now()
	out := &relay.Outcome{Start: now, End: now.Add(time.Millisecond), Deadline: now.Add(time.Second), MessageIDs: []string{"a", "b"}, Errs: []error{nil, &relay.RecordError{MessageID: "b", Reason: relay.ReasonOversized, Err: errors.New("x")}}}
	(&relay.Metrics{W: &buf, FunctionName: "FN"}).Emit(out, []time.Duration{time.Millisecond})
	names := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var doc struct {
			AWS struct {
				CloudWatchMetrics []struct{ Metrics []struct{ Name string } }
			} `json:"_aws"`
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line %q: %v", line, err)
		}
		for _, d := range doc.AWS.CloudWatchMetrics {
			for _, m := range d.Metrics {
				names[m.Name] = true
			}
		}
	}
	return names
}
