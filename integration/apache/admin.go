package apache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Client is a franz-go client on the brokers' plaintext listeners, for
// the harness's own requests and for reading topics back.
func (c *Cluster) Client(opts ...kgo.Opt) (*kgo.Client, error) {
	var seeds []string
	for _, n := range c.nodes {
		seeds = append(seeds, n.Addr(Plaintext))
	}
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RetryTimeout(5 * time.Second)}, opts...)...)
}

// Metadata asks a running broker for the cluster's brokers and the
// topics' partitions.
func (c *Cluster) Metadata(ctx context.Context, topics ...string) (*kmsg.MetadataResponse, error) {
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return metadataRequest(topics).RequestWith(ctx, cl)
}

// metadataRequest asks for the brokers and topics.
func metadataRequest(topics []string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// WaitReady returns once every running broker is registered and, for
// each topic given, every partition has a leader and all its replicas in
// sync, as every running broker sees it: a broker just resumed from
// SIGSTOP answers from its metadata of before the pause (itself the
// leader, the ISR full) until it catches up.
func (c *Cluster) WaitReady(ctx context.Context, topics ...string) error {
	var running []*Node
	for _, n := range c.nodes {
		if n.Running() {
			running = append(running, n)
		}
	}
	var last error
	for ctx.Err() == nil {
		if last = c.agreed(ctx, running, topics); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("cluster not ready: %w (last: %v)", ctx.Err(), last)
}

// agreed asks each of nodes for topics' metadata: each must see the
// cluster healthy, and all the same leader and leader epoch for each
// partition.
func (c *Cluster) agreed(ctx context.Context, nodes []*Node, topics []string) error {
	type leader struct{ id, epoch int32 }
	seen := map[string]leader{}
	for _, n := range nodes {
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr(Plaintext)), kgo.RetryTimeout(5*time.Second))
		if err != nil {
			return err
		}
		resp, err := cl.SeedBrokers()[0].Request(ctx, metadataRequest(topics))
		cl.Close()
		var md *kmsg.MetadataResponse
		if err == nil {
			md = resp.(*kmsg.MetadataResponse)
			err = healthy(md, len(nodes))
		}
		if err != nil {
			return fmt.Errorf("broker %d: %w", n.ID, err)
		}
		for _, t := range md.Topics {
			for _, p := range t.Partitions {
				k := fmt.Sprintf("%s/%d", *t.Topic, p.Partition)
				got := leader{p.Leader, p.LeaderEpoch}
				if want, ok := seen[k]; ok && want != got {
					return fmt.Errorf("broker %d sees %s led by %d at epoch %d, another broker by %d at epoch %d", n.ID, k, got.id, got.epoch, want.id, want.epoch)
				}
				seen[k] = got
			}
		}
	}
	return nil
}

func healthy(md *kmsg.MetadataResponse, brokers int) error {
	if len(md.Brokers) < brokers {
		return fmt.Errorf("%d brokers registered, want %d", len(md.Brokers), brokers)
	}
	for _, t := range md.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return fmt.Errorf("topic %s: %w", *t.Topic, err)
		}
		for _, p := range t.Partitions {
			if p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
				return fmt.Errorf("topic %s partition %d: leader %d, ISR %v of %v", *t.Topic, p.Partition, p.Leader, p.ISR, p.Replicas)
			}
		}
	}
	return nil
}

// CreateTopic creates topic with partitions partitions, replication
// factor 3, min.insync.replicas 2 and no unclean election (MSK's defaults
// but for unclean election, which MSK standard brokers allow), plus
// configs, and waits until all its replicas are in sync.
func (c *Cluster) CreateTopic(ctx context.Context, topic string, partitions int32, configs map[string]string) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, partitions, 3
	all := map[string]string{"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
	for k, v := range configs {
		all[k] = v
	}
	for k, v := range all {
		cfg := kmsg.NewCreateTopicsRequestTopicConfig()
		cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, cfg)
	}
	req.Topics = append(req.Topics, rt)
	res, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && err != kerr.TopicAlreadyExists {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	return c.WaitReady(ctx, topic)
}

// EndOffsets sums the high watermarks of topic's partitions: the records
// every in-sync replica has.
func (c *Cluster) EndOffsets(ctx context.Context, topic string) (map[int32]int64, error) {
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p.Partition, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
	}
	req.Topics = append(req.Topics, rt)
	shards := cl.RequestSharded(ctx, req)
	out := map[int32]int64{}
	for _, sh := range shards {
		if sh.Err != nil {
			return nil, sh.Err
		}
		for _, t := range sh.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("list offsets %s/%d: %w", topic, p.Partition, err)
				}
				out[p.Partition] = p.Offset
			}
		}
	}
	return out, nil
}

// WaitEndsBeyond polls topic's high watermarks until one passes read (by
// partition), reporting false if ctx ends first.
func (c *Cluster) WaitEndsBeyond(ctx context.Context, topic string, read map[int32]int64) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if ends, err := c.EndOffsets(ctx, topic); err == nil {
			for p, end := range ends {
				if end > read[p] {
					return true
				}
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// Records reads topic from its start to its high watermarks, partition by
// partition, as a consumer with read_uncommitted sees it. It sends its own
// Fetch requests to each partition's leader of the moment rather than run
// a consumer, which hides what it retries (once it read nothing of a
// partition for a minute and said nothing) and resets OFFSET_OUT_OF_RANGE
// to the log start (hiding records retention took): here a Fetch's error
// code says why a partition does not move, a retriable one is asked again
// with fresh metadata, and any other ends the read.
func (c *Cluster) Records(ctx context.Context, topic string) ([]*kgo.Record, error) {
	ends, err := c.EndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	cl, err := c.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var recs []*kgo.Record
	next := map[int32]int64{}
	why := map[int32]error{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := metadataRequest([]string{topic}).RequestWith(ctx, cl)
		if err != nil {
			why[-1] = fmt.Errorf("metadata: %w", err)
		}
		left, moved := 0, false
		for _, t := range topicsOf(md) {
			for _, p := range t.Partitions {
				if next[p.Partition] >= ends[p.Partition] {
					continue
				}
				left++
				got, err := fetch(ctx, cl, t, p, next[p.Partition])
				var ke *kerr.Error
				if errors.As(err, &ke) && !ke.Retriable {
					// OFFSET_OUT_OF_RANGE: records gone (retention), not late
					return recs, fmt.Errorf("read %d records of %s: %w", len(recs), topic, err)
				}
				if err != nil {
					why[p.Partition] = err
					continue
				}
				delete(why, p.Partition)
				moved = moved || len(got) > 0
				for _, r := range got {
					recs = append(recs, r)
					next[r.Partition] = r.Offset + 1
				}
			}
		}
		if left == 0 && md != nil {
			return recs, nil
		}
		if moved {
			continue
		}
		select {
		case <-ctx.Done():
			return recs, fmt.Errorf("read %d records of %s (to %v, at %v; %v): %w", len(recs), topic, ends, next, why, ctx.Err())
		case <-tick.C:
		}
	}
}

// topicsOf is md's topics, none if md is nil.
func topicsOf(md *kmsg.MetadataResponse) []kmsg.MetadataResponseTopic {
	if md == nil {
		return nil
	}
	return md.Topics
}

// fetch asks partition p's leader for its records from offset on, waiting
// up to half a second for one and 5 s for the answer.
func fetch(ctx context.Context, cl *kgo.Client, t kmsg.MetadataResponseTopic, p kmsg.MetadataResponseTopicPartition, offset int64) ([]*kgo.Record, error) {
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil || p.Leader < 0 {
		return nil, fmt.Errorf("partition %d has no leader (%d): %v", p.Partition, p.Leader, err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 500, 1, 64<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = *t.Topic, t.TopicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.LogStartOffset, rp.PartitionMaxBytes = p.Partition, offset, -1, 32<<20
	rp.CurrentLeaderEpoch = -1 // the broker's own view decides; metadata may lag it
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kresp, err := cl.Broker(int(p.Leader)).Request(rctx, req)
	if err != nil {
		return nil, fmt.Errorf("fetch partition %d at %d from broker %d: %w", p.Partition, offset, p.Leader, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("fetch partition %d at %d from broker %d: %w", p.Partition, offset, p.Leader, err)
	}
	var out []*kgo.Record
	for _, rt := range resp.Topics {
		for i := range rt.Partitions {
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: *t.Topic, Partition: p.Partition, Offset: offset}, &rt.Partitions[i], kgo.DefaultDecompressor(), nil)
			if fp.Err != nil {
				return nil, fmt.Errorf("fetch partition %d at %d from broker %d (high watermark %d): %w", p.Partition, offset, p.Leader, fp.HighWatermark, fp.Err)
			}
			out = append(out, fp.Records...)
		}
	}
	return out, nil
}

// Leader is the broker that leads topic's partition, -1 if none.
func (c *Cluster) Leader(ctx context.Context, topic string, partition int32) (int32, error) {
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		return -1, err
	}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			if p.Partition == partition {
				return p.Leader, nil
			}
		}
	}
	return -1, fmt.Errorf("no partition %d of %s", partition, topic)
}
