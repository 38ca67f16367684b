package config

import (
	"fmt"
	"net"
	"strings"
)

// RedisTLS configures TLS to Redis: the data nodes and, with Sentinel, the
// sentinels (go-redis uses one TLS configuration for both).
type RedisTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs Redis certificates are checked
	// against; empty: the system's roots.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are the client certificate for mutual TLS
	// (Redis's tls-auth-clients), both or neither.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName is the name the certificates must carry; empty: the host
	// of each address dialled (Cluster nodes are dialled by the address
	// CLUSTER SHARDS announces, often an IP).
	ServerName string `yaml:"serverName"`
}

// Redis topologies, as Topology names them.
const (
	RedisEmbedded   = "embedded"
	RedisStandalone = "standalone"
	RedisSentinel   = "sentinel"
	RedisCluster    = "cluster"
)

// AddrList is the configured Redis addresses: Addrs split on commas, or
// Addr alone; empty for the embedded Redis.
func (r *Redis) AddrList() []string {
	var out []string
	for _, a := range strings.Split(r.Addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 && strings.TrimSpace(r.Addr) != "" {
		out = []string{strings.TrimSpace(r.Addr)}
	}
	return out
}

// Topology is the Redis deployment the settings select, by go-redis's
// universal rules: a master name is Sentinel, more than one address
// without one is Cluster, one address is a single server.
func (r *Redis) Topology() string {
	addrs := r.AddrList()
	switch {
	case len(addrs) == 0:
		return RedisEmbedded
	case r.MasterName != "":
		return RedisSentinel
	case len(addrs) > 1:
		return RedisCluster
	default:
		return RedisStandalone
	}
}

// Secrets returns the data nodes' and the sentinels' passwords, each from
// its setting or read from its ...File twin (a mounted secret: one
// trailing newline is dropped, as editors and `kubectl create secret
// --from-file` leave one).
func (r *Redis) Secrets() (password, sentinelPassword string, err error) {
	if password, err = secretValue(r.Password, r.PasswordFile, "redis.passwordFile"); err != nil {
		return "", "", err
	}
	if sentinelPassword, err = secretValue(r.SentinelPassword, r.SentinelPasswordFile, "redis.sentinelPasswordFile"); err != nil {
		return "", "", err
	}
	return password, sentinelPassword, nil
}

// ReadPasswordFile reads redis.passwordFile again: the client calls it for
// every new connection, so a rotated password takes effect without a
// restart.
func (r *Redis) ReadPasswordFile() (string, error) {
	return secretValue("", r.PasswordFile, "redis.passwordFile")
}

// secretValue is SecretValue (ReadSecretFile's rule) with the setting's
// name in the error.
func secretValue(inline, file, name string) (string, error) {
	v, err := SecretValue(inline, file)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", name, err)
	}
	return v, nil
}

// validate checks the Redis section; Validate adds its errors.
func (r *Redis) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if strings.TrimSpace(r.Addr) != "" && strings.TrimSpace(r.Addrs) != "" {
		bad("redis.addr and redis.addrs are both set: give one server as redis.addr, or every address in redis.addrs")
	}
	for _, a := range r.AddrList() {
		if _, _, err := net.SplitHostPort(a); err != nil {
			bad("redis address %q: want host:port: %v", a, err)
		}
	}
	topo := r.Topology()
	if r.MasterName != "" && topo == RedisEmbedded {
		bad("redis.masterName is set but redis.addrs (the sentinels) is empty")
	}
	if topo != RedisSentinel && (r.SentinelUsername != "" || r.SentinelPassword != "" || r.SentinelPasswordFile != "") {
		bad("redis.sentinelUsername/sentinelPassword are set but redis.masterName is not: they only apply to Sentinel")
	}
	if topo == RedisCluster && r.DB != 0 {
		bad("redis.db must be 0 with Redis Cluster (more than one address in redis.addrs and no redis.masterName), got %d", r.DB)
	}
	if r.Password != "" && r.PasswordFile != "" {
		bad("redis.password and redis.passwordFile are both set")
	}
	if r.SentinelPassword != "" && r.SentinelPasswordFile != "" {
		bad("redis.sentinelPassword and redis.sentinelPasswordFile are both set")
	}
	t := r.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("redis.tls.certFile and redis.tls.keyFile go together")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "") {
		bad("redis.tls settings are given but redis.tls.enabled is false")
	}
	if r.WaitReplicas < 0 {
		bad("redis.waitReplicas must be 0 or more, got %d", r.WaitReplicas)
	}
	if r.WaitReplicas > 0 && (topo == RedisCluster || topo == RedisEmbedded) {
		bad("redis.waitReplicas needs one master (redis.addr, or Sentinel with redis.masterName): WAIT cannot follow a write on Redis Cluster, and the embedded Redis has no replicas")
	}
	if r.WaitTimeout <= 0 {
		bad("redis.waitTimeout must be positive, got %s", r.WaitTimeout)
	}
	if topo == RedisEmbedded && t.Enabled {
		bad("redis.tls.enabled needs redis.addr or redis.addrs: the embedded Redis is in-process")
	}
	return errs
}
