package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	require.NoError(t, c.Validate())
	assert.True(t, c.EmbeddedPulsar())
	assert.True(t, c.EmbeddedRedis())
	assert.Equal(t, "embedded", c.ClusterName())
	assert.Equal(t, "127.0.0.1:8088", c.Listen)

	// A smaller outbox alone is enough: the deferral limit follows it.
	small, err := Parse([]byte("trace: {outboxMaxBytes: 128MiB}"))
	require.NoError(t, err)
	assert.Zero(t, small.Trace.DeferMaxBytes, "derived by the pipeline")
}

func TestKebab(t *testing.T) {
	for in, want := range map[string]string{
		"listen": "listen", "dataDir": "data-dir", "pulsar.url": "pulsar-url",
		"producer.batchingMaxPublishDelay": "producer-batching-max-publish-delay",
		"idempotency.lease":                "idempotency-lease",
		"redis.db":                         "redis-db",
		"embedded.pulsarAdminListen":       "embedded-pulsar-admin-listen",
	} {
		assert.Equal(t, want, kebab(in), in)
	}
	for _, s := range Settings() {
		assert.True(t, strings.HasPrefix(s.Env, "PSC_"), s.Env)
		assert.Equal(t, strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")), strings.TrimPrefix(s.Env, "PSC_"))
	}
}

// TestPrecedence: flags over environment over file over defaults.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sidecar.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
listen: 127.0.0.1:9000
dataDir: /var/lib/psc
pulsar:
  url: pulsar://file:6650
  operationTimeout: 3s
producer:
  batchingMaxBytes: 256KiB
limits:
  maxPayloadBytes: 2MiB
`), 0o600))
	c, err := Load([]string{"--config", path, "--pulsar-url", "pulsar://flag:6650", "--embedded-persist=false"},
		env(map[string]string{"PSC_PULSAR_URL": "pulsar://env:6650", "PSC_DATA_DIR": "/env", "PSC_REDIS_TIMEOUT": "1s"}), os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9000", c.Listen, "file")
	assert.Equal(t, "/env", c.DataDir, "env over file")
	assert.Equal(t, "pulsar://flag:6650", c.Pulsar.URL, "flag over env")
	assert.Equal(t, 3*time.Second, c.Pulsar.OperationTimeout)
	assert.Equal(t, time.Second, c.Redis.Timeout)
	assert.Equal(t, 256*KiB, c.Producer.BatchingMaxBytes)
	assert.Equal(t, 2*MiB, c.Limits.MaxPayloadBytes)
	assert.False(t, c.Embedded.Persist)
	assert.Equal(t, "primary", c.ClusterName())

	c, err = Load(nil, env(map[string]string{"PSC_CONFIG": path}), os.Stderr)
	require.NoError(t, err)
	assert.Equal(t, "pulsar://file:6650", c.Pulsar.URL, "PSC_CONFIG names the file")
}

func TestApps(t *testing.T) {
	c, err := Parse([]byte(`
listen: 0.0.0.0:8088
apps:
  - name: billing
    tokenSHA256: BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD
    produce: ["pay/*", "audit/events/*", "ops/jobs/run"]
    rateLimit: {messagesPerSecond: 500, burst: 1000}
`))
	require.NoError(t, err)
	require.Len(t, c.Apps, 1)
	assert.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", c.Apps[0].TokenSHA256, "hashes are lower-cased")
	assert.Equal(t, RateLimit{MessagesPerSecond: 500, Burst: 1000}, c.Apps[0].RateLimit)
}

func TestInvalid(t *testing.T) {
	hash := strings.Repeat("a", 64)
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":           {"listne: x", "field listne not found"},
		"bad duration":          {"shutdownTimeout: soon", "cannot unmarshal"},
		"bad size":              {"limits: {maxPayloadBytes: 1MB}", "size \"1MB\""},
		"non-loopback no apps":  {"listen: 0.0.0.0:8088", "not a loopback address and no apps"},
		"bad listen":            {"listen: nope", "listen \"nope\""},
		"bad pulsar url":        {"pulsar: {url: http://x}", "pulsar.url"},
		"payload over frame":    {"limits: {maxPayloadBytes: 5MiB}", "limits.maxPayloadBytes"},
		"request below payload": {"limits: {maxRequestBytes: 1KiB}", "limits.maxRequestBytes"},
		"lease too short":       {"idempotency: {lease: 10ms}", "idempotency.lease"},
		"log level":             {"log: {level: loud}", "log.level"},
		"app name":              {"apps: [{name: 'a b', tokenSHA256: " + hash + "}]", "apps[0].name"},
		"app hash":              {"apps: [{name: a, tokenSHA256: abc}]", "tokenSHA256"},
		"same token":            {"apps: [{name: a, tokenSHA256: " + hash + "}, {name: b, tokenSHA256: " + hash + "}]", "same token as app \"a\""},
		"duplicate app":         {"apps: [{name: a, tokenSHA256: " + hash + "}, {name: a, tokenSHA256: " + strings.Repeat("b", 64) + "}]", "duplicate app name"},
		"bad pattern":           {"apps: [{name: a, tokenSHA256: " + hash + ", produce: ['pay/settle']}]", "must end in *"},
		"burst without rate":    {"apps: [{name: a, tokenSHA256: " + hash + ", rateLimit: {burst: 5}}]", "burst is set"},
		"defer over outbox":     {"trace: {outboxMaxBytes: 64MiB, deferMaxBytes: 64MiB}", "trace.deferMaxBytes"},
		"ingest budget":         {"trace: {ingestBudget: 1.5}", "trace.ingestBudget"},
		"ingest busy cpu":       {"trace: {ingestBusyCPU: 0}", "trace.ingestBusyCPU"},
		"scan messages":         {"consume: {backlogScanMessages: 0}", "consume.backlogScanMessages"},
		"scan entries":          {"consume: {backlogScanEntries: -1}", "consume.backlogScanEntries"},
		"scan time":             {"consume: {backlogScanTime: 0s}", "consume.backlogScanTime"},
		"scan interval":         {"consume: {backlogInterval: -1m}", "consume.backlogInterval"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := Load([]string{"--redis-timeout", "x"}, env(nil), os.Stderr)
	assert.ErrorContains(t, err, "--redis-timeout")
	_, err = Load(nil, env(map[string]string{"PSC_REDIS_DB": "one"}), os.Stderr)
	assert.ErrorContains(t, err, "PSC_REDIS_DB")
	_, err = Load([]string{"stray"}, env(nil), os.Stderr)
	assert.ErrorContains(t, err, "unexpected argument")
}

func TestValidTopicPattern(t *testing.T) {
	for _, ok := range []string{"*", "pay/*", "pay/settle/*", "pay/settle/orders"} {
		assert.NoError(t, ValidTopicPattern(ok), ok)
	}
	for _, bad := range []string{"", "pay", "pay/settle", "*/x/y", "pay/*/x", "a/b/c/d", "p y/*"} {
		assert.Error(t, ValidTopicPattern(bad), bad)
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "1024": KiB, "1KiB": KiB, "5 MiB": 5 * MiB, "2GiB": 2 * GiB, "7B": 7} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "1MB", "-1", "x", "1.5MiB"} {
		_, err := ParseByteSize(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "1MiB", MiB.String())
	assert.Equal(t, "1000", ByteSize(1000).String())
}

// TestDocsDocumentEverySetting: the configuration reference
// (docs/configuration.md) names every key, flag and environment variable.
func TestDocsDocumentEverySetting(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	readme := string(data)
	for _, s := range Settings() {
		for _, want := range []string{"`" + s.Key + "`", "--" + s.Flag, s.Env} {
			assert.Contains(t, readme, want, "docs/configuration.md does not document %s", s.Key)
		}
	}
}
