// Package faultproxy puts a TCP fault proxy (Shopify's toxiproxy, embedded)
// in front of every broker of a kfake cluster, and makes the brokers
// advertise the proxies' addresses, so that librdkafka's bootstrap,
// metadata and reconnects all go through them. Toxics then inject latency,
// resets, black holes, slicing and bandwidth limits, and a proxy can be
// stopped and started as if its broker went away.
package faultproxy

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// Cluster is a kfake cluster behind one proxy per broker.
type Cluster struct {
	*broker.Cluster
	server *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies []*toxiproxy.Proxy
}

// advertised is a broker's real listener reporting the proxy's address,
// which kfake puts in metadata.
type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

// Start starts n brokers, each behind its own proxy.
func Start(n int, partitions int32, topics []string, opts ...kfake.Opt) (*Cluster, error) {
	c := &Cluster{server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
	listen := func(network, address string) (net.Listener, error) {
		real, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		name := fmt.Sprintf("broker-%d", len(c.proxies))
		p := toxiproxy.NewProxy(c.server, name, "127.0.0.1:0", real.Addr().String())
		c.proxies = append(c.proxies, p)
		c.mu.Unlock()
		if err := p.Start(); err != nil {
			real.Close()
			return nil, fmt.Errorf("start proxy: %w", err)
		}
		a, err := net.ResolveTCPAddr("tcp", p.Listen)
		if err != nil {
			return nil, err
		}
		return advertised{Listener: real, addr: a}, nil
	}
	opts = append([]kfake.Opt{kfake.NumBrokers(n), kfake.ListenFn(listen)}, opts...)
	bc, err := broker.Start(partitions, topics, opts...)
	if err != nil {
		c.stopProxies()
		return nil, err
	}
	c.Cluster = bc
	return c, nil
}

// Proxies are the proxies, one per broker in start order.
func (c *Cluster) Proxies() []*toxiproxy.Proxy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*toxiproxy.Proxy(nil), c.proxies...)
}

// AddToxic adds a toxic to every proxy, for example
// `{"type":"latency","attributes":{"latency":200}}`; name identifies it
// for RemoveToxic.
func (c *Cluster) AddToxic(name, spec string) error {
	for _, p := range c.Proxies() {
		js := strings.Replace(spec, "{", `{"name":"`+name+`",`, 1)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return fmt.Errorf("toxic %s on %s: %w", name, p.Name, err)
		}
	}
	return nil
}

// RemoveToxic removes a toxic from every proxy.
func (c *Cluster) RemoveToxic(name string) {
	for _, p := range c.Proxies() {
		_ = p.Toxics.RemoveToxic(context.Background(), name)
	}
}

// ResetConnections closes every connection through the proxies, as a
// broker or a NAT dropping them would.
func (c *Cluster) ResetConnections() error {
	for _, p := range c.Proxies() {
		p.Stop()
		if err := p.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the cluster and the proxies.
func (c *Cluster) Close() {
	if c.Cluster != nil {
		c.Cluster.Close()
	}
	c.stopProxies()
}

func (c *Cluster) stopProxies() {
	for _, p := range c.Proxies() {
		p.Stop()
	}
}
