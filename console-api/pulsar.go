package consoleapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/pulsaradm"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// PulsarAdmin is the Broker of one Pulsar cluster, over its admin REST API
// (the sidecar's one admin client, pulsaradm). Stats, internal stats and
// partition metadata go through pulsaradmin. Message content is read from
// GET .../ledger/{L}/entry/{E} directly (with the same authentication),
// because pulsaradmin v0.19.0's GetMessagesByID shares one properties map
// between all messages of a batch entry, so every message of a batch would
// show the last one's psc-uid; the entry is split by wire.DecodeEntry with
// each message's own metadata.
type PulsarAdmin struct {
	admin  pulsaradmin.Client
	client *pulsaradm.Client
}

var _ Broker = (*PulsarAdmin)(nil)

// MaxEntryBytes bounds the entry read from the broker for one message (a
// batch entry holds all of its messages).
const MaxEntryBytes = wire.MaxEntryBytes

// NewPulsarAdmin builds the Broker for the cluster whose admin URL (and
// authentication, TLS) cfg names, e.g. &config.Config{WebServiceURL:
// "http://127.0.0.1:8080"}. It sends nothing until asked.
func NewPulsarAdmin(cfg *config.Config) (*PulsarAdmin, error) {
	c, err := pulsaradm.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("consoleapi: %w", err)
	}
	return PulsarAdminOf(c), nil
}

// PulsarAdminOf is the Broker over an admin client the caller shares.
func PulsarAdminOf(c *pulsaradm.Client) *PulsarAdmin {
	return &PulsarAdmin{admin: c.Admin(), client: c}
}

// Close releases idle connections. It is idempotent.
func (p *PulsarAdmin) Close() error { return p.client.Close() }

func topicName(topic string) (utils.TopicName, error) {
	tn, err := utils.GetTopicName(topic)
	if err != nil {
		return utils.TopicName{}, fmt.Errorf("consoleapi: topic %q: %w", topic, err)
	}
	return *tn, nil
}

// adminError turns pulsaradmin's 404 into ErrTopicNotFound.
func adminError(what string, err error) error {
	var re rest.Error
	if errors.As(err, &re) && re.Code == http.StatusNotFound {
		return fmt.Errorf("%s: %w (%s)", what, ErrTopicNotFound, re.Reason)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Partitions implements Broker.
func (p *PulsarAdmin) Partitions(ctx context.Context, topic string) (int, error) {
	tn, err := topicName(topic)
	if err != nil {
		return 0, err
	}
	if tn.GetPartitionIndex() >= 0 { // a partition's own name
		return 0, nil
	}
	md, err := p.admin.Topics().GetMetadataWithContext(ctx, tn)
	if err != nil {
		return 0, adminError("partition metadata", err)
	}
	return md.Partitions, nil
}

// Cursors implements Broker.
func (p *PulsarAdmin) Cursors(ctx context.Context, topic string) (map[string]Cursor, error) {
	tn, err := topicName(topic)
	if err != nil {
		return nil, err
	}
	st, err := p.admin.Topics().GetInternalStatsWithContext(ctx, tn)
	if err != nil {
		return nil, adminError("internal stats", err)
	}
	out := make(map[string]Cursor, len(st.Cursors))
	for name, cs := range st.Cursors {
		out[name] = cursorFromStats(cs.MarkDeletePosition, cs.IndividuallyDeletedMessages)
	}
	return out, nil
}

// cursorFromStats parses a cursor; a part that does not parse is left out
// and the cursor says so (ParseError), so that it decides nothing.
func cursorFromStats(markDelete, ranges string) Cursor {
	c := Cursor{}
	c.Raw.MarkDelete, c.Raw.IndividuallyDeleted = markDelete, ranges
	md, err := ParsePosition(markDelete)
	if err != nil {
		c.ParseError = err.Error()
		c.MarkDelete = Position{Entry: -1}
		return c
	}
	c.MarkDelete = md
	rs, err := ParseRanges(ranges)
	if err != nil {
		c.ParseError = err.Error()
		return c
	}
	c.IndividuallyDeleted = rs
	return c
}

// Stats implements Broker.
func (p *PulsarAdmin) Stats(ctx context.Context, topic string) (*TopicStats, error) {
	tn, err := topicName(topic)
	if err != nil {
		return nil, err
	}
	n, err := p.Partitions(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := &TopicStats{Topic: tn.String(), Partitions: n}
	var subs map[string]utils.SubscriptionStats
	if n > 0 {
		st, err := p.admin.Topics().GetPartitionedStatsWithContext(ctx, tn, false)
		if err != nil {
			return nil, adminError("partitioned stats", err)
		}
		out.MsgRateIn, out.MsgRateOut, out.StorageSize, subs = st.MsgRateIn, st.MsgRateOut, st.StorageSize, st.Subscriptions
	} else {
		st, err := p.admin.Topics().GetStatsWithContext(ctx, tn)
		if err != nil {
			return nil, adminError("stats", err)
		}
		out.MsgRateIn, out.MsgRateOut, out.StorageSize, subs = st.MsgRateIn, st.MsgRateOut, st.StorageSize, st.Subscriptions
	}
	out.Subscriptions = make([]SubscriptionStats, 0, len(subs))
	for name, s := range subs {
		ss := SubscriptionStats{
			Name: name, Type: s.SubType, MsgBacklog: s.MsgBacklog, MsgBacklogNoDelayed: s.MsgBacklogNoDelayed,
			MsgDelayed: s.MsgDelayed, UnackedMessages: s.UnAckedMessages, BacklogBytes: s.BacklogSize,
			MsgRateOut: s.MsgRateOut, MsgRateRedeliver: s.MsgRateRedeliver, Consumers: []ConsumerStats{},
		}
		if s.EarliestMsgPublishTimeInBacklog > 0 {
			t := time.UnixMilli(s.EarliestMsgPublishTimeInBacklog).UTC()
			ss.OldestBacklogTime = &t
		}
		for _, c := range s.Consumers {
			ss.Consumers = append(ss.Consumers, ConsumerStats{Name: c.ConsumerName, Address: c.Address,
				UnackedMessages: int64(c.UnAckedMessages), ConnectedSince: c.ConnectedSince})
		}
		out.Subscriptions = append(out.Subscriptions, ss)
	}
	sort.Slice(out.Subscriptions, func(i, j int) bool { return out.Subscriptions[i].Name < out.Subscriptions[j].Name })
	return out, nil
}

// Message implements Broker.
func (p *PulsarAdmin) Message(ctx context.Context, topic string, id MessageID) (*BrokerMessage, error) {
	tn, err := topicName(topic)
	if err != nil {
		return nil, err
	}
	res, err := p.client.Get(ctx, tn, "ledger/"+strconv.FormatInt(id.Ledger, 10)+"/entry/"+strconv.FormatInt(id.Entry, 10))
	if err != nil {
		return nil, fmt.Errorf("consoleapi: message %s: %w", id, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
		_ = res.Body.Close()
	}()
	if res.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("message %s on %s: %w", id, tn.String(), ErrNotRetained)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return nil, fmt.Errorf("consoleapi: message %s: broker answered %s: %s", id, res.Status, strings.TrimSpace(string(b)))
	}
	body, err := wire.ReadEntry(res.Body)
	if err != nil {
		return nil, fmt.Errorf("consoleapi: message %s: %w", id, err)
	}
	return decodeEntry(tn.String(), id, res.Header, body)
}
