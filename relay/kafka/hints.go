package kafka

import "strings"

// hints map what librdkafka says about a failed connection to what to
// check; the first that matches wins. MSK's ports: 9092 plaintext, 9094
// TLS, 9096 SCRAM, 9098 IAM (9194/9196/9198 public).
var hints = []struct {
	match []string
	hint  string
}{
	{[]string{"certificate verify failed"}, "the broker's certificate is not signed by a trusted CA: check RELAY_TLS_CA_FILE (unset: the system roots)"},
	{[]string{"SASL authentication error"}, "the broker refused the credentials: for IAM check the role's kafka-cluster:Connect permission and RELAY_AWS_REGION; for SCRAM the user and password"},
	{[]string{"APIVERSION_QUERY"}, "the broker closed the connection before answering: wrong port or security protocol (RELAY_AUTH=none on a TLS listener, or TLS on the plaintext port 9092?)"},
	{[]string{"Connection refused"}, "nothing listens on that host and port: check RELAY_BROKERS and the port for RELAY_AUTH"},
	{[]string{"Failed to resolve", "Name or service not known"}, "the broker's name does not resolve: check RELAY_BROKERS and the VPC's DNS"},
	{[]string{"in state CONNECT", "Connection timed out"}, "no TCP connection: check the security groups (the broker's must admit the Lambda's on the port) and the route"},
	{[]string{"SSL_HANDSHAKE"}, "the TLS handshake failed: a plaintext port, or a client certificate the broker does not accept"},
}

// hint returns advice for a librdkafka error message, or "".
func hint(msg string) string {
	for _, h := range hints {
		for _, m := range h.match {
			if strings.Contains(msg, m) {
				return h.hint
			}
		}
	}
	return ""
}
