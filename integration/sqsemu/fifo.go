package sqsemu

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// fauxqs 2.4.1 returns one message per FIFO message group per receive,
// where SQS returns as many of a group as it can (up to 10; "FIFO queue
// delivery logic" in the SQS Developer Guide): no batch ever held two
// records of one group. Its dequeue loop breaks after the first message
// of a group; without the break, it takes the group's messages in order,
// and counts each in the group's lock. Messages put back (visibility run
// out, or set to 0) are then several per group, and unshifting them one
// by one would reverse them: the group is sorted by sequence number after.
// The fix is applied to the installed file, once, before fauxqs starts.
var fifoFixes = []struct{ from, to string }{
	{"                this.fifoLockedGroups.set(groupId, (this.fifoLockedGroups.get(groupId) ?? 0) + 1);\n                break;\n",
		"                this.fifoLockedGroups.set(groupId, (this.fifoLockedGroups.get(groupId) ?? 0) + 1);\n"},
	{"group.unshift(entry.message);\n", "group.unshift(entry.message);\n" + indent + "group.sort(bySequence);\n"},
}

const indent = "                    "

const fifoMarker = "// sqsemu: FIFO receive as SQS does (integration/sqsemu/fifo.go)\n"

const bySequence = "const bySequence = (x, y) => { const a = BigInt(x.sequenceNumber ?? 0), b = BigInt(y.sequenceNumber ?? 0); return a < b ? -1 : a > b ? 1 : 0; };\n"

// fixFIFOReceive applies fifoFixes to fauxqs under root, if not yet.
func fixFIFOReceive(root string) error {
	path := filepath.Join(root, "node_modules", "fauxqs", "dist", "sqs", "sqsStore.js")
	src, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("fauxqs FIFO fix: %w", err)
	}
	if bytes.HasPrefix(src, []byte(fifoMarker)) {
		return nil
	}
	out := string(src)
	for _, f := range fifoFixes {
		n := bytes.Count(src, []byte(f.from))
		if n == 0 {
			return fmt.Errorf("fauxqs FIFO fix: %s no longer holds %q: check the new version's FIFO receive and update fifo.go", path, f.from)
		}
		out = string(bytes.ReplaceAll([]byte(out), []byte(f.from), []byte(f.to)))
	}
	out = fifoMarker + bySequence + out
	// Written whole and renamed: tests starting fauxqs at once each
	// write the same bytes, and none reads a half-written file.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sqsStore-*.js")
	if err != nil {
		return fmt.Errorf("fauxqs FIFO fix: %w", err)
	}
	if _, err := tmp.WriteString(out); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("fauxqs FIFO fix: %w", err)
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("fauxqs FIFO fix: %w", err)
	}
	return nil
}
