package relay

import "github.com/sqs-msk-relay/relay/relay/sqsevent"

// Record is one SQS message as the relay sees it, as relay/sqsevent
// decodes it from the event.
type Record = sqsevent.Record

// Attribute is one SQS message attribute with its value decoded.
type Attribute = sqsevent.Attribute
