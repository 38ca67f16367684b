package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

// Key prefixes on Redis Cluster (docs/adr/090-redis-topologies.md). A Lua
// script may only touch keys of one slot, so the keys that one script
// touches carry one hash tag: the whole delay index (its scripts read the
// due set, the uid hash and the message bodies together) and the
// subscription registry (a hash and its two index sets). Idempotency
// records are one key each, and each subscription's delivery state
// already carries its own tag ({<binding>}), so those keep their names.
// On a single server and with Sentinel the names stay as they always were,
// so an upgrade finds its data.
const (
	clusterDelayPrefix    = "psc:{delay}:"
	clusterRegistryPrefix = "psc:{registry}:"
)

// redisOptions builds the go-redis universal options from the Redis
// settings: one server, Sentinel or Cluster, with ACL user, passwords (or
// their files) and TLS.
func redisOptions(cfg *config.Config, addrs []string) (*redis.UniversalOptions, error) {
	rc := &cfg.Redis
	password, sentinelPassword, err := rc.Secrets()
	if err != nil {
		return nil, err
	}
	o := &redis.UniversalOptions{
		Addrs:            addrs,
		MasterName:       rc.MasterName,
		Username:         rc.Username,
		Password:         password,
		SentinelUsername: rc.SentinelUsername,
		SentinelPassword: sentinelPassword,
		DB:               rc.DB,
		DialTimeout:      rc.Timeout,
		ReadTimeout:      rc.Timeout,
		WriteTimeout:     rc.Timeout,
		DisableIdentity:  true, // CLIENT SETINFO needs Redis 7.2
		// One dial attempt: while Redis is down every produce call would
		// otherwise spend redis.timeout on dial retries (ADR 030).
		DialerRetries: 1,
		PoolSize:      rc.PoolSize,
	}
	if rc.PasswordFile != "" {
		// Read at every new connection: a rotated secret is used from the
		// next connection on (existing ones stay logged in, as Redis keeps
		// them). Read once above too, so a missing file fails the start.
		username := rc.Username
		o.CredentialsProviderContext = func(context.Context) (string, string, error) {
			pw, err := rc.ReadPasswordFile()
			return username, pw, err
		}
	}
	if rc.TLS.Enabled {
		if o.TLSConfig, err = redisTLS(&rc.TLS); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// redisTLS is the client TLS configuration: the CA file (else the system's
// roots), an optional client certificate, and the server name (else the
// host dialled, which crypto/tls fills in).
func redisTLS(t *config.RedisTLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("app: redis.tls.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("app: redis.tls.caFile %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("app: redis.tls.certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// newRedis returns a client for the configured topology; tweak adjusts the
// options (the consume service's client has its own timeouts and no
// retries).
func (a *App) newRedis(tweak func(*redis.UniversalOptions)) (redis.UniversalClient, error) {
	addrs := a.cfg.Redis.AddrList()
	if a.mredis != nil {
		addrs = []string{a.mredis.Addr()}
	}
	o, err := redisOptions(&a.cfg, addrs)
	if err != nil {
		return nil, err
	}
	if tweak != nil {
		tweak(o)
	}
	c := redis.NewUniversalClient(o)
	if a.mredis != nil {
		// Commands wait while the embedded Redis copies its keyspace for
		// a snapshot, so the copy is consistent.
		c.AddHook(a.mredis.Hook())
	}
	return c, nil
}

// delayPrefix is the delay index's key prefix: the engine's default
// ("psc:delay:") except on Redis Cluster.
func (a *App) delayPrefix() string {
	if a.cfg.Redis.Topology() == config.RedisCluster {
		return clusterDelayPrefix
	}
	return ""
}

// registryPrefix is the subscription registry's key prefix: the consume
// service's default ("psc:") except on Redis Cluster.
func (a *App) registryPrefix() string {
	if a.cfg.Redis.Topology() == config.RedisCluster {
		return clusterRegistryPrefix
	}
	return ""
}

// consumeRedisTweak gives the consume service's client its own socket
// timeouts and no retries (see startConsume).
func consumeRedisTweak(o *redis.UniversalOptions) {
	o.MaxRetries = -1
	o.ReadTimeout, o.WriteTimeout = consumeRedisTimeout, consumeRedisTimeout
}

// redisDescription names the Redis in the start-up log line.
func (a *App) redisDescription() string {
	if a.mredis != nil {
		return a.mredis.Addr()
	}
	rc := &a.cfg.Redis
	d := rc.Topology() + " " + fmt.Sprint(rc.AddrList())
	if rc.MasterName != "" {
		d += " master " + rc.MasterName
	}
	if rc.TLS.Enabled {
		d += " tls"
	}
	return d
}
