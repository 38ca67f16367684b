package app

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPulsarClientNoiseDemoted: the client's ERROR lines about a consumer
// that is closing are dropped (they said nothing failed, issue 14); the
// same message with another error, and any other ERROR, still shows.
func TestPulsarClientNoiseDemoted(t *testing.T) {
	var buf bytes.Buffer
	l := pulsarLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.WithField("consumerID", 3).Error("Failed to redeliver closing or closed consumer")
	l.WithError(errors.New("consumer closing or closed")).Error("unable to send initial permits to broker")
	require.Empty(t, buf.String(), "closing-consumer noise is not logged")

	l.WithError(errors.New("connection reset")).Error("unable to send initial permits to broker")
	require.Contains(t, buf.String(), "connection reset", "a real failure still shows")
	buf.Reset()
	l.Error("Failed to create producer")
	require.Contains(t, buf.String(), "level=ERROR")
	buf.Reset()
	l.Info("Connected consumer")
	require.Empty(t, buf.String(), "below warn, as before")
}
