package delay

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
)

// TestIndexWaitReplicas: with WaitReplicas, Schedule returns only once a
// replica has the message, and fails with ErrNotReplicated when none
// confirms it in time (the message then is on the master only, and the
// produce is not acknowledged).
func TestIndexWaitReplicas(t *testing.T) {
	master := testredis.Start(t)
	replica := testredis.StartArgs(t, "--replicaof", strings.Replace(master.Addr(), ":", " ", 1))
	ctx := context.Background()
	rc := replica.Client()
	require.Eventually(t, func() bool {
		info, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	}, 20*time.Second, 50*time.Millisecond, "the replica syncs")

	x := NewIndex(master.Client(), IndexConfig{WaitReplicas: 1, WaitTimeout: 2 * time.Second})
	m := Message{UID: "u-1", Topic: "persistent://t/n/a", Payload: []byte("p"), Due: time.Now().Add(time.Hour)}
	_, err := x.Schedule(ctx, m)
	require.NoError(t, err)
	n, err := rc.ZCard(ctx, "psc:delay:due").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the replica has the message when Schedule returns")

	replica.Pause() // the replica stops confirming
	defer replica.Resume()
	x2 := NewIndex(master.Client(), IndexConfig{WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	began := time.Now()
	_, err = x2.Schedule(ctx, Message{UID: "u-2", Topic: "persistent://t/n/a", Payload: []byte("p"), Due: time.Now().Add(time.Hour)})
	require.ErrorIs(t, err, ErrNotReplicated)
	require.Less(t, time.Since(began), 2*time.Second, "waits at most WaitTimeout")

	_, err = NewIndex(master.Client(), IndexConfig{WaitReplicas: 2, WaitTimeout: 100 * time.Millisecond}).
		Schedule(ctx, Message{UID: "u-3", Topic: "persistent://t/n/a", Payload: []byte("p"), Due: time.Now().Add(time.Hour)})
	require.ErrorIs(t, err, ErrNotReplicated, "one replica cannot confirm for two")
}
