package consume

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// PeekedMessage is one message of a subscription's backlog, as the admin
// API shows it.
type PeekedMessage struct {
	Partition   int32 // 0 on a non-partitioned topic
	Ledger      int64
	Entry       int64
	BatchIdx    int32 // index in the batch; 0 when the entry is not a batch, as pulsar-client-go numbers it
	Properties  map[string]string
	PublishTime time.Time
}

// Peeker reads a subscription's unacknowledged entries in order.
// Implementations are safe for concurrent use.
type Peeker interface {
	// Partitions is the topic's partition count; 0 when not partitioned.
	Partitions(ctx context.Context, topic string) (int, error)
	// Peek returns the messages of the pos-th (1-based) unacknowledged
	// entry of subscription on topic (a partition's name on a partitioned
	// topic), and false when the backlog has fewer entries.
	Peek(ctx context.Context, topic, subscription string, pos int) ([]PeekedMessage, bool, error)
	// Cursor returns a token of the subscription's cursor on topic that
	// changes whenever acknowledgements remove entries from its backlog;
	// "" when the topic has no such subscription.
	Cursor(ctx context.Context, topic, subscription string) (string, error)
}

// AdminPeeker peeks through the Pulsar admin REST API at baseURL (the
// broker's web service URL), with token as its bearer token when not
// empty: PeekerOf over a client of its own.
func AdminPeeker(baseURL, token string) (Peeker, error) {
	c, err := pulsaradm.New(&config.Config{WebServiceURL: baseURL, Token: token})
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	return PeekerOf(c), nil
}

// PeekerOf peeks through the sidecar's admin client c. It reads batches
// itself (wire.DecodeEntry): pulsaradmin's PeekMessages gives every
// message of a batch the properties of the last one.
func PeekerOf(c *pulsaradm.Client) Peeker { return &adminPeeker{c: c} }

type adminPeeker struct{ c *pulsaradm.Client }

// peekTimeout bounds one admin call of the peeker.
const peekTimeout = 10 * time.Second

// get sends GET <topic's admin path>/<path> under peekTimeout; closing
// the body ends the call.
func (p *adminPeeker) get(ctx context.Context, topic, path string) (*http.Response, error) {
	tn, err := utils.GetTopicName(topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, peekTimeout)
	resp, err := p.c.Get(ctx, *tn, path)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func (p *adminPeeker) Partitions(ctx context.Context, topic string) (int, error) {
	resp, err := p.get(ctx, topic, "partitions")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("partitions of %s: HTTP %d", topic, resp.StatusCode)
	}
	var meta struct {
		Partitions int `json:"partitions"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&meta); err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return meta.Partitions, nil
}

func (p *adminPeeker) Peek(ctx context.Context, topic, subscription string, pos int) ([]PeekedMessage, bool, error) {
	resp, err := p.get(ctx, topic, "subscription/"+url.PathEscape(subscription)+"/position/"+strconv.Itoa(pos))
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, false, fmt.Errorf("peek %s %s at %d: HTTP %d: %s", topic, subscription, pos, resp.StatusCode, bytes.TrimSpace(body))
	}
	body, err := wire.ReadEntry(resp.Body)
	if err != nil {
		return nil, false, fmt.Errorf("peek %s %s at %d: %w", topic, subscription, pos, err)
	}
	msgs, err := parsePeeked(topic, resp.Header, body)
	return msgs, err == nil, err
}

// maxStatsBytes bounds one internalStats answer (it lists every ledger and cursor).
const maxStatsBytes = 16 << 20

func (p *adminPeeker) Cursor(ctx context.Context, topic, subscription string) (string, error) {
	resp, err := p.get(ctx, topic, "internalStats")
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return "", fmt.Errorf("internal stats of %s: HTTP %d: %s", topic, resp.StatusCode, bytes.TrimSpace(body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatsBytes))
	if err != nil {
		return "", err
	}
	return cursorToken(body, subscription)
}

// cursorToken reads subscription's cursor from a topic's internalStats
// answer: its mark-delete position and individually deleted ranges, which
// together say which entries acknowledgements removed.
func cursorToken(body []byte, subscription string) (string, error) {
	var st struct {
		Cursors map[string]struct {
			MarkDelete string `json:"markDeletePosition"`
			Deleted    string `json:"individuallyDeletedMessages"`
		} `json:"cursors"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", fmt.Errorf("internal stats: %w", err)
	}
	c, ok := st.Cursors[subscription]
	if !ok {
		return "", nil
	}
	return c.MarkDelete + " " + c.Deleted, nil
}

// parsePeeked reads one peeked entry (wire.DecodeEntry): its messages,
// each with the entry's position and its own properties.
func parsePeeked(topic string, h http.Header, body []byte) ([]PeekedMessage, error) {
	part := int32(0)
	if tn, err := utils.GetTopicName(topic); err == nil && tn.GetPartitionIndex() >= 0 {
		part = int32(tn.GetPartitionIndex())
	}
	ledger, entry, err := parseLedgerEntry(h.Get("X-Pulsar-Message-ID"))
	if err != nil {
		return nil, err
	}
	msgs, err := wire.DecodeEntry(h, body)
	if err != nil {
		return nil, fmt.Errorf("peeked entry %d:%d: %w", ledger, entry, err)
	}
	out := make([]PeekedMessage, len(msgs))
	for i, m := range msgs {
		out[i] = PeekedMessage{Partition: part, Ledger: ledger, Entry: entry, BatchIdx: m.BatchIndex,
			Properties: m.Properties, PublishTime: m.PublishTime}
	}
	return out, nil
}

func parseLedgerEntry(s string) (int64, int64, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("peeked message id %q", s)
	}
	l, err1 := strconv.ParseInt(parts[0], 10, 64)
	e, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("peeked message id %q", s)
	}
	return l, e, nil
}

// BacklogFunc returns a subscription's backlog (unacknowledged messages)
// on the primary cluster.
type BacklogFunc func(ctx context.Context, topic, subscription string) (int64, error)

// AdminBacklog reads backlogs through the Pulsar admin API: topic stats,
// or partitioned stats summed over partitions.
func AdminBacklog(admin pulsaradmin.Client) BacklogFunc {
	return func(ctx context.Context, topic, subscription string) (int64, error) {
		tn, err := utils.GetTopicName(topic)
		if err != nil {
			return 0, err
		}
		var subs map[string]utils.SubscriptionStats
		meta, err := admin.Topics().GetMetadataWithContext(ctx, *tn)
		if err == nil && meta.Partitions > 0 {
			ps, err := admin.Topics().GetPartitionedStatsWithContext(ctx, *tn, false)
			if err != nil {
				return 0, err
			}
			subs = ps.Subscriptions
		} else {
			ts, err := admin.Topics().GetStatsWithContext(ctx, *tn)
			if err != nil {
				return 0, err
			}
			subs = ts.Subscriptions
		}
		s, ok := subs[subscription]
		if !ok {
			return 0, fmt.Errorf("no subscription %q on %s", subscription, topic)
		}
		return s.MsgBacklog, nil
	}
}
