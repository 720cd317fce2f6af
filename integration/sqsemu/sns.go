package sqsemu

import (
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// SNSClient is an SNS client of the real SDK pointed at fauxqs itself,
// whose topics fan out to its queues: a notification reaches a queue
// subscribed without raw message delivery as SNS's JSON envelope.
func (e *Emulator) SNSClient() *sns.Client {
	return sns.New(sns.Options{
		Region:       Region,
		BaseEndpoint: aws.String(e.backend),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	})
}
