package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedisTopology(t *testing.T) {
	for yaml, want := range map[string]string{
		"{}":                            RedisEmbedded,
		"redis: {addr: r:6379}":         RedisStandalone,
		"redis: {addrs: ' r:6379 , '}":  RedisStandalone,
		"redis: {addrs: 'a:1,b:2,c:3'}": RedisCluster,
		"redis: {addrs: 's1:26379,s2:26379', masterName: mymaster, sentinelPassword: x}": RedisSentinel,
		"redis: {addrs: 's1:26379', masterName: mymaster}":                               RedisSentinel,
	} {
		c, err := Parse([]byte(yaml))
		require.NoError(t, err, yaml)
		assert.Equal(t, want, c.Redis.Topology(), yaml)
		assert.Equal(t, want == RedisEmbedded, c.EmbeddedRedis(), yaml)
	}
	c, err := Parse([]byte("redis: {addrs: 'a:1, b:2'}"))
	require.NoError(t, err)
	assert.Equal(t, []string{"a:1", "b:2"}, c.Redis.AddrList())

	// The flag spelling of the TLS group and the environment variable.
	c, err = Load([]string{"--redis-addrs", "a:1,b:2,c:3", "--redis-tls-enabled", "--redis-tls-server-name", "redis.internal"},
		env(map[string]string{"PSC_REDIS_TLS_CA_FILE": "/etc/psc/ca.pem"}), os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, RedisTLS{Enabled: true, CAFile: "/etc/psc/ca.pem", ServerName: "redis.internal"}, c.Redis.TLS)
	assert.Equal(t, RedisCluster, c.Redis.Topology())
}

func TestRedisInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"addr and addrs":         {"redis: {addr: 'a:1', addrs: 'b:2'}", "both set"},
		"no port":                {"redis: {addrs: 'a:1,b'}", `redis address "b"`},
		"master without addrs":   {"redis: {masterName: m}", "redis.addrs (the sentinels) is empty"},
		"sentinel pw, no master": {"redis: {addr: 'a:1', sentinelPassword: x}", "only apply to Sentinel"},
		"cluster db":             {"redis: {addrs: 'a:1,b:2', db: 3}", "redis.db must be 0"},
		"password twice":         {"redis: {addr: 'a:1', password: x, passwordFile: /f}", "redis.password and redis.passwordFile"},
		"sentinel pw twice": {"redis: {addrs: 'a:1', masterName: m, sentinelPassword: x, sentinelPasswordFile: /f}",
			"redis.sentinelPassword and redis.sentinelPasswordFile"},
		"cert without key":     {"redis: {addr: 'a:1', tls: {enabled: true, certFile: /c}}", "go together"},
		"tls file, tls off":    {"redis: {addr: 'a:1', tls: {caFile: /ca}}", "redis.tls.enabled is false"},
		"tls to embedded":      {"redis: {tls: {enabled: true}}", "embedded Redis"},
		"unknown tls key":      {"redis: {tls: {ca: x}}", "field ca not found"},
		"timeout still checks": {"redis: {timeout: 0s}", "redis.timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			if name != "unknown tls key" { // a YAML error, not a validation one
				assert.ErrorIs(t, err, ErrInvalid)
			}
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRedisSecretFiles: the ...File twins are read by ReadSecretFile's
// rule (trailing line ends dropped, spaces kept); a missing or empty file is
// an error naming the setting.
func TestRedisSecretFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	spw := filepath.Join(dir, "sentinel-password")
	require.NoError(t, os.WriteFile(pw, []byte("s3cret \n"), 0o600))
	require.NoError(t, os.WriteFile(spw, []byte("sentinel\r\n"), 0o600))
	r := Redis{Addrs: "s:26379", MasterName: "m", PasswordFile: pw, SentinelPasswordFile: spw}
	p, sp, err := r.Secrets()
	require.NoError(t, err)
	assert.Equal(t, "s3cret ", p, "only the newline goes; inner spaces are the secret's")
	assert.Equal(t, "sentinel", sp)

	p, sp, err = (&Redis{Password: "inline", SentinelPassword: "s"}).Secrets()
	require.NoError(t, err)
	assert.Equal(t, []string{"inline", "s"}, []string{p, sp})

	_, _, err = (&Redis{PasswordFile: filepath.Join(dir, "missing")}).Secrets()
	assert.ErrorContains(t, err, "redis.passwordFile")
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, _, err = (&Redis{SentinelPasswordFile: empty}).Secrets()
	// ErrSecretFile (it was ErrInvalid): the ...File settings of Redis are
	// read by the one secret-file reader every other secret uses.
	assert.ErrorIs(t, err, ErrSecretFile)
	assert.ErrorContains(t, err, "redis.sentinelPasswordFile")
}

// FuzzRedisAddrs: any redis.addrs / redis.masterName from the outside is
// either refused by validation or yields host:port addresses, none empty,
// and a topology consistent with their count.
func FuzzRedisAddrs(f *testing.F) {
	for _, s := range []string{"", "a:1", "a:1,b:2", " a:1 , ,b:2,", "[::1]:6379,x", ",,,", "a:1,b"} {
		f.Add(s, "")
		f.Add(s, "mymaster")
	}
	f.Fuzz(func(t *testing.T, addrs, master string) {
		r := Default().Redis
		r.Addrs, r.MasterName = addrs, master
		errs := r.validate()
		list := r.AddrList()
		for _, a := range list {
			require.NotEmpty(t, a)
			require.Equal(t, strings.TrimSpace(a), a)
		}
		if len(errs) > 0 {
			return
		}
		for _, a := range list {
			_, _, err := net.SplitHostPort(a)
			require.NoError(t, err, a)
		}
		switch topo := r.Topology(); {
		case len(list) == 0:
			require.Equal(t, RedisEmbedded, topo)
		case master != "":
			require.Equal(t, RedisSentinel, topo)
		case len(list) > 1:
			require.Equal(t, RedisCluster, topo)
		default:
			require.Equal(t, RedisStandalone, topo)
		}
	})
}
