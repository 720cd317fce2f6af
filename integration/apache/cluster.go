// Package apache runs a real Apache Kafka cluster on 127.0.0.1 for tests:
// one KRaft controller and three brokers, each a JVM started from the
// broker's jars (fetched from Maven Central by the pom beside this file),
// shaped like a 3-AZ MSK cluster: replication factor 3,
// min.insync.replicas 2, no unclean leader election, no automatic topic
// creation. The controller runs apart from the brokers, so that losing two
// brokers does not lose the quorum. Each broker listens for PLAINTEXT,
// SASL_SSL with SCRAM-SHA-512, and SSL with required client certificates.
package apache

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sqs-msk-relay/relay/integration/broker"
)

// Version is the Kafka release the pom fetches.
const Version = "4.4.0"

// Brokers is how many brokers a cluster has; the controller is apart.
const Brokers = 3

// controllerID is the controller's node id; brokers are 1 to Brokers.
const controllerID = 100

// Listener names a listener of every broker.
type Listener int

// The brokers' client listeners.
const (
	Plaintext Listener = iota // PLAINTEXT
	SCRAM                     // SASL_SSL, SCRAM-SHA-512
	MTLS                      // SSL, client certificate required
	listeners
)

// Config shapes a cluster.
type Config struct {
	// Libs is the folder of the broker's jars; default $RELAY_KAFKA_LIBS.
	Libs string
	// Dir holds the nodes' configuration, data and logs; removed by Close.
	Dir string
	// PKI signs the brokers' certificates and the clients'; made in Dir
	// when nil.
	PKI *broker.PKI
	// SCRAMUsers are SCRAM-SHA-512 users, name to password.
	SCRAMUsers map[string]string
	// Heap is each JVM's -Xmx; default 384m.
	Heap string
	// Log, if set, receives every node's output.
	Log io.Writer
}

// Cluster is a running cluster.
type Cluster struct {
	cfg        Config
	clusterID  string
	PKI        *broker.PKI
	controller *Node
	nodes      []*Node // brokers, by id-1
}

// Node is one JVM: a broker or the controller.
type Node struct {
	ID    int
	ports [listeners + 1]int // client listeners, then the inter-broker or controller port
	dir   string
	props string
	c     *Cluster

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool // SIGSTOP'ed
}

// Start formats the storage of a controller and three brokers and starts
// them, returning once every broker is registered with the controller.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Libs == "" {
		cfg.Libs = os.Getenv("RELAY_KAFKA_LIBS")
	}
	if cfg.Libs == "" {
		return nil, errors.New("no Kafka jars: set RELAY_KAFKA_LIBS (make kafka-libs fetches them)")
	}
	if _, err := os.Stat(filepath.Join(cfg.Libs, "kafka_2.13-"+Version+".jar")); err != nil {
		return nil, fmt.Errorf("Kafka %s jars not in %s (make kafka-libs): %w", Version, cfg.Libs, err)
	}
	if cfg.Heap == "" {
		cfg.Heap = "384m"
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	c := &Cluster{cfg: cfg, PKI: cfg.PKI}
	if c.PKI == nil {
		pki, err := broker.NewPKI(cfg.Dir)
		if err != nil {
			return nil, err
		}
		c.PKI = pki
	}
	id := make([]byte, 16)
	rand.Read(id)
	c.clusterID = base64.RawURLEncoding.EncodeToString(id)
	keystore := filepath.Join(cfg.Dir, "server-keystore.pem")
	if err := c.PKI.WriteServerPEM(keystore); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "log4j2.properties"), []byte(log4j), 0o644); err != nil {
		return nil, err
	}
	c.controller = &Node{ID: controllerID, c: c}
	for i := 1; i <= Brokers; i++ {
		c.nodes = append(c.nodes, &Node{ID: i, c: c})
	}
	var need int
	for _, n := range c.all() {
		need += len(n.ports)
	}
	ports, err := freePorts(need)
	if err != nil {
		return nil, err
	}
	for _, n := range c.all() {
		for i := range n.ports {
			n.ports[i], ports = ports[0], ports[1:]
		}
		n.dir = filepath.Join(cfg.Dir, fmt.Sprint("node-", n.ID))
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, err
		}
		n.props = filepath.Join(n.dir, "server.properties")
		if err := os.WriteFile(n.props, []byte(c.properties(n, keystore)), 0o644); err != nil {
			return nil, err
		}
	}
	// Formatting starts a JVM per node: in parallel.
	errs := make(chan error, len(c.all()))
	for _, n := range c.all() {
		go func() { errs <- c.format(ctx, n) }()
	}
	for range c.all() {
		if err := <-errs; err != nil {
			return nil, err
		}
	}
	for _, n := range c.all() {
		if err := n.Start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) all() []*Node { return append([]*Node{c.controller}, c.nodes...) }

// Broker is broker id (1 to Brokers).
func (c *Cluster) Broker(id int) *Node { return c.nodes[id-1] }

// Addrs is the bootstrap list of every broker's listener l.
func (c *Cluster) Addrs(l Listener) string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr(l))
	}
	return strings.Join(out, ",")
}

// Addr is the node's listener l.
func (n *Node) Addr(l Listener) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.ports[l]))
}

func (c *Cluster) properties(n *Node, keystore string) string {
	voters := fmt.Sprintf("%d@127.0.0.1:%d", controllerID, c.controller.ports[listeners])
	common := []string{
		"node.id=" + strconv.Itoa(n.ID),
		"controller.quorum.voters=" + voters,
		"controller.listener.names=CONTROLLER",
		"log.dirs=" + filepath.Join(n.dir, "data"),
		"num.partitions=3",
		"default.replication.factor=3",
		"min.insync.replicas=2",
		"unclean.leader.election.enable=false",
		"auto.create.topics.enable=false",
		"offsets.topic.replication.factor=3",
		"transaction.state.log.replication.factor=3",
		"transaction.state.log.min.isr=2",
		"group.initial.rebalance.delay.ms=0",
		"log.flush.interval.messages=9223372036854775807",
		"num.network.threads=2",
		"num.io.threads=2",
		"num.recovery.threads.per.data.dir=1",
		"background.threads=2",
	}
	if n.ID == controllerID {
		return strings.Join(append(common,
			"process.roles=controller",
			fmt.Sprintf("listeners=CONTROLLER://127.0.0.1:%d", n.ports[listeners]),
			"listener.security.protocol.map=CONTROLLER:PLAINTEXT",
		), "\n") + "\n"
	}
	ls := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,SASL_SSL://127.0.0.1:%d,SSL://127.0.0.1:%d,BROKER://127.0.0.1:%d",
		n.ports[Plaintext], n.ports[SCRAM], n.ports[MTLS], n.ports[listeners])
	return strings.Join(append(common,
		"process.roles=broker",
		"listeners="+ls,
		"advertised.listeners="+ls,
		"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"inter.broker.listener.name=BROKER",
		"sasl.enabled.mechanisms=SCRAM-SHA-512",
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
		"ssl.keystore.type=PEM",
		"ssl.keystore.location="+keystore,
		"ssl.truststore.type=PEM",
		"ssl.truststore.location="+c.PKI.CAFile,
		"ssl.endpoint.identification.algorithm=https",
		"listener.name.ssl.ssl.client.auth=required",
	), "\n") + "\n"
}

// log4j keeps the brokers' own logging to warnings on stdout.
const log4j = `status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = warn
logger.state.name = state.change.logger
logger.state.level = warn
`

// java runs a class of the broker's jars.
func (c *Cluster) java(ctx context.Context, n *Node, class string, args ...string) *exec.Cmd {
	argv := append([]string{
		"-Xms64m", "-Xmx" + c.cfg.Heap, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
		"-Dlog4j2.configurationFile=" + filepath.Join(c.cfg.Dir, "log4j2.properties"),
		"-cp", filepath.Join(c.cfg.Libs, "*"), class}, args...)
	cmd := exec.CommandContext(ctx, "java", argv...)
	// The JVM dies with the test process, whatever becomes of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (c *Cluster) format(ctx context.Context, n *Node) error {
	args := []string{"format", "-t", c.clusterID, "-c", n.props, "--ignore-formatted"}
	for user, pw := range c.cfg.SCRAMUsers {
		args = append(args, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", user, pw))
	}
	out, err := c.java(ctx, n, "kafka.tools.StorageTool", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format node %d: %w\n%s", n.ID, err, out)
	}
	return nil
}

// Start starts the node's JVM (again, after Kill or Stop).
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("node %d is running", n.ID)
	}
	cmd := n.c.java(context.Background(), n, "kafka.Kafka", n.props)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %d: %w", n.ID, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintf(n.c.cfg.Log, "[node %d] %s\n", n.ID, sc.Text())
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(exited) }()
	n.cmd, n.exited, n.stopped = cmd, exited, false
	return nil
}

// Kill kills the JVM at once (kill -9): no controlled shutdown.
func (n *Node) Kill() { n.end(syscall.SIGKILL, 0) }

// Stop shuts the broker down cleanly (SIGTERM: leadership moves first), or
// kills it after timeout.
func (n *Node) Stop(timeout time.Duration) { n.end(syscall.SIGTERM, timeout) }

func (n *Node) end(sig syscall.Signal, timeout time.Duration) {
	n.mu.Lock()
	cmd, exited, stopped := n.cmd, n.exited, n.stopped
	n.cmd = nil
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if stopped {
		cmd.Process.Signal(syscall.SIGCONT)
	}
	cmd.Process.Signal(sig)
	if timeout > 0 {
		select {
		case <-exited:
			return
		case <-time.After(timeout):
			cmd.Process.Kill()
		}
	}
	<-exited
}

// Pause freezes the JVM (SIGSTOP): its sockets stay open, nothing answers.
func (n *Node) Pause() { n.signal(syscall.SIGSTOP, true) }

// Resume thaws a paused JVM (SIGCONT).
func (n *Node) Resume() { n.signal(syscall.SIGCONT, false) }

func (n *Node) signal(sig syscall.Signal, stopped bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.cmd.Process.Signal(sig)
		n.stopped = stopped
	}
}

// Running reports whether the node's JVM is running (paused or not).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Close kills every node; Dir is the caller's to remove (t.TempDir).
func (c *Cluster) Close() {
	for _, n := range c.all() {
		n.Kill()
	}
}

// freePorts returns n distinct free ports. All n listeners stay open until
// the last is taken: closing each at once let the kernel hand the same port
// out twice, and a broker with two listeners on one port refuses to format.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
