package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/testredis"
	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// aclUser is an ACL user for the test servers, as redis-server arguments.
func aclUser(name, password string) []string {
	return []string{"--user", name, "on", ">" + password, "~*", "&*", "+@all"}
}

// secretFile writes a mounted-secret style file (with the trailing newline
// kubectl and editors leave) and returns its path.
func secretFile(t testing.TB, value string) string {
	path := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(path, []byte(value+"\n"), 0o600))
	return path
}

// tlsRedis is a TLS-only redis-server that wants a client certificate
// (tls-auth-clients yes), with a CA and certificates the test makes; the
// sidecar checks the server's certificate against that CA and its address
// (127.0.0.1, an IP SAN), shows its own certificate, and logs in as an ACL
// user whose password it reads from a file.
func tlsRedis(t testing.TB, cfg *config.Config) {
	ca := testredis.NewCA(t, "redis-test-ca")
	s := testredis.StartTLS(t, ca, true, aclUser("sidecar", "s3cret-pw")...)
	cert, key := ca.Issue("sidecar", "sidecar")
	cfg.Redis.Addr = s.Addr()
	cfg.Redis.Username = "sidecar"
	cfg.Redis.PasswordFile = secretFile(t, "s3cret-pw")
	cfg.Redis.TLS = config.RedisTLS{Enabled: true, CAFile: ca.CAFile, CertFile: cert, KeyFile: key}
}

// clusterRedis is a Redis Cluster of three masters; the sidecar gets every
// node as a seed in redis.addrs.
func clusterRedis(t testing.TB, cfg *config.Config) {
	c := testredis.StartCluster(t, 3)
	cfg.Redis.Addr = ""
	cfg.Redis.Addrs = strings.Join(c.Addrs(), ",")
}

// The produce (keyed), delay (levels and wheel) and consume end-to-end
// tests, each on a sidecar of its own, on a Redis that topo starts.
func runOnRedis(t *testing.T, topo redisTopology) {
	for name, run := range map[string]func(t *testing.T){
		"IdempotencySequentialRetries": func(t *testing.T) { testIdempotencySequentialRetries(t, startOn(t, topo, nil)) },
		"IdempotencyConcurrentRetries": func(t *testing.T) { testIdempotencyConcurrentRetries(t, startOn(t, topo, nil)) },
		"IdempotencyKeyReused":         func(t *testing.T) { testIdempotencyKeyReused(t, startOn(t, topo, nil)) },
		"DelayedDeliveryToEverySubscriptionType": func(t *testing.T) {
			testDelayedDeliveryToEverySubscriptionType(t, startOn(t, topo, nil))
		},
		"DelayedCancelListReschedule": func(t *testing.T) { testDelayedCancelListReschedule(t, startOn(t, topo, nil)) },
		"ConsumeOverHTTPWithTrace":    func(t *testing.T) { testConsumeOverHTTPWithTrace(t, startAppOn(t, topo, nil)) },
	} {
		t.Run(name, run)
	}
}

// TestRedisTLS: the sidecar's idempotency, delay and consume flows through
// a redis-server that speaks only TLS and wants a client certificate.
func TestRedisTLS(t *testing.T) { runOnRedis(t, tlsRedis) }

// TestRedisCluster: the same flows on a Redis Cluster of three masters,
// where every script's keys must share a slot (CROSSSLOT otherwise).
func TestRedisCluster(t *testing.T) { runOnRedis(t, clusterRedis) }

// TestRedisTLSUntrusted: a Redis whose certificate the configured CA did
// not sign is refused, and the sidecar does not start on it; so is a
// certificate that does not name the address, a missing client certificate
// where the server wants one, and a wrong ACL password.
func TestRedisTLSUntrusted(t *testing.T) {
	ca := testredis.NewCA(t, "redis-test-ca")
	other := testredis.NewCA(t, "someone-else")
	s := testredis.StartTLS(t, ca, false, aclUser("sidecar", "s3cret-pw")...)
	mtls := testredis.StartTLS(t, ca, true)
	broker := minipulsar.RunT(t)
	good := config.RedisTLS{Enabled: true, CAFile: ca.CAFile}
	for name, tc := range map[string]struct {
		addr     string
		tls      config.RedisTLS
		password string // of the ACL user sidecar, from a file
		want     string
	}{
		"other CA":       {s.Addr(), config.RedisTLS{Enabled: true, CAFile: other.CAFile}, "", "certificate signed by unknown authority"},
		"system roots":   {s.Addr(), config.RedisTLS{Enabled: true}, "", "certificate signed by unknown authority"},
		"wrong name":     {s.Addr(), config.RedisTLS{Enabled: true, CAFile: ca.CAFile, ServerName: "redis.example.com"}, "", "redis.example.com"},
		"no client key":  {mtls.Addr(), good, "", "certificate required"},
		"wrong password": {s.Addr(), good, "not-it", "WRONGPASS"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t, broker, nil)
			cfg.Redis.Addr = tc.addr
			cfg.Redis.TLS = tc.tls
			if tc.password != "" {
				cfg.Redis.Username = "sidecar"
				cfg.Redis.PasswordFile = secretFile(t, tc.password)
			}
			a, err := New(cfg, WithLogger(testLogger(t)))
			require.NoError(t, err)
			err = a.Start(context.Background())
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}
