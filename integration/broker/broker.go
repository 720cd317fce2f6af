// Package broker runs an embedded Kafka-protocol broker (kfake) on
// 127.0.0.1 for tests and local runs, and reads back what landed in it.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster is an embedded kfake cluster.
type Cluster struct {
	*kfake.Cluster
	// ReadOpts are added to the reader Records uses: TLS and SASL for a
	// cluster that needs them.
	ReadOpts []kgo.Opt
}

// Start starts a cluster of one broker with topics, each of partitions
// partitions, plus opts. Topics are not created automatically, as on MSK.
func Start(partitions int32, topics []string, opts ...kfake.Opt) (*Cluster, error) {
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	return &Cluster{Cluster: c}, nil
}

// Addrs is the bootstrap list, comma-separated, for RELAY_BROKERS.
func (c *Cluster) Addrs() string {
	s := ""
	for i, a := range c.ListenAddrs() {
		if i > 0 {
			s += ","
		}
		s += a
	}
	return s
}

// Count is the number of records in topic: the sum of its partitions' high
// watermarks.
func (c *Cluster) Count(topic string) int64 {
	var n int64
	for _, p := range c.PartitionInfos(topic) {
		n += p.HighWatermark
	}
	return n
}

// Records reads every record of topic from the start, in partition order,
// waiting at most timeout for all of them.
func (c *Cluster) Records(topic string, timeout time.Duration) ([]*kgo.Record, error) {
	want := c.Count(topic)
	if want == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, c.ReadOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return recs, fmt.Errorf("read %d of %d records of %s: %w", len(recs), want, topic, ctx.Err())
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return recs, fmt.Errorf("fetch %s: %w", topic, errs[0].Err)
		}
		recs = append(recs, fs.Records()...)
	}
	return recs, nil
}

// Silent is a TCP listener on 127.0.0.1 that accepts connections and never
// answers: a broker behind a black hole.
type Silent struct {
	ln    net.Listener
	conns chan net.Conn
}

// StartSilent starts a silent listener.
func StartSilent() (*Silent, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Silent{ln: ln, conns: make(chan net.Conn, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case s.conns <- c: // held open, never read
			default:
				c.Close()
			}
		}
	}()
	return s, nil
}

// Addr is the listener's host:port.
func (s *Silent) Addr() string { return s.ln.Addr().String() }

// Close stops listening and drops every held connection.
func (s *Silent) Close() error {
	err := s.ln.Close()
	for {
		select {
		case c := <-s.conns:
			c.Close()
		default:
			return err
		}
	}
}

// ClosedAddr returns a 127.0.0.1 address where nothing listens.
func ClosedAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", errors.Join(err)
	}
	return addr, nil
}
