package tracer

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// countingSource is a messageSource of n messages (uids m-00000...,
// ascending); message i is consumed unless rejected(i), then it is only
// persisted. It records the size of every candidate batch asked for.
type countingSource struct {
	n        int
	rejected func(i int) bool
	batches  []int
}

func (c *countingSource) uidsAfter(_ context.Context, _ *Query, after string, n int) ([]string, error) {
	c.batches = append(c.batches, n)
	var out []string
	for i := 0; i < c.n && len(out) < n; i++ {
		if uid := fmt.Sprintf("m-%05d", i); uid > after {
			out = append(out, uid)
		}
	}
	return out, nil
}

func (c *countingSource) eventsOf(_ context.Context, uids []string) (map[string][]Event, error) {
	out := map[string][]Event{}
	for _, uid := range uids {
		var i int
		if _, err := fmt.Sscanf(uid, "m-%05d", &i); err != nil {
			return nil, err
		}
		out[uid] = []Event{{UID: uid, Type: Persisted}}
		if !c.rejected(i) {
			out[uid] = append(out[uid], Event{UID: uid, Type: Acked})
		}
	}
	return out, nil
}

// TestSearchMessagesCandidateBatches: with a status filter every candidate
// of which passes, a page reads the page's worth of candidates (plus one,
// to know there is more), not four pages' worth; once candidates are
// rejected, later batches grow, and a page never reads more than
// messageRounds batches.
func TestSearchMessagesCandidateBatches(t *testing.T) {
	ctx := context.Background()
	consumed := MessageQuery{Statuses: []Status{StatusConsumed}}

	all := &countingSource{n: 5000, rejected: func(int) bool { return false }}
	res, err := searchMessages(ctx, all, consumed, Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, res.Rows, 100)
	require.NotEmpty(t, res.Next)
	require.Equal(t, []int{101}, all.batches)

	// Without a filter, the same single batch.
	all.batches = nil
	res, err = searchMessages(ctx, all, MessageQuery{}, Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, res.Rows, 100)
	require.Equal(t, []int{101}, all.batches)

	// One in ten rejected: the first batch leaves the page short, the
	// second (larger) fills it; the rows are the first 100 consumed ones.
	some := &countingSource{n: 5000, rejected: func(i int) bool { return i%10 == 3 }}
	res, err = searchMessages(ctx, some, consumed, Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, res.Rows, 100)
	require.Equal(t, []int{101, 400}, some.batches)
	require.Equal(t, "m-00110", res.Rows[99].UID)
	for _, r := range res.Rows {
		require.Equal(t, StatusConsumed, r.Status)
	}
	next, err := searchMessages(ctx, some, consumed, Page{Limit: 100, Cursor: res.Next})
	require.NoError(t, err)
	require.Equal(t, "m-00111", next.Rows[0].UID)

	// Almost all rejected: the page stops after messageRounds batches,
	// short, with a cursor past every candidate it read.
	rare := &countingSource{n: 100_000, rejected: func(i int) bool { return i%5000 != 0 }}
	res, err = searchMessages(ctx, rare, consumed, Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, rare.batches, messageRounds)
	read := 0
	for _, n := range rare.batches {
		read += n
	}
	require.Equal(t, 101+(messageRounds-1)*400, read)
	require.Len(t, res.Rows, 1) // m-00000
	require.NotEmpty(t, res.Next)
	last, err := decodeMessageCursor(res.Next)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("m-%05d", read-1), last)
}
