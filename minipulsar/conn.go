package minipulsar

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// conn is one client connection: a reader goroutine that handles commands in
// order, and a writer goroutine that coalesces outgoing frames.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string

	wmu     sync.Mutex
	wbuf    []byte
	wclosed bool
	wake    chan struct{}

	closeOnce sync.Once
	done      chan struct{}

	// keep-alive, as Pulsar's PulsarHandler: handshake is set by CONNECT;
	// waitingPong is set when the broker pings and cleared by any frame.
	handshake   atomic.Bool
	waitingPong atomic.Bool
	kaMu        sync.Mutex
	kaStop      func() bool

	// guarded by mu: producers and consumers registered on this connection.
	mu        sync.Mutex
	producers map[uint64]*producer
	consumers map[uint64]*consumer
	connected bool
	since     time.Time
	// clientVersion is what CONNECT said (shown in producer and consumer
	// stats); set once by the reader before any producer or consumer.
	clientVersion string
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{
		s:         s,
		nc:        nc,
		remote:    nc.RemoteAddr().String(),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		producers: map[uint64]*producer{},
		consumers: map[uint64]*consumer{},
		since:     time.Now(),
	}
}

func (c *conn) serve() {
	defer c.cleanup()
	c.s.goFunc(c.writeLoop)
	c.scheduleKeepAlive()
	fr := &frameReader{
		r:       bufio.NewReaderSize(c.nc, 64*1024),
		maxSize: c.s.opts.MaxMessageSize + frameOverhead,
	}
	for {
		f, err := fr.readFrame()
		if err != nil {
			c.logReadError(err)
			return
		}
		c.waitingPong.Store(false) // any frame shows the client is alive
		if err := c.handle(f); err != nil {
			c.s.log.Warn("closing connection", "remote", c.remote, "cmd", f.cmd.GetType().String(), "err", err)
			return
		}
	}
}

// scheduleKeepAlive arms the next keep-alive check, every
// Options.KeepAlive as Pulsar's keepAliveIntervalSeconds (30 s by default).
func (c *conn) scheduleKeepAlive() {
	c.kaMu.Lock()
	defer c.kaMu.Unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.kaStop = c.s.keepAliveClock.AfterFunc(c.s.opts.KeepAlive, c.keepAliveCheck)
}

// keepAliveCheck is Pulsar's PulsarHandler.handleKeepAliveTimeout: a
// connection whose handshake is not done by the first check is closed; one
// that has sent nothing since the previous check's PING is closed; any
// other gets a PING. The broker pings whether or not the client pings on
// its own, so a client that only answers PINGs stays connected.
func (c *conn) keepAliveCheck() {
	select {
	case <-c.done:
		return
	default:
	}
	switch {
	case !c.handshake.Load():
		c.s.log.Warn("closing connection: handshake not completed within the keep-alive interval", "remote", c.remote)
		c.close()
		return
	case c.waitingPong.Load():
		c.s.log.Info("closing connection: no answer to the keep-alive PING", "remote", c.remote, "keepAlive", c.s.opts.KeepAlive)
		c.close()
		return
	}
	c.waitingPong.Store(true)
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}}, nil)
	c.scheduleKeepAlive()
}

func (c *conn) logReadError(err error) {
	select {
	case <-c.done:
		return
	default:
	}
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.s.log.Debug("connection closed by client", "remote", c.remote)
	case errors.As(err, &ne) && ne.Timeout():
		c.s.log.Info("connection timed out", "remote", c.remote)
	default:
		c.s.log.Warn("closing connection: bad frame", "remote", c.remote, "err", err)
	}
}

// close shuts the connection; the reader's cleanup detaches its producers
// and consumers.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.kaMu.Lock()
		if c.kaStop != nil {
			c.kaStop()
		}
		c.kaMu.Unlock()
		_ = c.nc.Close()
		c.wmu.Lock()
		c.wclosed = true
		c.wmu.Unlock()
		select {
		case c.wake <- struct{}{}:
		default:
		}
	})
}

func (c *conn) cleanup() {
	c.close()
	c.mu.Lock()
	prods := make([]*producer, 0, len(c.producers))
	for _, p := range c.producers {
		prods = append(prods, p)
	}
	cons := make([]*consumer, 0, len(c.consumers))
	for _, cs := range c.consumers {
		cons = append(cons, cs)
	}
	c.producers, c.consumers = map[uint64]*producer{}, map[uint64]*consumer{}
	c.mu.Unlock()
	for _, p := range prods {
		p.t.removeProducer(p)
	}
	for _, cs := range cons {
		cs.sub.t.removeConsumer(cs)
	}
	c.s.removeConn(c)
}

// send queues a frame; it never blocks on the network.
func (c *conn) send(cmd *pb.BaseCommand, payload []byte) {
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		return
	}
	var err error
	c.wbuf, err = appendFrame(c.wbuf, cmd, payload)
	c.wmu.Unlock()
	if err != nil {
		c.s.log.Error("encode command", "cmd", cmd.GetType().String(), "err", err)
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) writeLoop() {
	var spare []byte
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.wmu.Lock()
		buf := c.wbuf
		c.wbuf = spare[:0]
		closed := c.wclosed
		c.wmu.Unlock()
		if closed {
			return
		}
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.nc.Write(buf); err != nil {
				c.s.log.Info("write failed, closing connection", "remote", c.remote, "err", err)
				c.close()
				return
			}
		}
		if cap(buf) <= 1<<20 {
			spare = buf
		} else {
			spare = nil
		}
	}
}

// handle dispatches one command. A returned error closes the connection.
func (c *conn) handle(f frame) error {
	cmd := f.cmd
	if !c.connected && cmd.GetType() != pb.BaseCommand_CONNECT {
		return errors.New("first command must be CONNECT")
	}
	switch cmd.GetType() {
	case pb.BaseCommand_CONNECT:
		return c.handleConnect(cmd.GetConnect())
	case pb.BaseCommand_PING:
		c.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}}, nil)
	case pb.BaseCommand_PONG:
	case pb.BaseCommand_PARTITIONED_METADATA:
		c.handlePartitionedMetadata(cmd.GetPartitionMetadata())
	case pb.BaseCommand_LOOKUP:
		c.handleLookup(cmd.GetLookupTopic())
	case pb.BaseCommand_GET_TOPICS_OF_NAMESPACE:
		c.handleGetTopicsOfNamespace(cmd.GetGetTopicsOfNamespace())
	case pb.BaseCommand_PRODUCER:
		c.handleProducer(cmd.GetProducer())
	case pb.BaseCommand_SEND:
		return c.handleSend(cmd.GetSend(), f)
	case pb.BaseCommand_CLOSE_PRODUCER:
		c.handleCloseProducer(cmd.GetCloseProducer())
	case pb.BaseCommand_SUBSCRIBE:
		c.handleSubscribe(cmd.GetSubscribe())
	case pb.BaseCommand_FLOW:
		c.handleFlow(cmd.GetFlow())
	case pb.BaseCommand_ACK:
		c.handleAck(cmd.GetAck())
	case pb.BaseCommand_REDELIVER_UNACKNOWLEDGED_MESSAGES:
		c.handleRedeliver(cmd.GetRedeliverUnacknowledgedMessages())
	case pb.BaseCommand_SEEK:
		c.handleSeek(cmd.GetSeek())
	case pb.BaseCommand_UNSUBSCRIBE:
		c.handleUnsubscribe(cmd.GetUnsubscribe())
	case pb.BaseCommand_CLOSE_CONSUMER:
		c.handleCloseConsumer(cmd.GetCloseConsumer())
	case pb.BaseCommand_GET_LAST_MESSAGE_ID:
		c.handleGetLastMessageID(cmd.GetGetLastMessageId())
	case pb.BaseCommand_CONSUMER_STATS:
		c.handleConsumerStats(cmd.GetConsumerStats())
	case pb.BaseCommand_GET_SCHEMA:
		c.handleGetSchema(cmd.GetGetSchema())
	case pb.BaseCommand_GET_OR_CREATE_SCHEMA:
		c.handleGetOrCreateSchema(cmd.GetGetOrCreateSchema())
	case pb.BaseCommand_AUTH_RESPONSE:
		// No challenges are ever sent; a stray response is ignored.
	default:
		id, ok := requestIDOf(cmd)
		if !ok {
			return errors.New("unsupported command without a request id: " + cmd.GetType().String())
		}
		c.s.log.Info("unsupported command answered with ERROR", "remote", c.remote, "cmd", cmd.GetType().String())
		c.sendError(id, pb.ServerError_NotAllowedError, errUnsupported+cmd.GetType().String())
	}
	return nil
}

// requestIDOf finds the request id of a request minipulsar does not serve.
func requestIDOf(cmd *pb.BaseCommand) (uint64, bool) {
	for _, r := range []*pb.RequestOnly{cmd.GetNewTxn(), cmd.GetAddPartitionToTxn(), cmd.GetAddSubscriptionToTxn(),
		cmd.GetEndTxn(), cmd.GetTcClientConnectRequest(), cmd.GetWatchTopicList()} {
		if r != nil {
			return r.GetRequestId(), true
		}
	}
	return 0, false
}

func (c *conn) handleConnect(m *pb.CommandConnect) error {
	if c.connected {
		return errors.New("second CONNECT on one connection")
	}
	if !c.authenticate(m) {
		return nil // refused: the client closes the connection on the ERROR
	}
	c.connected = true
	c.handshake.Store(true)
	c.clientVersion = m.GetClientVersion()
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECTED.Enum(), Connected: &pb.CommandConnected{
		ServerVersion:   proto.String(Version),
		ProtocolVersion: proto.Int32(20),
		MaxMessageSize:  proto.Int32(int32(c.s.opts.MaxMessageSize)),
		FeatureFlags:    &pb.FeatureFlags{SupportsAuthRefresh: proto.Bool(false), SupportsTopicWatchers: proto.Bool(false)},
	}}, nil)
	return nil
}

func (c *conn) sendError(requestID uint64, code pb.ServerError, msg string) {
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_ERROR.Enum(), Error: &pb.CommandError{
		RequestId: proto.Uint64(requestID),
		Error:     code.Enum(),
		Message:   proto.String(msg),
	}}, nil)
}

func (c *conn) sendSuccess(requestID uint64) {
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_SUCCESS.Enum(), Success: &pb.CommandSuccess{RequestId: proto.Uint64(requestID)}}, nil)
}

// Error messages sent to clients.
const (
	errUnsupported      = "minipulsar does not support "
	errSchemaNotFound   = "Topic not found or no-schema"
	errTopicNotFound    = "topic not found"
	errProducerBusy     = "producer with the same name is already connected"
	errExclusiveHeld    = "Topic has an existing exclusive producer: "
	errSharedHeld       = "Topic has existing shared producers"
	errFencedOut        = "Fenced out"
	errTopicTerminated  = "Topic was already terminated"
	errConsumerBusy     = "exclusive subscription already has a consumer"
	errSubTypeMismatch  = "subscription is of another type"
	errConsumerNotFound = "consumer not found"
	errInjected         = "injected failure"
	errLookupRefused    = "lookups refused (fault injection)"
	errHasConsumers     = "subscription has other consumers connected"
	errProducerNotFound = "producer not found on this connection"
	errTooManyMessages  = "num_messages does not match the metadata"
)
