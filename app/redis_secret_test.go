package app

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
)

// TestRedisPasswordFileRotation: the sidecar logs in as an ACL user whose
// password it reads from redis.passwordFile at every new connection. The
// operator rotates the password (ACL SETUSER on Redis, the new value in
// the mounted file) and drops the user's connections: the sidecar's next
// connections use the new password, and keyed produce keeps its
// idempotency check (no duplicateRisk) without a restart.
func TestRedisPasswordFileRotation(t *testing.T) {
	rds := testredis.StartArgs(t, aclUser("sidecar", "first-pw")...)
	pwFile := secretFile(t, "first-pw")
	h := startOn(t, func(t testing.TB, cfg *config.Config) {
		cfg.Redis.Addr = rds.Addr()
		cfg.Redis.Username = "sidecar"
		cfg.Redis.PasswordFile = pwFile
	}, nil)
	path, _ := newTopic(t)
	produceKeyed := func(key string) response {
		t.Helper()
		res := h.produceJSON(path, `{"messages":[{"payload":"p","idempotencyKey":"`+key+`"}]}`)
		require.Equal(t, http.StatusOK, res.Status, res.Raw)
		return res
	}
	require.False(t, produceKeyed("before").Results[0].DuplicateRisk)

	admin := rds.Client()
	ctx := t.Context()
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", "sidecar", "resetpass", ">second-pw").Err())
	require.NoError(t, os.WriteFile(pwFile, []byte("second-pw\n"), 0o600))
	killed, err := admin.Do(ctx, "CLIENT", "KILL", "USER", "sidecar").Int()
	require.NoError(t, err)
	require.Positive(t, killed, "the sidecar's connections were logged in as sidecar")

	// go-redis notices a killed connection when it next uses it; keep
	// producing until the fresh connections answer.
	require.Eventually(t, func() bool {
		status, res, err := postJSON(h, path, `{"messages":[{"payload":"p","idempotencyKey":"after"}]}`)
		return err == nil && status == http.StatusOK && !res.Results[0].DuplicateRisk
	}, 10*time.Second, 100*time.Millisecond, "produce with the idempotency check on the rotated password")
	res := produceKeyed("before")
	require.True(t, res.Results[0].Duplicate, "the record written before the rotation is read after it: %s", res.Raw)
	n, err := admin.Do(ctx, "CLIENT", "KILL", "USER", "sidecar").Int()
	require.NoError(t, err)
	require.Positive(t, n, "the sidecar reconnected as sidecar, with the password from the file")
}
