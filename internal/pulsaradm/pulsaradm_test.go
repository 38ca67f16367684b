package pulsaradm

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"
)

// TestGetAndTypedCallsShareAuth: the raw GET and pulsaradmin's typed calls
// go to the same admin URL with the same bearer token.
func TestGetAndTypedCallsShareAuth(t *testing.T) {
	type seen struct{ path, auth string }
	got := make(chan seen, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.EscapedPath(), r.Header.Get("Authorization")}
		if r.URL.Path == "/admin/v2/persistent/t/n/x/partitions" {
			_, _ = io.WriteString(w, `{"partitions":3}`)
			return
		}
		_, _ = io.WriteString(w, "entry")
	}))
	defer srv.Close()
	c, err := New(&config.Config{WebServiceURL: srv.URL + "/", Token: "tok"})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()

	tn, err := utils.GetTopicName("persistent://t/n/x")
	require.NoError(t, err)
	res, err := c.Get(context.Background(), *tn, "ledger/7/entry/3")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, "entry", string(body))
	require.Equal(t, seen{"/admin/v2/persistent/t/n/x/ledger/7/entry/3", "Bearer tok"}, <-got)

	md, err := c.Admin().Topics().GetMetadata(*tn)
	require.NoError(t, err)
	require.Equal(t, 3, md.Partitions)
	require.Equal(t, seen{"/admin/v2/persistent/t/n/x/partitions", "Bearer tok"}, <-got)
	require.NoError(t, c.Close(), "Close is idempotent")
}

func TestNewRefusesNoURL(t *testing.T) {
	_, err := New(&config.Config{})
	require.Error(t, err)
	_, err = New(nil)
	require.Error(t, err)
}
