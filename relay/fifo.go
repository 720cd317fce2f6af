package relay

import "fmt"

// fifoOrder keeps a FIFO queue's order within a batch: once a record of a
// message group fails, every later record of that group fails too, so SQS
// redelivers the group's tail in order (DESIGN.md, promise 4). Before
// producing, a record of a group already known to have failed is not
// produced at all; after the delivery reports, a later record that was
// acknowledged anyway is failed.
type fifoOrder struct {
	// groups holds each record's FIFO message group ("" for none), once
	// the batch has a record with one.
	groups []string
	// blocked maps a group to the messageId of its first failure.
	blocked map[string]string
}

// fifoGroup is r's message group if its order matters: on a FIFO queue.
// Standard (fair) queues may carry a group too. The group is tested first:
// the ARN's bytes are in the payload, which the decoding goroutine read,
// and fetching them costs a cache miss per record.
func fifoGroup(r *Record) string {
	if r.MessageGroupID == "" || !r.FIFO() {
		return ""
	}
	return r.MessageGroupID
}

// track notes record i's group; capacity sizes the slice once needed.
func (f *fifoOrder) track(i int, group string, capacity int) {
	if group != "" && f.groups == nil {
		f.groups = make([]string, i, capacity)
	}
	if f.groups != nil {
		f.groups = append(f.groups, group)
	}
}

// block stops the later records of group, naming the first that failed.
func (f *fifoOrder) block(group, messageID string) {
	if group == "" || f.blocked[group] != "" {
		return
	}
	if f.blocked == nil {
		f.blocked = map[string]string{}
	}
	f.blocked[group] = messageID
}

// blockedBy is the error for a record of group whose earlier record
// failed, or nil.
func (f *fifoOrder) blockedBy(messageID, group string) error {
	if first, ok := f.blocked[group]; ok {
		return groupBlocked(messageID, group, first)
	}
	return nil
}

// blockFailed blocks the groups of records whose delivery has failed:
// failures are indexes in Add order, added maps them to record indexes.
func (f *fifoOrder) blockFailed(failures, added []int, messageIDs []string) {
	for _, k := range failures {
		if i := added[k]; f.groups != nil && f.groups[i] != "" {
			f.block(f.groups[i], messageIDs[i])
		}
	}
}

// apply fails, in out, every record acknowledged after an earlier failure
// in its group.
func (f *fifoOrder) apply(out *Outcome) {
	if f.groups == nil || f.blocked == nil && out.Failed() == 0 {
		return
	}
	failed := map[string]string{}
	for i, group := range f.groups {
		if group == "" {
			continue
		}
		first, ok := failed[group]
		switch {
		case ok && out.Errs[i] == nil:
			out.Errs[i] = groupBlocked(out.MessageIDs[i], group, first)
		case !ok && out.Errs[i] != nil:
			failed[group] = out.MessageIDs[i]
		}
	}
}

func groupBlocked(messageID, group, first string) error {
	return &RecordError{MessageID: messageID, Field: "attributes.MessageGroupId", Reason: ReasonGroupBlocked,
		Err: fmt.Errorf("record %s of message group %s failed earlier in this batch; retrying in order", first, quote(group))}
}
