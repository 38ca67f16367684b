package durable

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"
	"github.com/pulsar-sidecar/pulsar-sidecar/spool"
)

func TestRetriable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"attempt timeout", errAttemptTimeout, true},
		{"hand-over deadline", context.DeadlineExceeded, true},
		{"pool closed", fmt.Errorf("x: %w", produce.ErrPoolClosed), true},
		{"send timeout", pulsar.ErrSendTimeout, true},
		{"context expired in the client", pulsar.ErrContextExpired, true},
		{"queue full", pulsar.ErrSendQueueIsFull, true},
		{"memory full", pulsar.ErrMemoryBufferIsFull, true},
		{"producer closed (recycled by the pool)", pulsar.ErrProducerClosed, true},
		{"producer fenced", pulsar.ErrProducerFenced, true},
		{"blocked by quota", pulsar.ErrProducerBlockedQuotaExceeded, true},
		{"message too large", pulsar.ErrMessageTooLarge, false},
		{"metadata too large", pulsar.ErrMetaTooLarge, false},
		{"invalid message", pulsar.ErrInvalidMessage, false},
		{"topic not found, joined", errors.Join(pulsar.ErrTopicNotfound, errors.New("server error")), false},
		{"topic terminated", pulsar.ErrTopicTerminated, false},
		{"schema", pulsar.ErrSchema, false},
		{"server: producer busy", errors.New("server error: ProducerBusy: producer with name x is already connected"), true},
		{"server: service not ready", errors.New("server error: ServiceNotReady: topic unloading"), true},
		{"server: persistence", errors.New("server error: PersistenceError: bookie down"), true},
		{"server: not allowed", errors.New("server error: NotAllowedError: producers not allowed"), false},
		{"server: authorization", errors.New("server error: AuthorizationError: not authorized"), false},
		{"server: invalid topic", errors.New("server error: InvalidTopicName: bad"), false},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{"unknown", errors.New("something else"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Retriable(tt.err), "%v", tt.err)
		})
	}
}

func TestSpoolErrorMapping(t *testing.T) {
	s := &Sender{met: unseenMetrics()}
	tests := []struct {
		in     error
		want   error
		result string
	}{
		{fmt.Errorf("%w: 10 of 10 bytes used", spool.ErrFull), ErrSpoolFull, "full"},
		{fmt.Errorf("%w: segment 3: write: %w", spool.ErrWrite, syscall.ENOSPC), ErrSpoolFull, "full"},
		{fmt.Errorf("%w: segment 3: %w", spool.ErrWrite, errors.New("input/output error")), ErrSpoolWrite, "error"},
		{spool.ErrClosed, ErrClosed, "closed"},
		{fmt.Errorf("spool: append outcome unknown: %w", context.DeadlineExceeded), context.DeadlineExceeded, "timeout"},
		{fmt.Errorf("%w: 5000000 bytes", spool.ErrTooLarge), ErrRejected, "rejected"},
	}
	for _, tt := range tests {
		result, err := s.spoolError(tt.in)
		require.ErrorIs(t, err, tt.want, "%v", tt.in)
		assert.Equal(t, tt.result, result, "%v", tt.in)
	}
	assert.Greater(t, s.spoolFullAt.Load(), int64(0))
	assert.WithinDuration(t, time.Now(), time.Unix(0, s.spoolFullAt.Load()), time.Minute)
}
